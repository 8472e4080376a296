"""Compliance rules (backend.compliance.rules): each rule rejects and approves."""

from __future__ import annotations

import pytest

from backend.compliance.rules import (
    NS_PER_DAY,
    NS_PER_HOUR,
    NS_PER_SECOND,
    ComplianceState,
    check_signal,
    in_trading_hours,
)
from backend.messages import Side, SignalGenerated
from backend.settings import ComplianceConfig

DAY = 19_724  # 2024-01-02 UTC
T0 = DAY * NS_PER_DAY + 10 * NS_PER_HOUR  # 10:00 UTC


def sig(
    symbol: str = "ETH/BTC", side: Side = Side.BUY, bar_time: int = T0
) -> SignalGenerated:
    return SignalGenerated(
        source="strategy:ETHBTC",
        symbol=symbol,
        side=side,
        confidence=0.9,
        entry_price=0.05,
        stop_loss=0.049 if side is Side.BUY else 0.051,
        take_profit=0.052 if side is Side.BUY else 0.048,
        reason="test",
        strategy="sma_cross",
        bar_seq=1,
        bar_time=bar_time,
    )


def cfg(**kw) -> ComplianceConfig:
    return ComplianceConfig(**kw)


def test_approves_and_updates_state_without_mutating_input():
    state = ComplianceState(day=DAY)
    before = state.model_dump()
    d, new = check_signal(sig(), state, cfg(), 0.0)
    assert d.approved and d.rule == "ok"
    assert new.trades_today == 1 and new.day == DAY
    assert new.last_approved == {"ETH/BTC|BUY": T0}
    assert state.model_dump() == before


def test_restricted_symbol_compared_compactly():
    for restricted in (["ETHBTC"], ["eth-btc"], ["ETH/BTC"]):
        c = cfg(restricted_symbols=restricted)
        d, new = check_signal(sig(), ComplianceState(day=DAY), c, 0)
        assert not d.approved and d.rule == "restricted_symbol"
        assert new.trades_today == 0 and new.last_approved == {}
    d, _ = check_signal(sig("LTC/BTC"), ComplianceState(), cfg(restricted_symbols=["ETHBTC"]), 0)
    assert d.approved


@pytest.mark.parametrize(
    ("hours", "hour", "ok"),
    [
        ((8, 16), 7, False),
        ((8, 16), 8, True),
        ((8, 16), 15, True),
        ((8, 16), 16, False),
        ((22, 6), 23, True),
        ((22, 6), 22, True),
        ((22, 6), 2, True),
        ((22, 6), 6, False),
        ((22, 6), 12, False),
        ((0, 24), 0, True),
        ((0, 24), 23, True),
        ((5, 5), 5, False),
    ],
)
def test_trading_hours(hours, hour, ok):
    t = DAY * NS_PER_DAY + hour * NS_PER_HOUR + 59 * 60 * NS_PER_SECOND
    d, _ = check_signal(sig(bar_time=t), ComplianceState(), cfg(trading_hours_utc=hours), 0)
    assert d.approved is ok
    assert in_trading_hours(hour, hours) is ok
    if not ok:
        assert d.rule == "trading_hours"
        assert f"hour {hour:02d}" in d.reason


def test_max_trades_per_day():
    d, new = check_signal(sig(), ComplianceState(day=DAY, trades_today=40), cfg(), 0)
    assert not d.approved and d.rule == "max_trades_per_day"
    assert d.reason == "trades today 40 >= max 40"
    assert new.trades_today == 40
    d, new = check_signal(sig(), ComplianceState(day=DAY, trades_today=39), cfg(), 0)
    assert d.approved and new.trades_today == 40


def test_day_roll_resets_trades():
    state = ComplianceState(day=DAY - 1, trades_today=40)
    d, new = check_signal(sig(), state, cfg(), 0)
    assert d.approved and new.day == DAY and new.trades_today == 1
    # a rejection still rolls the day
    d, new = check_signal(sig(), state, cfg(restricted_symbols=["ETHBTC"]), 0)
    assert not d.approved and new.day == DAY and new.trades_today == 0
    assert state.day == DAY - 1 and state.trades_today == 40


def test_max_notional_per_day():
    d, _ = check_signal(sig(), ComplianceState(), cfg(max_notional_per_day=50.0), 50.0)
    assert not d.approved and d.rule == "max_notional_per_day"
    assert "50" in d.reason
    d, _ = check_signal(sig(), ComplianceState(), cfg(max_notional_per_day=50.0), 49.9)
    assert d.approved


def test_duplicate_signal_window_inclusive():
    window = 300.0
    c = cfg(duplicate_window_s=window)
    last = {"ETH/BTC|BUY": T0 - int(window * NS_PER_SECOND)}
    d, new = check_signal(sig(), ComplianceState(day=DAY, last_approved=last), c, 0)
    assert not d.approved and d.rule == "duplicate_signal"
    assert new.last_approved == last
    # same bar redelivered counts as a duplicate (age 0)
    d, _ = check_signal(sig(), ComplianceState(day=DAY, last_approved={"ETH/BTC|BUY": T0}), c, 0)
    assert d.rule == "duplicate_signal"
    # one second outside the window -> ok
    old = {"ETH/BTC|BUY": T0 - int((window + 1) * NS_PER_SECOND)}
    d, new = check_signal(sig(), ComplianceState(day=DAY, last_approved=old), c, 0)
    assert d.approved and new.last_approved["ETH/BTC|BUY"] == T0
    # other side, other symbol, or a "last" in the future are not duplicates
    st = ComplianceState(day=DAY, last_approved=last)
    assert check_signal(sig(side=Side.SELL), st, c, 0)[0].approved
    assert check_signal(sig("LTC/BTC"), st, c, 0)[0].approved
    future = ComplianceState(day=DAY, last_approved={"ETH/BTC|BUY": T0 + 1})
    assert check_signal(sig(), future, c, 0)[0].approved


def test_rule_order_first_failure_wins():
    state = ComplianceState(day=DAY, trades_today=99, last_approved={"ETH/BTC|BUY": T0})
    everything = cfg(
        restricted_symbols=["ETHBTC"], trading_hours_utc=(0, 1), max_notional_per_day=1.0
    )
    assert check_signal(sig(), state, everything, 5.0)[0].rule == "restricted_symbol"
    no_restr = everything.model_copy(update={"restricted_symbols": []})
    assert check_signal(sig(), state, no_restr, 5.0)[0].rule == "trading_hours"
    hours_ok = no_restr.model_copy(update={"trading_hours_utc": (0, 24)})
    assert check_signal(sig(), state, hours_ok, 5.0)[0].rule == "max_trades_per_day"
    trades_ok = hours_ok.model_copy(update={"max_trades_per_day": 100})
    assert check_signal(sig(), state, trades_ok, 5.0)[0].rule == "max_notional_per_day"
    assert check_signal(sig(), state, trades_ok, 0.5)[0].rule == "duplicate_signal"


def test_state_json_round_trip():
    _, new = check_signal(sig(), ComplianceState(), cfg(), 0)
    again = ComplianceState.model_validate(new.model_dump(mode="json"))
    assert again == new
