"""Unit tests for backend.performance.report with hand-built fills and hand-checked numbers."""

from __future__ import annotations

import math

import empyrical
import numpy as np
import orjson
import pandas as pd
import pytest
from rich.console import Console

from backend.messages import ExitReason, OrderFilled, Side
from backend.performance.report import (
    PERIODS_5M_24_7,
    Report,
    build_report,
    curve_stats,
    extract_trades,
    print_report,
    render_table,
)

approx = pytest.approx


def fill(sym: str, side: str, qty: float, price: float, fee: float, t: int,
         reason: str = "entry") -> dict:
    return {"fill_id": f"f{t}{sym}", "symbol": sym, "side": side, "quantity": qty,
            "price": price, "fee": fee, "exit_reason": reason, "bar_seq": t, "fill_time": t,
            "ts": t}


FILLS = [
    # 1. winning long: +2 @ 10, -2 @ 12
    fill("ETH/BTC", "BUY", 2, 10.0, 0.02, 1),
    fill("ETH/BTC", "SELL", 2, 12.0, 0.024, 2, "take_profit"),
    # 2. losing long with two entries (avg 10.5), stopped at 9
    fill("ETH/BTC", "BUY", 1, 10.0, 0.01, 3),
    fill("ETH/BTC", "BUY", 1, 11.0, 0.011, 4),
    fill("ETH/BTC", "SELL", 2, 9.0, 0.018, 5, "stop_loss"),
    # 3. flip: long 1 @ 10, sell 3 @ 11 -> closes the long, opens short 2 @ 11
    fill("ETH/BTC", "BUY", 1, 10.0, 0.01, 6),
    fill("ETH/BTC", "SELL", 3, 11.0, 0.033, 7, "signal"),
    fill("ETH/BTC", "BUY", 2, 10.0, 0.02, 8, "take_profit"),
    # 4. open at the end, after a partial exit
    fill("LTC/BTC", "BUY", 5, 2.0, 0.01, 9),
    fill("LTC/BTC", "SELL", 2, 3.0, 0.006, 10, "signal"),
]
CASH = 100.0


def test_trades_hand_checked() -> None:
    closed, still_open = extract_trades(list(reversed(FILLS)))  # sorted by bar seq
    assert [t.side for t in closed] == ["long", "long", "long", "short"]
    win, loss, flip_long, flip_short = closed

    assert (win.entry_price, win.exit_price, win.quantity) == (10.0, 12.0, 2.0)
    assert win.gross_pnl == approx(4.0) and win.fees == approx(0.044)
    assert win.net_pnl == approx(3.956) and win.return_on_notional == approx(3.956 / 20)
    assert (win.entry_time, win.exit_time, win.exit_reason) == (1, 2, "take_profit")

    assert loss.entry_price == approx(10.5) and loss.exit_price == 9.0
    assert loss.gross_pnl == approx(-3.0) and loss.fees == approx(0.039)
    assert loss.net_pnl == approx(-3.039) and loss.return_on_notional == approx(-3.039 / 21)
    assert loss.exit_reason == "stop_loss" and loss.fills == 3

    # the flip fill's fee 0.033 is split 1/3 to the closed long, 2/3 to the new short
    assert flip_long.quantity == 1 and flip_long.gross_pnl == approx(1.0)
    assert flip_long.fees == approx(0.01 + 0.011) and flip_long.net_pnl == approx(0.979)
    assert flip_long.exit_time == 7 and flip_long.exit_reason == "signal"
    assert flip_short.entry_time == 7 and flip_short.entry_price == 11.0
    assert flip_short.quantity == 2 and flip_short.exit_price == 10.0
    assert flip_short.gross_pnl == approx(2.0) and flip_short.fees == approx(0.022 + 0.02)
    assert flip_short.net_pnl == approx(1.958)

    (ltc,) = still_open
    assert ltc.symbol == "LTC/BTC" and ltc.exit_time is None and ltc.exit_price is None
    assert ltc.quantity == approx(3.0) and ltc.entry_price == 2.0
    assert ltc.gross_pnl == approx(2.0) and ltc.fees == approx(0.016)
    assert ltc.return_on_notional is None


def test_messages_and_dicts_give_the_same_trades() -> None:
    msgs = [OrderFilled(source="execution", client_order_id="c", fill_id=f["fill_id"],
                        symbol=f["symbol"], side=Side(f["side"]), quantity=f["quantity"],
                        price=f["price"], fee=f["fee"], exit_reason=ExitReason(f["exit_reason"]),
                        bar_seq=f["bar_seq"], fill_time=f["fill_time"], ts=f["ts"])
            for f in FILLS]
    assert extract_trades(msgs) == extract_trades(FILLS)


def _equity() -> pd.DataFrame:
    eq = [100, 101, 100.5, 99, 102, 103, 101, 104, 104.5, 103.9]
    df = pd.DataFrame({"bar_seq": [2 * i + 1 for i in range(10)], "bar_time": range(1, 11),
                       "equity": eq})
    # an earlier mark at the same bar time (another symbol's bar) is superseded
    dup = pd.DataFrame({"bar_seq": [0], "bar_time": [1], "equity": [55.0]})
    return pd.concat([dup, df], ignore_index=True)


def test_build_report_totals_and_symbols() -> None:
    extra = {"messages_per_channel": {"orders": 9, "signals": 12},
             "orders_by_status": {"FILLED": 9}, "wall_time_s": 3.5, "bars": 40, "run": "x"}
    rep = build_report(FILLS, _equity(), CASH, PERIODS_5M_24_7, extra)
    tot = rep.total
    assert (tot.trades, tot.wins, tot.losses, tot.open_trades) == (4, 3, 1, 1)
    assert tot.win_rate == 0.75
    assert tot.gross_pnl == approx(4.0) and tot.fees == approx(0.146)
    assert tot.net_pnl == approx(3.854) and tot.net_return == approx(0.03854)
    assert tot.profit_factor == approx((3.956 + 0.979 + 1.958) / 3.039)
    assert rep.fees_paid == approx(0.162)
    # ETH open at t 1,3,4,6,7; LTC at 9,10
    assert rep.symbols["ETH/BTC"].exposure == approx(0.5)
    assert rep.symbols["LTC/BTC"].exposure == approx(0.2)
    assert tot.exposure == approx(0.7)
    assert rep.symbols["LTC/BTC"].trades == 0 and rep.symbols["LTC/BTC"].win_rate is None
    assert rep.symbols["LTC/BTC"].open_trades == 1

    r = pd.Series(_equity()["equity"].iloc[1:].to_numpy()).pct_change().dropna()
    assert tot.sharpe == approx(empyrical.sharpe_ratio(r, annualization=PERIODS_5M_24_7))
    assert tot.sortino == approx(empyrical.sortino_ratio(r, annualization=PERIODS_5M_24_7))
    assert tot.max_drawdown == approx(-empyrical.max_drawdown(r))
    assert tot.max_drawdown == approx(1 - 99 / 101)

    # realised per-symbol curve: ETH steps at exits t2, t5, t7, t8
    assert rep.curve_mode == "realized"
    steps = {2: 3.956, 5: 3.956 - 3.039, 7: 3.956 - 3.039 + 0.979, 8: 3.854}
    cum, curve = 0.0, []
    for t in range(1, 11):
        cum = steps.get(t, cum)
        curve.append(CASH + cum)
    eth = rep.symbols["ETH/BTC"]
    expected = curve_stats(curve, PERIODS_5M_24_7)
    assert eth.sharpe == approx(expected["sharpe"]) and eth.net_pnl == approx(3.854)
    assert eth.max_drawdown == approx(expected["max_drawdown"])
    assert eth.max_drawdown == approx(3.039 / (CASH + 3.956))

    assert rep.final_equity == 103.9 and rep.equity_return == approx(0.039)
    assert (rep.start_time, rep.end_time, rep.bars) == (1, 10, 40)
    assert rep.messages_per_channel == {"orders": 9, "signals": 12}
    assert rep.orders_by_status == {"FILLED": 9} and rep.wall_time_s == 3.5
    assert rep.extra == {"run": "x"}
    back = Report.model_validate_json(rep.to_json())
    assert back == rep


def test_curve_stats_match_empyrical() -> None:
    rng = np.random.default_rng(7)
    curve = 1.0 * np.cumprod(1 + rng.normal(0.0002, 0.003, 500))
    r = curve[1:] / curve[:-1] - 1
    s = curve_stats(curve, 252)
    assert s["sharpe"] == approx(empyrical.sharpe_ratio(r, annualization=252))
    assert s["sortino"] == approx(empyrical.sortino_ratio(r, annualization=252))
    assert s["max_drawdown"] == approx(-empyrical.max_drawdown(r))
    assert s["max_drawdown"] > 0


def test_mark_to_market_symbol_curve() -> None:
    fills = [fill("ETH/BTC", "BUY", 1, 10.0, 0.0, 1), fill("ETH/BTC", "SELL", 1, 12.0, 0.0, 3)]
    equity = pd.DataFrame({"bar_time": [1, 2, 3], "equity": [100.0, 101.0, 102.0],
                           "positions": [{"ETH/BTC": {"quantity": 1, "avg_price": 10, "mark": 10}},
                                         {"ETH/BTC": {"quantity": 1, "avg_price": 10, "mark": 11}},
                                         {}]})
    rep = build_report(fills, equity, 100.0, 252)
    assert rep.curve_mode == "mark_to_market"
    eth = rep.symbols["ETH/BTC"]
    exp = curve_stats([100.0, 101.0, 102.0], 252)
    assert eth.sharpe == approx(exp["sharpe"]) and eth.exposure == approx(2 / 3)
    assert eth.sharpe == approx(rep.total.sharpe)
    # without marks the symbol curve only steps at the exit: 100, 100, 102
    realised = build_report(fills, equity[["bar_time", "equity"]], 100.0, 252)
    assert realised.curve_mode == "realized"
    assert realised.symbols["ETH/BTC"].sharpe == approx(
        curve_stats([100.0, 100.0, 102.0], 252)["sharpe"])


def _assert_finite_json(raw: bytes) -> dict:
    text = raw.decode()
    assert "NaN" not in text and "Infinity" not in text
    data = orjson.loads(raw)

    def walk(x: object) -> None:
        if isinstance(x, float):
            assert math.isfinite(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(data)
    return data


def test_flat_curve_no_trades_is_finite_json() -> None:
    eq = pd.DataFrame({"bar_time": range(50), "equity": [1.0] * 50})
    rep = build_report([], eq, 1.0, PERIODS_5M_24_7, {})
    data = _assert_finite_json(rep.to_json(indent=True))
    tot = data["total"]
    assert tot["trades"] == 0 and tot["win_rate"] is None and tot["profit_factor"] is None
    assert tot["sharpe"] is None and tot["sortino"] is None
    assert tot["max_drawdown"] == 0.0 and tot["exposure"] == 0.0
    assert data["symbols"] == {} and data["trades"] == []


def test_no_equity_and_only_winners_is_finite_json() -> None:
    rep = build_report(FILLS[:2], None, CASH)
    data = _assert_finite_json(rep.to_json())
    assert data["total"]["profit_factor"] is None and data["total"]["wins"] == 1
    assert data["final_equity"] is None and data["total"]["sharpe"] is None
    rising = pd.DataFrame({"bar_time": [1, 2, 3], "equity": [100.0, 101.0, 102.0]})
    data = _assert_finite_json(build_report(FILLS[:2], rising, CASH).to_json())
    assert data["total"]["sortino"] is None  # no downside: undefined, not inf


def test_render_table() -> None:
    rep = build_report(FILLS, _equity(), CASH, PERIODS_5M_24_7,
                       {"messages_per_channel": {"orders": 3}})
    table = render_table(rep)
    assert table.row_count == 3
    console = Console(record=True, width=200)
    print_report(rep, console)
    out = console.export_text()
    assert "TOTAL" in out and "ETH/BTC" in out and "orders=3" in out
