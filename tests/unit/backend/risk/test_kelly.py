"""Kelly-fraction sizing (backend.risk.kelly) and its use by backend.risk.rules.decide."""

from __future__ import annotations

import math

import pytest

from backend.messages import Side, SignalGenerated
from backend.risk.kelly import kelly_fraction, kelly_risk
from backend.risk.rules import PortfolioView, RiskState, decide
from backend.settings import RiskConfig

WIDE = {"max_position_pct": 10.0, "max_symbol_exposure_pct": 10.0,
        "max_total_exposure_pct": 10.0, "min_confidence": 0.0}


def sig(conf: float = 0.6, entry: float = 100.0, stop: float = 98.0, tp: float = 104.0,
        side: Side = Side.BUY) -> SignalGenerated:
    return SignalGenerated(
        source="strategy:x", symbol="ETH/BTC", side=side, confidence=conf, entry_price=entry,
        stop_loss=stop, take_profit=tp, reason="t", strategy="sma_cross", bar_seq=1,
        bar_time=0)


def kcfg(**kw) -> RiskConfig:
    return RiskConfig(sizing="kelly", **{**WIDE, **kw})


@pytest.mark.parametrize(("p", "b", "f"), [
    (0.6, 2.0, 0.6 - 0.4 / 2),  # 0.4
    (0.5, 1.0, 0.0),            # a fair coin at even odds: no bet
    (0.55, 1.0, 0.1),
    (0.3, 2.0, 0.3 - 0.7 / 2),  # negative edge
])
def test_kelly_formula(p: float, b: float, f: float) -> None:
    assert kelly_fraction(p, b) == pytest.approx(f, abs=1e-15)


def test_kelly_without_reward_is_minus_infinity() -> None:
    assert kelly_fraction(0.9, 0.0) == -math.inf


def test_kelly_risk_is_fractional_and_capped() -> None:
    s = sig(conf=0.6)  # b = 4 / 2 = 2 -> f* = 0.4
    frac, why = kelly_risk(s, kcfg(kelly_fraction=0.05, kelly_cap=0.5), 2.0)
    assert frac == pytest.approx(0.05 * 0.4)
    assert "f* = 0.4" in why and "capped" not in why
    frac, why = kelly_risk(s, kcfg(kelly_fraction=0.5, kelly_cap=0.03), 2.0)
    assert frac == pytest.approx(0.03) and "(capped)" in why
    # a configured win rate replaces the confidence
    frac, _ = kelly_risk(s, kcfg(kelly_fraction=1.0, kelly_cap=1.0, kelly_win_rate=0.45), 2.0)
    assert frac == pytest.approx(0.45 - 0.55 / 2)


def test_decide_sizes_from_the_kelly_fraction() -> None:
    s = sig(conf=0.6)
    view = PortfolioView(cash=1000.0, equity=1000.0)
    d = decide(s, view, RiskState(), kcfg(kelly_fraction=0.05, kelly_cap=0.5), 0.0)
    assert d.approved and d.rule == "ok"
    assert d.quantity == pytest.approx(1000.0 * 0.02 / 2.0)  # risk 2% over a stop of 2
    assert d.reason.startswith("kelly p 0.6, b 2")
    capped = decide(s, view, RiskState(), kcfg(kelly_fraction=1.0, kelly_cap=0.01), 0.0)
    assert capped.quantity == pytest.approx(1000.0 * 0.01 / 2.0)
    fixed = decide(s, view, RiskState(), RiskConfig(**WIDE), 0.0)
    assert fixed.quantity == pytest.approx(1000.0 * 0.01 / 2.0)  # risk_per_trade 1%
    assert not fixed.reason.startswith("kelly")


def test_no_edge_sizes_zero() -> None:
    view = PortfolioView(cash=1000.0, equity=1000.0)
    d = decide(sig(conf=0.3), view, RiskState(), kcfg(), 0.0)  # f* = 0.3 - 0.7/2 < 0
    assert not d.approved and d.rule == "size_zero" and "no edge" in d.reason
    wrong_tp = sig(conf=0.9, tp=99.0)  # take-profit below a long's entry: no reward
    d = decide(wrong_tp, view, RiskState(), kcfg(), 0.0)
    assert d.rule == "size_zero"


def test_kelly_short_uses_mirrored_distances() -> None:
    s = sig(conf=0.6, entry=100.0, stop=102.0, tp=96.0, side=Side.SELL)
    view = PortfolioView(cash=1000.0, equity=1000.0)
    d = decide(s, view, RiskState(), kcfg(kelly_fraction=0.05, kelly_cap=0.5,
                                          allow_short=True), 0.0)
    assert d.approved and d.quantity == pytest.approx(1000.0 * 0.02 / 2.0)
