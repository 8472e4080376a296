"""Paper venue matching engine (backend.venues.paper.engine): fills, brackets, idempotency, cash."""

from __future__ import annotations

import orjson
import pytest

from backend.messages import (
    BarClosed,
    ExitReason,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PositionChanged,
    Side,
    SubmitOrder,
)
from backend.settings import PaperConfig
from backend.venues.paper.engine import (
    NS_PER_DAY,
    PaperBook,
    cancel_all,
    flatten,
    known_status,
    on_bar,
    portfolio_view,
    submit,
)

CFG = PaperConfig(initial_cash=1.0, fee_rate=0.001, slippage_bps=10.0)  # slip 0.1%
DAY = 19_724
T0 = DAY * NS_PER_DAY
BAR_NS = 300_000_000_000
SYM = "ETH/BTC"


def bar(seq, o, h, low, c, symbol=SYM, t=None) -> BarClosed:
    t = T0 + seq * BAR_NS if t is None else t
    return BarClosed(
        source="market_data", symbol=symbol, open_time=t, open=o, high=h, low=low,
        close=c, volume=1.0, seq=seq,
    )


def order(coid="c1", side=Side.BUY, qty=10.0, sl=None, tp=None, reduce_only=False,
          symbol=SYM, bar_seq=0) -> SubmitOrder:
    return SubmitOrder(
        source="execution", correlation_id=f"sig-{coid}", client_order_id=coid,
        symbol=symbol, side=side, quantity=qty, reduce_only=reduce_only, stop_loss=sl,
        take_profit=tp, signal_id=f"sig-{coid}", bar_seq=bar_seq,
    )


def fills(events) -> list[OrderFilled]:
    return [e for e in events if isinstance(e, OrderFilled)]


def long_book(sl=None, tp=None) -> PaperBook:
    """Long 10 ETH bought at 0.05 * 1.001 = 0.05005 on bar 1 (closes 0.05)."""
    book, _ = submit(PaperBook.new(1.0), order(sl=sl, tp=tp), CFG, 1)
    book, ev = on_bar(book, bar(1, 0.05, 0.0501, 0.0499, 0.05), CFG)
    assert len(fills(ev)) == 1 and book.position_qty(SYM) == 10.0
    return book


def test_market_order_fills_at_next_bar_open_with_slippage_and_fee():
    book = PaperBook.new(1.0)
    book, ack = submit(book, order(), CFG, 123)
    assert isinstance(ack, OrderAccepted) and ack.venue_order_id == "paper-c1"
    assert ack.source == "venue:paper" and ack.correlation_id == "sig-c1" and ack.ts == 123
    assert known_status(book, "c1") == "ACCEPTED"
    # a bar of another symbol, or the order's own bar, does not fill it
    book, ev = on_bar(book, bar(0, 0.05, 0.05, 0.05, 0.05), CFG)
    book, ev2 = on_bar(book, bar(1, 0.02, 0.02, 0.02, 0.02, symbol="LTC/BTC"), CFG)
    assert ev == [] and ev2 == [] and "c1" in book.open_orders
    b = bar(2, 0.05, 0.051, 0.049, 0.052)
    book, ev = on_bar(book, b, CFG)
    assert [type(e) for e in ev] == [OrderFilled, PositionChanged]
    f, pc = ev
    assert f.price == pytest.approx(0.05005)  # 0.05 * (1 + 10 / 1e4)
    assert f.fee == pytest.approx(0.0005005)  # 10 * 0.05005 * 0.001
    assert f.quantity == 10.0 and f.exit_reason is ExitReason.ENTRY and f.realized_pnl == 0
    assert f.fill_time == b.open_time == f.ts and f.bar_seq == 2
    assert f.client_order_id == "c1" and f.correlation_id == "sig-c1"
    assert book.cash == pytest.approx(1.0 - 0.5005 - 0.0005005)
    assert pc.quantity == 10.0 and pc.avg_price == pytest.approx(0.05005)
    assert book.open_orders == {} and known_status(book, "c1") == "FILLED"
    # equity = cash + qty * mark (close 0.052)
    assert book.marks[SYM] == 0.052
    assert book.equity() == pytest.approx(book.cash + 10 * 0.052)
    assert book.exposure() == pytest.approx(0.52)
    assert book.traded_notional(DAY) == pytest.approx(0.5005)
    assert book.fees_paid == pytest.approx(0.0005005)


def test_sell_close_realizes_gross_pnl():
    book = long_book(sl=0.04, tp=0.07)
    cash0 = book.cash
    book, _ = submit(book, order("c2", Side.SELL, 10.0, reduce_only=True, bar_seq=1), CFG, 2)
    book, ev = on_bar(book, bar(2, 0.06, 0.06, 0.06, 0.06), CFG)
    f, pc = ev
    assert f.price == pytest.approx(0.05994)  # 0.06 * (1 - 0.001)
    assert f.realized_pnl == pytest.approx((0.05994 - 0.05005) * 10)
    assert f.fee == pytest.approx(0.0005994) and f.exit_reason is ExitReason.SIGNAL
    assert book.cash == pytest.approx(cash0 + 0.5994 - 0.0005994)
    assert pc.quantity == 0.0 and pc.realized_pnl == pytest.approx(0.0989)
    pos = book.positions[SYM]
    assert pos.stop_loss is None and pos.take_profit is None


def test_stop_loss_checked_on_the_entry_bar():
    book, _ = submit(PaperBook.new(1.0), order(sl=0.048, tp=0.06), CFG, 1)
    book, ev = on_bar(book, bar(1, 0.05, 0.0505, 0.047, 0.0475), CFG)
    entry, exit_ = fills(ev)
    assert entry.exit_reason is ExitReason.ENTRY
    assert exit_.exit_reason is ExitReason.STOP_LOSS and exit_.client_order_id == "c1-sl"
    assert exit_.side is Side.SELL and exit_.quantity == 10.0
    assert exit_.price == pytest.approx(0.048 * 0.999)
    assert exit_.realized_pnl == pytest.approx((0.048 * 0.999 - 0.05005) * 10)
    assert exit_.correlation_id == "sig-c1"
    assert book.position_qty(SYM) == 0.0 and known_status(book, "c1-sl") == "FILLED"
    assert [type(e) for e in ev] == [OrderFilled, PositionChanged] * 2


def test_take_profit_fills_at_limit_without_slippage_and_gap_at_open():
    book = long_book(sl=0.048, tp=0.06)
    nb, ev = on_bar(book, bar(2, 0.055, 0.061, 0.054, 0.058), CFG)
    (f,) = fills(ev)
    assert f.exit_reason is ExitReason.TAKE_PROFIT and f.client_order_id == "c1-tp"
    assert f.price == 0.06
    nb, ev = on_bar(book, bar(2, 0.062, 0.063, 0.061, 0.062), CFG)  # gap above the TP
    assert fills(ev)[0].price == 0.062


def test_gap_through_stop_fills_at_open():
    book = long_book(sl=0.048, tp=0.06)
    book, ev = on_bar(book, bar(2, 0.045, 0.046, 0.044, 0.0455), CFG)
    (f,) = fills(ev)
    assert f.exit_reason is ExitReason.STOP_LOSS
    assert f.price == pytest.approx(0.045 * 0.999)


def test_both_hit_in_same_bar_assumes_stop():
    book = long_book(sl=0.048, tp=0.06)
    book, ev = on_bar(book, bar(2, 0.05, 0.065, 0.045, 0.05), CFG)
    (f,) = fills(ev)
    assert f.exit_reason is ExitReason.STOP_LOSS and f.price == pytest.approx(0.048 * 0.999)


def test_short_bracket_mirrors():
    book, _ = submit(PaperBook.new(1.0), order(side=Side.SELL, sl=0.052, tp=0.04), CFG, 1)
    book, ev = on_bar(book, bar(1, 0.05, 0.0505, 0.0495, 0.05), CFG)
    assert book.position_qty(SYM) == -10.0 and fills(ev)[0].price == pytest.approx(0.04995)
    nb, ev = on_bar(book, bar(2, 0.051, 0.053, 0.039, 0.05), CFG)  # both hit -> stop
    (f,) = fills(ev)
    assert f.side is Side.BUY and f.exit_reason is ExitReason.STOP_LOSS
    assert f.price == pytest.approx(0.052 * 1.001)
    assert f.realized_pnl == pytest.approx((0.04995 - 0.052 * 1.001) * 10)
    nb, ev = on_bar(book, bar(2, 0.041, 0.042, 0.039, 0.04), CFG)
    (f,) = fills(ev)
    assert f.exit_reason is ExitReason.TAKE_PROFIT and f.price == 0.04


def test_idempotent_resubmit_one_order_one_fill():
    book, a1 = submit(PaperBook.new(1.0), order(), CFG, 1)
    book2, a2 = submit(book, order(), CFG, 2)
    assert isinstance(a2, OrderAccepted) and a2.id == a1.id
    assert len(book2.open_orders) == 1 and book2.order_seq == 1
    book3, ev = on_bar(book2, bar(1, 0.05, 0.05, 0.05, 0.05), CFG)
    assert len(fills(ev)) == 1
    book4, a3 = submit(book3, order(), CFG, 3)  # resubmitted after the fill
    assert isinstance(a3, OrderAccepted) and book4.open_orders == {}
    book5, ev = on_bar(book4, bar(2, 0.05, 0.05, 0.05, 0.05), CFG)
    assert fills(ev) == [] and book5.position_qty(SYM) == 10.0
    # redelivered bar changes nothing
    book6, ev = on_bar(book5, bar(2, 0.01, 0.01, 0.01, 0.01), CFG)
    assert ev == [] and book6 == book5


def test_rejections_reduce_only_without_position_and_idempotent():
    book, r = submit(PaperBook.new(1.0), order(side=Side.SELL, reduce_only=True), CFG, 1)
    assert isinstance(r, OrderRejected) and "reduce_only" in r.reason
    assert book.open_orders == {} and known_status(book, "c1") == "REJECTED"
    book2, r2 = submit(book, order(side=Side.SELL, reduce_only=True), CFG, 2)
    assert isinstance(r2, OrderRejected) and r2.id == r.id and r2.reason == r.reason
    bad = order().model_copy(update={"quantity": 0.0})  # bypasses validation
    _, r3 = submit(PaperBook.new(1.0), bad, CFG, 1)
    assert isinstance(r3, OrderRejected) and "quantity" in r3.reason


def test_reduce_only_clamps_and_second_is_rejected():
    book = long_book()
    book, _ = submit(book, order("c2", Side.SELL, 25.0, reduce_only=True, bar_seq=1), CFG, 2)
    book, _ = submit(book, order("c3", Side.SELL, 5.0, reduce_only=True, bar_seq=1), CFG, 2)
    book, ev = on_bar(book, bar(2, 0.05, 0.05, 0.05, 0.05), CFG)
    f = fills(ev)
    assert len(f) == 1 and f[0].quantity == 10.0 and f[0].client_order_id == "c2"
    rej = [e for e in ev if isinstance(e, OrderRejected)]
    assert len(rej) == 1 and rej[0].client_order_id == "c3"
    assert book.position_qty(SYM) == 0.0 and known_status(book, "c3") == "REJECTED"


def test_buy_is_cut_to_what_cash_affords_then_rejected_when_broke():
    book, _ = submit(PaperBook.new(1.0), order(qty=100.0), CFG, 1)
    book, ev = on_bar(book, bar(1, 0.05, 0.05, 0.05, 0.05), CFG)
    (f,) = fills(ev)
    assert f.quantity == pytest.approx(1.0 / (0.05005 * 1.001))
    assert book.cash >= 0.0 and book.cash == pytest.approx(0.0, abs=1e-12)
    book, _ = submit(book, order("c2", qty=1.0, bar_seq=1), CFG, 2)
    book, ev = on_bar(book, bar(2, 0.05, 0.05, 0.05, 0.05), CFG)
    assert fills(ev) == [] and isinstance(ev[0], OrderRejected) and "cash" in ev[0].reason


def test_flip_through_zero_and_adding():
    book = long_book()
    book, _ = submit(book, order("c2", Side.SELL, 15.0, sl=0.06, bar_seq=1), CFG, 2)
    book, ev = on_bar(book, bar(2, 0.05, 0.05, 0.05, 0.05), CFG)
    (f,) = fills(ev)
    assert f.exit_reason is ExitReason.SIGNAL
    assert f.realized_pnl == pytest.approx((0.04995 - 0.05005) * 10)
    pos = book.positions[SYM]
    assert pos.quantity == pytest.approx(-5.0) and pos.avg_price == pytest.approx(0.04995)
    assert pos.stop_loss == 0.06 and pos.entry_coid == "c2"
    # add 5 more short at 0.06 * 0.999 -> average of the two prices
    book, _ = submit(book, order("c3", Side.SELL, 5.0, bar_seq=2), CFG, 3)
    book, _ = on_bar(book, bar(3, 0.055, 0.055, 0.055, 0.055), CFG)
    pos = book.positions[SYM]
    assert pos.quantity == pytest.approx(-10.0)
    assert pos.avg_price == pytest.approx((0.04995 + 0.055 * 0.999) / 2)
    assert pos.stop_loss == 0.06 and pos.entry_coid == "c2"  # bracket kept


def test_day_start_equity_recorded_before_the_first_bar_of_a_day():
    book = long_book()  # day DAY recorded at 1.0 (before the fill)
    assert book.day_start_equity == {DAY: 1.0}
    book, _ = on_bar(book, bar(2, 0.05, 0.06, 0.05, 0.06), CFG)  # mark 0.06
    eq_before_next_day = book.equity()
    nxt = bar(3, 0.04, 0.04, 0.04, 0.04, t=(DAY + 1) * NS_PER_DAY)
    book, _ = on_bar(book, nxt, CFG)
    assert book.day_start_equity[DAY + 1] == pytest.approx(eq_before_next_day)
    assert book.current_day == DAY + 1
    assert book.equity() == pytest.approx(book.cash + 10 * 0.04)
    view = portfolio_view(book, 3, nxt.open_time)
    assert view.day == DAY + 1 and view.day_start_equity == pytest.approx(eq_before_next_day)
    assert view.equity == pytest.approx(book.equity()) and view.traded_notional_today == 0.0
    assert view.positions[SYM].mark == 0.04


def test_cancel_all_and_flatten():
    book = long_book()
    book, _ = submit(book, order("c2", Side.BUY, 1.0, bar_seq=1), CFG, 2)
    book, cancelled = cancel_all(book, "kill switch", 5)
    assert [type(c) for c in cancelled] == [OrderCancelled] and cancelled[0].client_order_id == "c2"
    assert book.open_orders == {} and known_status(book, "c2") == "CANCELLED"
    before = book.model_copy(deep=True)
    flat, ev = flatten(book, None, 99, CFG)
    assert book == before  # input not mutated
    (f,) = fills(ev)
    assert f.exit_reason is ExitReason.FLATTEN and f.client_order_id == "c1-flat"
    assert f.price == 0.05 and f.fee == pytest.approx(0.0005)
    # on the market's clock: the latest bar's time, not the wall clock (issue 20, item 3)
    assert f.fill_time == f.ts == book.last_bar_time == bar(1, 0.05, 0.05, 0.05, 0.05).open_time
    assert flat.position_qty(SYM) == 0.0
    assert flat.equity() == pytest.approx(flat.cash)


def test_flatten_before_any_bar_uses_the_time_given():
    book = long_book().model_copy(update={"last_bar_time": 0})
    _, ev = flatten(book, None, 99, CFG)
    (f,) = fills(ev)
    assert f.fill_time == 99


def test_book_json_round_trip_and_inputs_not_mutated():
    book = long_book(sl=0.04, tp=0.07)
    raw = orjson.dumps(book.model_dump(mode="json"))
    again = PaperBook.model_validate(orjson.loads(raw))
    assert again == book and again.day_start_equity == {DAY: 1.0}
    snap = book.model_copy(deep=True)
    on_bar(book, bar(2, 0.03, 0.03, 0.03, 0.03), CFG)
    submit(book, order("c9"), CFG, 1)
    assert book == snap


def test_float_residue_closes_to_exactly_flat():
    book = PaperBook.new(1.0)
    book, _ = submit(book, order("a", qty=0.1, sl=0.01), CFG, 1)
    book, _ = submit(book, order("b", qty=0.2), CFG, 1)
    book, _ = on_bar(book, bar(1, 0.05, 0.05, 0.05, 0.05), CFG)
    assert book.position_qty(SYM) == 0.1 + 0.2 != 0.3  # 0.30000000000000004
    book, _ = submit(book, order("c", Side.SELL, 0.3, bar_seq=1), CFG, 2)
    book, ev = on_bar(book, bar(2, 0.05, 0.05, 0.05, 0.05), CFG)
    assert book.position_qty(SYM) == 0.0 and ev[-1].quantity == 0.0
    assert book.positions[SYM].stop_loss is None
