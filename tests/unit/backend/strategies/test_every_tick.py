"""The benchmark-only ``every_tick`` strategy and the mesh benchmark's rule settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backend.marketdata.candles import load_dir
from backend.mesh.simulate import simulate
from backend.settings import Settings, StrategyConfig
from backend.strategies.every_tick import EveryTick
from backend.strategies.registry import (
    BENCHMARK_STRATEGIES,
    STRATEGIES,
    get_strategy,
    strategies_json,
)
from backend.strategies.runner import StrategyRunner
from benchmarks.mesh_run import RULES

SAMPLE = Path(__file__).resolve().parents[4] / "data" / "sample"


@pytest.fixture(scope="module")
def eth():
    return load_dir(SAMPLE, ["ETH/BTC"])["ETH/BTC"]


def test_built_by_name_but_not_listed():
    assert isinstance(get_strategy("every_tick"), EveryTick)
    assert BENCHMARK_STRATEGIES["every_tick"] is EveryTick
    assert "every_tick" not in STRATEGIES
    assert "every_tick" not in {s["name"] for s in json.loads(strategies_json())}
    with pytest.raises(ValueError, match=r"known: bollinger_reversion, ml_classifier, momentum"):
        get_strategy("every_tock")


def test_buy_and_sell_in_turn_with_a_tight_bracket_on_every_bar(eth):
    bars = eth.slice(0, 300)
    frame = EveryTick().generate(bars, {"bracket_frac": 1e-6})
    even = (bars.time // 300_000_000_000) % 2 == 0
    np.testing.assert_array_equal(frame.side, np.where(even, 1, -1))
    assert (frame.confidence == 1.0).all()
    assert (np.diff(frame.side) != 0).all()  # 5-minute bars: the side flips every bar
    sign = frame.side.astype(float)
    np.testing.assert_allclose(frame.stop_loss, bars.close * (1 - sign * 1e-6))
    np.testing.assert_allclose(frame.take_profit, bars.close * (1 + sign * 1e-6))
    runner = StrategyRunner(EveryTick(), symbol="ETH/BTC")
    points = [runner.on_bar(int(bars.time[i]), bars.open[i], bars.high[i], bars.low[i],
                            bars.close[i], bars.volume[i]) for i in range(len(bars))]
    # from the first bar on, and the same side a whole-window backtest gives
    assert [p.side if p else None for p in points] == list(frame.side)


def test_with_the_benchmark_rules_every_tick_becomes_an_order(eth):
    settings = Settings(symbols=["ETH/BTC"], default_strategy=StrategyConfig(name="every_tick"),
                        **RULES)
    res = simulate(settings, {"ETH/BTC": eth}, limit=600)
    assert len(res.signals) == len(res.orders) == 600
    assert all(approved for _, _, approved, _ in res.decisions)
    assert res.halted_at is None
    # each fill's position is closed by its bracket within the same bar: flat at every mark
    assert all(not m.positions for m in res.marks)
    assert len(res.fills) == 2 * 599  # entry at the next open, bracket exit in that bar


def test_default_rules_would_reject_most_ticks(eth):
    settings = Settings(symbols=["ETH/BTC"], default_strategy=StrategyConfig(name="every_tick"))
    res = simulate(settings, {"ETH/BTC": eth}, limit=600)
    assert len(res.orders) < len(res.signals) // 2  # why the benchmark sets RULES
