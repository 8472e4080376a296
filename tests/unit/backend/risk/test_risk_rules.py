"""Risk rules (backend.risk.rules): circuit breaker and order sizing."""

from __future__ import annotations

import pytest

from backend.messages import Side, SignalGenerated
from backend.risk.rules import (
    PortfolioView,
    PositionView,
    RiskState,
    daily_drawdown,
    decide,
    reset_breaker,
    update_breaker,
)
from backend.settings import RiskConfig

FEE = 0.001
WIDE = {"max_position_pct": 10.0, "max_symbol_exposure_pct": 10.0, "max_total_exposure_pct": 10.0}


def sig(side=Side.BUY, entry=0.05, stop=None, conf=0.9, symbol="ETH/BTC") -> SignalGenerated:
    if stop is None:
        stop = 0.049 if side is Side.BUY else 0.051
    return SignalGenerated(
        source="strategy:ETHBTC", symbol=symbol, side=side, confidence=conf,
        entry_price=entry, stop_loss=stop, take_profit=0.06 if side is Side.BUY else 0.04,
        reason="t", strategy="sma_cross", bar_seq=3, bar_time=0,
    )


def pf(cash=1.0, positions=None, **kw) -> PortfolioView:
    positions = positions or {}
    equity = cash + sum(p.quantity * p.mark for p in positions.values())
    return PortfolioView(cash=cash, equity=kw.pop("equity", equity), positions=positions, **kw)


def rcfg(**kw) -> RiskConfig:
    return RiskConfig(**kw)


# ----------------------------------------------------------------- breaker
def test_daily_drawdown_definition():
    assert daily_drawdown(98.0, 100.0) == pytest.approx(0.02)
    assert daily_drawdown(105.0, 100.0) == 0.0
    assert daily_drawdown(1.0, 0.0) == 0.0


def test_breaker_trips_at_exactly_the_limit():
    p = pf(cash=98.0, day=7, day_start_equity=100.0)
    st, tripped = update_breaker(RiskState(), p, rcfg(daily_drawdown_limit=0.02))
    assert tripped and st.halted and st.day == 7 and st.day_start_equity == 100.0
    assert "2.0000%" in st.halt_reason
    # float round-off at the limit (0.98 of 1.0, 0.9 of 0.9*...) still trips
    st, tripped = update_breaker(RiskState(), pf(cash=0.98, day_start_equity=1.0, day=7), rcfg())
    assert tripped


def test_breaker_just_below_limit_does_not_trip():
    p = pf(cash=98.001, day=7, day_start_equity=100.0)
    st, tripped = update_breaker(RiskState(), p, rcfg(daily_drawdown_limit=0.02))
    assert not tripped and not st.halted


def test_breaker_latches_until_reset():
    c = rcfg(daily_drawdown_limit=0.02)
    st, tripped = update_breaker(RiskState(), pf(cash=97.0, day=7, day_start_equity=100.0), c)
    assert tripped
    # deeper drawdown: still halted, but it does not trip (alert) a second time
    st1, tripped = update_breaker(st, pf(cash=90.0, day=7, day_start_equity=100.0), c)
    assert st1.halted and not tripped and st1.halt_reason == st.halt_reason
    # equity recovers, and a new day starts: still halted, not "tripped now"
    st2, tripped = update_breaker(st, pf(cash=100.0, day=7, day_start_equity=100.0), c)
    assert st2.halted and not tripped
    st3, tripped = update_breaker(st2, pf(cash=100.0, day=8, day_start_equity=100.0), c)
    assert st3.halted and not tripped and st3.day == 8
    assert decide(sig(), pf(cash=100.0), st3, rcfg(), FEE).rule == "halted"
    st4 = reset_breaker(st3, "operator ok")
    assert not st4.halted and st3.halted and "operator ok" in st4.halt_reason
    st5, tripped = update_breaker(st4, pf(cash=99.0, day=8, day_start_equity=100.0), c)
    assert not st5.halted and not tripped


def test_breaker_rolls_day_start_equity():
    st = RiskState(day=5, day_start_equity=100.0)
    # on day 6 the reference is 90: 89 is a 1.1% drawdown, not the 11% vs yesterday
    st2, tripped = update_breaker(st, pf(cash=89.0, day=6, day_start_equity=90.0), rcfg())
    assert not tripped and st2.day == 6 and st2.day_start_equity == 90.0
    assert st.day == 5  # input untouched
    # same day: reference is kept even if the view says otherwise
    st3, tripped = update_breaker(st2, pf(cash=88.0, day=6, day_start_equity=88.0), rcfg())
    assert tripped and st3.day_start_equity == 90.0


# ----------------------------------------------------------------- sizing
def test_size_from_one_percent_risk_over_stop_distance():
    # equity 1.0, risk 1% = 0.01, stop distance 0.05 - 0.049 = 0.001 -> 10 base, 0.5 quote
    d = decide(sig(), pf(cash=1.0), RiskState(), rcfg(**WIDE), FEE)
    assert d.approved and d.rule == "ok" and d.side is Side.BUY
    assert d.quantity == pytest.approx(10.0)
    assert d.notional == pytest.approx(0.5)
    assert (d.stop_loss, d.take_profit, d.reduce_only) == (0.049, 0.06, False)
    assert "capped" not in d.reason


def test_cap_max_position_pct():
    d = decide(sig(), pf(cash=1.0), RiskState(), rcfg(**{**WIDE, "max_position_pct": 0.25}), FEE)
    assert d.approved and d.quantity == pytest.approx(5.0) and d.notional == pytest.approx(0.25)
    assert "capped by max_position_pct" in d.reason


def test_cap_symbol_exposure():
    c = rcfg(**{**WIDE, "max_symbol_exposure_pct": 0.2})
    d = decide(sig(), pf(cash=1.0), RiskState(), c, FEE)
    assert d.quantity == pytest.approx(4.0)
    assert "capped by symbol exposure" in d.reason


def test_cap_total_exposure():
    # short LTC worth 0.7 (cash 1.7, equity 1.0): total room 1.0 - 0.7 = 0.3 -> 6 ETH
    ltc = PositionView(quantity=-14.0, avg_price=0.05, mark=0.05)
    p = pf(cash=1.7, positions={"LTC/BTC": ltc})
    assert p.equity == pytest.approx(1.0) and p.total_exposure() == pytest.approx(0.7)
    d = decide(sig(), p, RiskState(), rcfg(**{**WIDE, "max_total_exposure_pct": 1.0}), FEE)
    assert d.quantity == pytest.approx(6.0)
    assert "capped by total exposure" in d.reason


def test_cap_cash_for_longs():
    # long LTC worth 0.9, cash 0.1: cash cap 0.1 / 1.001 quote
    ltc = PositionView(quantity=18.0, avg_price=0.05, mark=0.05)
    d = decide(sig(), pf(cash=0.1, positions={"LTC/BTC": ltc}), RiskState(), rcfg(**WIDE), FEE)
    assert d.notional == pytest.approx(0.1 / 1.001)
    assert d.quantity == pytest.approx(0.1 / 1.001 / 0.05)
    assert "capped by cash" in d.reason


def test_size_zero_when_no_room():
    ltc = PositionView(quantity=-20.0, avg_price=0.05, mark=0.05)  # exposure 1.0 = 100%
    p = pf(cash=2.0, positions={"LTC/BTC": ltc})
    d = decide(sig(), p, RiskState(), rcfg(**{**WIDE, "max_total_exposure_pct": 1.0}), FEE)
    assert not d.approved and d.rule == "size_zero" and d.quantity == 0
    d = decide(sig(), pf(cash=1.0), RiskState(), rcfg(**WIDE), FEE, min_notional=0.6)
    assert d.rule == "size_zero"


def test_min_confidence():
    d = decide(sig(conf=0.8), pf(), RiskState(), rcfg(min_confidence=0.85), FEE)
    assert not d.approved and d.rule == "min_confidence"
    assert "0.8" in d.reason and "0.85" in d.reason
    assert decide(sig(conf=0.85), pf(), RiskState(), rcfg(min_confidence=0.85), FEE).approved


def test_short_not_allowed_and_allowed():
    d = decide(sig(Side.SELL), pf(), RiskState(), rcfg(**WIDE), FEE)
    assert not d.approved and d.rule == "short_not_allowed"
    d = decide(sig(Side.SELL), pf(), RiskState(), rcfg(**WIDE, allow_short=True), FEE)
    assert d.approved and d.side is Side.SELL and d.quantity == pytest.approx(10.0)
    assert d.stop_loss == 0.051


@pytest.mark.parametrize(
    ("side", "stop"), [(Side.BUY, 0.051), (Side.BUY, 0.05), (Side.SELL, 0.049)]
)
def test_invalid_stop(side, stop):
    d = decide(sig(side, stop=stop), pf(), RiskState(), rcfg(allow_short=True), FEE)
    assert not d.approved and d.rule == "invalid_stop"


def test_already_in_position():
    eth = PositionView(quantity=3.0, avg_price=0.05, mark=0.05)
    d = decide(sig(), pf(cash=0.85, positions={"ETH/BTC": eth}), RiskState(), rcfg(), FEE)
    assert not d.approved and d.rule == "already_in_position"


def test_opposite_signal_closes_when_shorts_disabled_even_with_low_confidence():
    eth = PositionView(quantity=3.0, avg_price=0.05, mark=0.05)
    p = pf(cash=0.85, positions={"ETH/BTC": eth})
    d = decide(sig(Side.SELL, conf=0.1), p, RiskState(), rcfg(max_position_pct=0.01), FEE)
    assert d.approved and d.rule == "close_position" and d.reduce_only
    assert d.quantity == 3.0 and d.side is Side.SELL
    assert d.stop_loss is None and d.take_profit is None


def test_opposite_signal_with_low_confidence_closes_even_if_shorts_allowed():
    eth = PositionView(quantity=3.0, avg_price=0.05, mark=0.05)
    p = pf(cash=0.85, positions={"ETH/BTC": eth})
    d = decide(sig(Side.SELL, conf=0.5), p, RiskState(), rcfg(allow_short=True), FEE)
    assert d.rule == "close_position" and d.reduce_only and d.quantity == 3.0


def test_reversal_long_to_short():
    eth = PositionView(quantity=3.0, avg_price=0.05, mark=0.05)
    p = pf(cash=0.85, positions={"ETH/BTC": eth})
    d = decide(sig(Side.SELL), p, RiskState(), rcfg(**WIDE, allow_short=True), FEE)
    # close 3, then 1% of 1.0 over 0.001 = 10 short
    assert d.approved and d.rule == "reverse_position" and not d.reduce_only
    assert d.quantity == pytest.approx(13.0)
    assert (d.stop_loss, d.take_profit) == (0.051, 0.04)


def test_reversal_frees_the_closed_exposure():
    eth = PositionView(quantity=3.0, avg_price=0.05, mark=0.05)  # exposure 0.15
    p = pf(cash=0.85, positions={"ETH/BTC": eth})
    c = rcfg(**{**WIDE, "max_symbol_exposure_pct": 0.2}, allow_short=True)
    d = decide(sig(Side.SELL), p, RiskState(), c, FEE)
    # new short leg capped at 0.2 of equity 1.0 (not 0.2 - 0.15): 4 base, plus the 3 closed
    assert d.rule == "reverse_position" and d.quantity == pytest.approx(7.0)


def test_reversal_short_to_long_caps_by_cash_after_cover():
    eth = PositionView(quantity=-10.0, avg_price=0.05, mark=0.05)
    p = pf(cash=0.9, positions={"ETH/BTC": eth})  # equity 0.4
    # risk notional 0.4 * 1% / 0.0005 * 0.05 = 0.4; cash left after the cover is less
    d = decide(sig(Side.BUY, stop=0.0495), p, RiskState(), rcfg(**WIDE, allow_short=True), FEE)
    cover_cost = 10 * 0.05 * 1.001
    new_notional = (0.9 - cover_cost) / 1.001
    assert new_notional < 0.4
    assert d.rule == "reverse_position"
    assert d.quantity == pytest.approx(10.0 + new_notional / 0.05)
    assert "capped by cash" in d.reason


def test_reversal_with_invalid_stop_falls_back_to_close():
    eth = PositionView(quantity=3.0, avg_price=0.05, mark=0.05)
    p = pf(cash=0.85, positions={"ETH/BTC": eth})
    d = decide(sig(Side.SELL, stop=0.049), p, RiskState(), rcfg(allow_short=True), FEE)
    assert d.rule == "close_position" and "invalid_stop" in d.reason


def test_portfolio_view_helpers_and_json():
    eth = PositionView(quantity=-2.0, avg_price=0.05, mark=0.06)
    p = pf(cash=1.0, positions={"ETH/BTC": eth})
    assert p.exposure("ETH/BTC") == pytest.approx(0.12)
    assert p.exposure("ETHBTC") == pytest.approx(0.12)
    assert p.exposure("LTC/BTC") == 0.0
    assert PortfolioView.model_validate(p.model_dump(mode="json")) == p
    st = RiskState(halted=True, halt_reason="x", day=3, day_start_equity=1.5)
    assert RiskState.model_validate(st.model_dump(mode="json")) == st
