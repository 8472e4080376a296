"""The compiled kernel replays exactly what ``backend.mesh.simulate`` replays: the same
signals, decisions, orders and fills (as messages, ids included), marks and breaker trip.

A few seeded random configurations per strategy run here; ``benchmarks/kernel_parity.py``
runs hundreds (docs/benchmarks.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.backtest.kernel_check import mismatches, random_case
from backend.backtest.kernel_run import replay, supported
from backend.marketdata.candles import Candles, load_dir
from backend.mesh.simulate import simulate
from backend.settings import Settings

DATA = Path(__file__).resolve().parents[4] / "data" / "sample"
FAST = ["sma_cross", "momentum", "bollinger_reversion", "rsi_reversion", "vwap_momentum"]


@pytest.fixture(scope="module")
def candles() -> dict[str, Candles]:
    return load_dir(DATA)


@pytest.mark.parametrize("strategy", FAST)
def test_random_configurations_replay_identically(candles: dict[str, Candles],
                                                  strategy: str) -> None:
    fills = 0
    for seed in range(3):
        case = random_case(seed, strategy, candles)
        assert mismatches(case) == [], case.describe()
        fills += len(replay(case.settings, case.candles).fills)
    assert fills > 0  # the cases traded: the comparison was not of empty books


@pytest.mark.parametrize("strategy", ["smc", "ml_classifier"])
def test_slow_strategies_replay_identically(candles: dict[str, Candles],
                                            strategy: str) -> None:
    case = random_case(1, strategy, candles, bars=(250, 300))
    assert mismatches(case) == [], case.describe()


def test_every_rule_of_the_model_is_exercised_and_matches(candles: dict[str, Candles]) -> None:
    # shorts, reversals, Kelly sizing, tight compliance limits and a breaker that trips
    cut = {s: candles[s].slice(1000, 2500) for s in ("ETH/BTC", "LTC/BTC")}
    settings = Settings(
        default_strategy={"name": "sma_cross", "params": {"fast": 5, "slow": 20}},
        risk={"allow_short": True, "min_confidence": 0.2, "sizing": "kelly",
              "kelly_cap": 0.3, "daily_drawdown_limit": 0.03, "max_position_pct": 2.0,
              "max_symbol_exposure_pct": 2.0, "max_total_exposure_pct": 1.5},
        compliance={"max_trades_per_day": 6, "duplicate_window_s": 1800,
                    "trading_hours_utc": (2, 22)},
        paper={"initial_cash": 3.0, "fee_rate": 0.002, "slippage_bps": 5})
    sim = simulate(settings, cut)
    rules = {(stage, rule) for _, stage, _, rule in sim.decisions}
    for want in [("risk", "reverse_position"), ("compliance", "max_trades_per_day"),
                 ("compliance", "trading_hours"), ("risk", "ok")]:
        assert want in rules
    assert {f.exit_reason.value for f in sim.fills} >= {"entry", "stop_loss"}
    res = replay(settings, cut)
    assert res.fills == sim.fills and res.orders == sim.orders
    assert res.decisions == sim.decisions
    assert np.array_equal(res.equity, [m.equity for m in sim.marks])


def test_the_var_limit_is_refused_by_the_kernel_not_ignored(
        candles: dict[str, Candles]) -> None:
    settings = Settings(risk={"var_limit": 0.05})
    assert supported(settings) is not None
    with pytest.raises(ValueError, match="var_limit"):
        replay(settings, {"ETH/BTC": candles["ETH/BTC"].slice(0, 300)})
