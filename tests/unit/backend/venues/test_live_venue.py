"""LiveVenue over the fake broker (fakeredis): ledger, brackets, at-most-once placement,
poll dedupe, flatten, cancel, position checks, marks."""

from __future__ import annotations

import pytest

from backend.messages import (
    ExitReason,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    PositionChanged,
    Side,
)
from backend.venues import ledger as lg
from backend.venues.broker import VenueFill, VenueUnavailable
from tests.support.fakebroker import FakeBroker
from tests.support.venue_kit import SYM, T0, bar, commit, live, loaded, order, run, submit


def test_fill_is_applied_once_and_the_ledger_survives_a_reload(fake_redis) -> None:
    async def go() -> None:
        venue, broker = await loaded(fake_redis)
        ack = await submit(venue, order(), 1)
        assert isinstance(ack, OrderAccepted) and ack.venue_order_id == "F1"
        assert venue.fill_status("tm-o-1") is OrderStatus.PARTIALLY_FILLED  # no fill seen yet
        evs = await venue.poll(2)
        fill, pos = evs
        assert isinstance(fill, OrderFilled) and isinstance(pos, PositionChanged)
        assert fill.fill_id == "fake:T2" and fill.correlation_id == "sig-tm-o-1"
        assert fill.price == 0.1 and fill.fee == pytest.approx(0.0002)
        assert fill.exit_reason is ExitReason.ENTRY
        assert pos.quantity == 2.0 and pos.avg_price == 0.1
        assert venue.fill_status("tm-o-1") is OrderStatus.FILLED
        await commit(venue, fake_redis)
        assert await venue.poll(3, since_ns=0) == []  # the same fill fetched again: skipped
        again = live(broker, fake_redis)
        await again.load()
        assert again.book_positions()[SYM].quantity == 2.0
        assert again.ledger.cash == pytest.approx(10.0 - 0.2 - 0.0002)  # venue balance
        assert await again.poll(4, since_ns=0) == []
        assert [f.fill_id for f in await again.fills_of(["tm-o-1"])] == ["fake:T2"]

    run(go())


def test_a_ledger_torn_by_redis_losing_data_is_rebuilt_not_doubled(fake_redis) -> None:
    """Redis loses its data while execution holds the ledger in memory; its next
    transaction writes the whole blob (position 6) but only the newest order and fill.
    Read back as it is, a rebuild would apply the two older fills again (10, not 6)."""
    async def go() -> None:
        venue, broker = await loaded(fake_redis)
        for n in (1, 2):
            await submit(venue, order(f"tm-o-{n}"), n)
            await venue.poll(n)
            await commit(venue, fake_redis)
        await fake_redis.flushall()  # Redis restarted without its data
        await submit(venue, order("tm-o-3"), 3)
        await venue.poll(3)
        await commit(venue, fake_redis)  # the torn ledger
        assert venue.book_positions()[SYM].quantity == 6.0

        again = live(broker, fake_redis)
        await again.load(baseline={})  # the database's baseline: nothing held before
        assert again.book_positions() == {}  # torn: rebuilt from the venue
        await again.poll(4, since_ns=0)  # what reconciliation does
        assert again.book_positions()[SYM].quantity == 6.0
        await commit(again, fake_redis)  # the hashes replaced whole
        third = live(broker, fake_redis)
        await third.load()
        assert third.book_positions()[SYM].quantity == 6.0
        assert len(third.ledger.fills) == 3  # (reconciliation adopts the orders)
        assert await third.poll(5, since_ns=0) == []

    run(go())


def test_a_poll_redone_after_a_failed_transaction_gives_the_same_events(fake_redis) -> None:
    async def go() -> None:
        venue, _ = await loaded(fake_redis)
        await submit(venue, order(), 1)
        await commit(venue, fake_redis)
        first = await venue.poll(2)
        venue.rollback()  # the poll's transaction did not execute
        second = await venue.poll(3)
        assert [e.id for e in first] == [e.id for e in second] and len(first) == 2
        await commit(venue, fake_redis)
        assert await venue.poll(4) == []  # nothing working any more: no venue call
        calls = venue.client.calls("fetch_fills")  # type: ignore[attr-defined]
        assert await venue.poll(5) == [] and venue.client.calls("fetch_fills") == calls  # type: ignore[attr-defined]

    run(go())


def test_timeout_after_placing_is_resolved_by_client_order_id(fake_redis) -> None:
    async def go() -> None:
        venue, broker = await loaded(fake_redis)
        broker.fail_next("place_market_order", "timeout_after")
        ev = await submit(venue, order(), 1)  # UNKNOWN, found by the lookup: adopted
        assert isinstance(ev, OrderAccepted) and ev.venue_order_id == "F1"
        assert len(broker.orders("tm-o-1")) == 1 and broker.calls("place_market_order") == 1
        assert "tm-o-1" in venue.placer.journal.unknowns  # type: ignore[attr-defined]
        assert [type(e) for e in await venue.poll(3)] == [OrderFilled, PositionChanged]
        broker.fail_next("place_market_order", "timeout_before")
        ev = await submit(venue, order("tm-o-2"), 4)  # never landed: resent after the window
        assert isinstance(ev, OrderAccepted) and len(broker.orders("tm-o-2")) == 1
        assert broker.calls("place_market_order") == 3

    run(go())


def test_rejections_local_and_at_the_venue(fake_redis) -> None:
    async def go() -> None:
        venue, broker = await loaded(fake_redis)
        ev = await submit(venue, order("tm-o-r", Side.SELL, reduce_only=True), 1)
        assert isinstance(ev, OrderRejected) and "reduce_only" in ev.reason
        assert broker.calls("place_market_order") == 0  # refused before the venue
        broker.fail_next("place_market_order", "reject")
        ev = await submit(venue, order("tm-o-x"), 2)
        assert isinstance(ev, OrderRejected) and "refuses" in ev.reason

    run(go())


def test_stop_loss_sends_one_exit_with_a_deterministic_id(fake_redis) -> None:
    async def go() -> None:
        venue, broker = await loaded(fake_redis)
        await submit(venue, order(sl=0.095, tp=0.12), 1)
        await venue.poll(2)
        await commit(venue, fake_redis)
        assert await venue.on_bar(bar(1, 0.1, 0.101, 0.099, 0.1)) == []  # inside the bracket
        await commit(venue, fake_redis)
        broker.set_price(SYM, 0.094)
        b = bar(2, 0.1, 0.1, 0.094, 0.095)
        evs = await venue.on_bar(b)
        coid = lg.exit_coid("fake", "tm-o-1", ExitReason.STOP_LOSS)
        (ev,) = [e for e in evs if isinstance(e, OrderAccepted)]
        assert ev.client_order_id == coid and coid.startswith("tm-s-") and len(coid) <= 30
        (fill,) = [e for e in evs if isinstance(e, OrderFilled)]  # a market exit: filled now
        assert fill.client_order_id == coid and fill.exit_reason is ExitReason.STOP_LOSS
        assert fill.realized_pnl == pytest.approx((0.094 - 0.1) * 2)
        venue.rollback()  # the bar's transaction failed: the bar is handled again
        evs2 = await venue.on_bar(b)  # its poll finds the exit's fill: flat, nothing sent
        assert [e.id for e in evs2] == [e.id for e in evs[1:]]
        assert len(broker.orders(coid)) == 1
        venue.rollback()  # failed again; a restarted agent polls before the bracket check
        fresh = live(broker, fake_redis, venue.placer.journal)
        await fresh.load()
        evs = await fresh.on_bar(b)
        (fill,) = [e for e in evs if isinstance(e, OrderFilled)]
        assert fill.client_order_id == coid and fill.exit_reason is ExitReason.STOP_LOSS
        assert fill.correlation_id == "sig-tm-o-1" and fresh.book_positions() == {}
        assert len(broker.orders(coid)) == 1 and not any(
            isinstance(e, OrderAccepted) for e in evs)  # flat already: no second exit
        assert broker.positions() == {}

    run(go())


@pytest.mark.parametrize("scope", ["mesh", "account"])
def test_flatten_closes_the_mesh_positions_once(fake_redis, scope: str) -> None:
    async def go() -> None:
        venue, broker = await loaded(fake_redis, flatten_scope=scope)
        await submit(venue, order(), 1)
        await venue.poll(2)
        await commit(venue, fake_redis)
        broker.set_position("LTC/BTC", -3.0)  # behind our back: the mesh does not hold it
        evs = await venue.flatten(5, "cmd-1")
        accepted = [e for e in evs if isinstance(e, OrderAccepted)]
        want = {(SYM, Side.SELL)} | ({("LTC/BTC", Side.BUY)} if scope == "account" else set())
        assert {(e.symbol, e.side) for e in accepted} == want
        assert {e.client_order_id for e in accepted} == {
            lg.flatten_coid("cmd-1", s) for s, _ in want}
        fills = [e for e in evs if isinstance(e, OrderFilled)]
        assert {f.exit_reason for f in fills} == {ExitReason.FLATTEN} and len(fills) == len(want)
        assert broker.positions() == ({} if scope == "account" else {"LTC/BTC": -3.0})
        await commit(venue, fake_redis)
        n = len(broker.orders())
        assert [e for e in await venue.flatten(6, "cmd-1") if isinstance(e, OrderAccepted)] == []
        assert len(broker.orders()) == n

    run(go())


def test_spot_flatten_keeps_coins_held_before_the_mesh_traded(fake_redis) -> None:
    async def go() -> None:
        broker = FakeBroker(prices={SYM: 0.1, "LTC/BTC": 0.01})
        broker.set_position(SYM, 5.0)  # the trader's own coins, there before the mesh
        venue, _ = await loaded(fake_redis, broker)
        assert venue.baseline == {SYM: 5.0}
        await submit(venue, order(), 1)
        await venue.poll(2)
        await commit(venue, fake_redis)
        assert await venue.positions() == {SYM: 2.0}  # the mesh's part of the venue's 7
        evs = await venue.flatten(3, "cmd-k")
        (close,) = [e for e in evs if isinstance(e, OrderAccepted)]
        assert close.quantity == 2.0 and broker.positions() == {SYM: 5.0}
        assert await venue.positions() == {}

    run(go())


def test_cancel_all_cancels_ours_and_external(fake_redis) -> None:
    async def go() -> None:
        venue, broker = await loaded(fake_redis)
        broker.set_fill_mode("rest")
        await submit(venue, order(), 1)
        ext = broker.add_external_order(SYM, Side.SELL, 1.0)
        assert set(await venue.open_orders()) == {"tm-o-1", ext.client_order_id}
        evs = await venue.cancel_all("kill", 2)
        assert all(isinstance(e, OrderCancelled) for e in evs) and len(evs) == 2
        assert evs[0].correlation_id == "sig-tm-o-1" and await venue.open_orders() == []
        assert venue._cur.orders["tm-o-1"].working is False

    run(go())


def test_venue_cancel_and_partial_fill_are_reported_by_the_poll(fake_redis) -> None:
    async def go() -> None:
        venue, broker = await loaded(fake_redis)
        broker.set_fill_mode("rest")
        await submit(venue, order(), 1)
        await commit(venue, fake_redis)
        broker.fill("tm-o-1", 0.5)
        evs = await venue.poll(2)
        assert [type(e) for e in evs] == [OrderFilled, PositionChanged]
        assert venue.fill_status("tm-o-1") is OrderStatus.PARTIALLY_FILLED
        await commit(venue, fake_redis)
        await broker.cancel_order("tm-o-1", SYM)
        (ev,) = await venue.poll(3)
        assert isinstance(ev, OrderCancelled)
        await commit(venue, fake_redis)
        assert await venue.poll(4) == []

    run(go())


def test_a_position_mismatch_is_an_alarm_not_an_overwrite(fake_redis) -> None:
    async def go() -> None:
        venue, broker = await loaded(fake_redis)
        await submit(venue, order(), 1)
        await venue.poll(2)
        await commit(venue, fake_redis)
        assert await venue.check_positions(3) == ([], [])
        broker.set_position(SYM, 1.5)
        events, (alarm,) = await venue.check_positions(4)
        assert events == [] and alarm.kind == "position_mismatch" and alarm.symbol == SYM
        assert alarm.halts and "holds 1.5" in alarm.reason and "expect 2" in alarm.reason
        assert venue.book_positions()[SYM].quantity == 2.0  # not overwritten
        fix = await venue.adopt_position(SYM, 5)  # a person decided: take the venue's
        assert fix is not None and (fix.before, fix.after) == (2.0, 1.5)
        assert fix.event.avg_price == 0.1 and venue.book_positions()[SYM].quantity == 1.5

    run(go())


def test_marks_spot_and_margin() -> None:
    led = lg.Ledger(cash=1.0)
    buy = VenueFill("1", "c", "v", SYM, Side.BUY, 2.0, 0.1, 0.001, T0)
    lg.apply_fill(led, buy, "x")
    assert led.cash == pytest.approx(1.0 - 0.2 - 0.001)
    led.marks[SYM] = 0.11
    assert led.equity() == pytest.approx(led.cash + 0.22)
    m = lg.Ledger(cash=1.0, accounting="margin")
    lg.apply_fill(m, buy, "x")
    assert m.cash == pytest.approx(1.0 - 0.001)  # only fees and realized P&L move it
    m.marks[SYM] = 0.11
    assert m.equity() == pytest.approx(m.cash + 2 * 0.01)
    lg.roll_day(m, T0)
    mark = lg.portfolio_mark(m, 7, T0, "x")
    assert mark.equity == pytest.approx(m.equity()) and mark.positions[SYM].mark == 0.11
    assert mark.exposure == pytest.approx(0.22)


def test_realized_pnl_reduce_and_flip() -> None:
    led = lg.Ledger()
    lg.apply_fill(led, VenueFill("1", "c1", "v", SYM, Side.BUY, 2.0, 0.1, 0.0, T0), "x")
    (f, p), _ = lg.apply_fill(led, VenueFill("2", "c2", "v", SYM, Side.SELL, 1.0, 0.12, 0.0,
                                             T0 + 1), "x")
    assert f.realized_pnl == pytest.approx(0.02) and f.exit_reason is ExitReason.SIGNAL
    assert p.quantity == 1.0 and p.avg_price == 0.1
    (f, p), _ = lg.apply_fill(led, VenueFill("3", "c3", "v", SYM, Side.SELL, 3.0, 0.11, 0.0,
                                             T0 + 2), "x")
    assert f.realized_pnl == pytest.approx(0.01)  # closes 1 at +0.01, opens 2 short
    assert p.quantity == -2.0 and p.avg_price == 0.11
    assert lg.apply_fill(led, VenueFill("3", "c3", "v", SYM, Side.SELL, 3.0, 0.11, 0.0,
                                        T0 + 2), "x") == ([], None)  # same fill id: no-op
    assert led.realized_pnl == pytest.approx(0.03)


def test_a_fill_says_when_the_venue_has_done_the_order() -> None:
    """A buy's fee taken in coins: the event's quantity is net (1.998), yet the order is
    done -- risk stops counting it in flight on ``order_done``, not on a sum of fills."""
    led = lg.Ledger(cash=1.0)
    led.orders["c1"] = lg.LedgerOrder(client_order_id="c1", symbol=SYM, side=Side.BUY,
                                      quantity=2.0)
    (f, _p), _ = lg.apply_fill(led, VenueFill("1", "c1", "v", SYM, Side.BUY, 1.5, 0.1, 0.0,
                                              T0, base_fee=0.0015), "x")
    assert not f.order_done and f.quantity == pytest.approx(1.4985)
    (f, p), o = lg.apply_fill(led, VenueFill("2", "c1", "v", SYM, Side.BUY, 0.5, 0.1, 0.0,
                                             T0 + 1, base_fee=0.0005), "x")
    assert f.order_done and o is not None and o.complete
    assert p.quantity == pytest.approx(1.998)


def test_load_fails_while_the_venue_is_unreachable(fake_redis) -> None:
    broker = FakeBroker()
    broker.set_unreachable()
    venue = live(broker, fake_redis)
    with pytest.raises(VenueUnavailable):
        run(venue.load())
