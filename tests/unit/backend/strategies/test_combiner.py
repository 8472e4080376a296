"""The combined strategy: weighted confidence vote, brackets and reason, declared prefixed
parameters (optimizable), finite memory, live parity, pickling."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from backend.marketdata.candles import Candles, load_dir
from backend.optimizer.genome import Genome
from backend.settings import StrategyConfig
from backend.strategies.base import OHLCV, ParamSpec, SignalFrame, Strategy, finish_brackets
from backend.strategies.build import build_strategy
from backend.strategies.combiner import Combined, Component
from backend.strategies.registry import get_strategy
from backend.strategies.runner import StrategyRunner

SAMPLE = Path(__file__).resolve().parents[4] / "data" / "sample"
REAL = StrategyConfig(name="combined", threshold=0.4, components=[
    {"name": "rsi_reversion", "weight": 1.0},
    {"name": "bollinger_reversion", "weight": 1.0, "params": {"num_sd": 1.8}},
    {"name": "vwap_momentum", "weight": 2.0},
])


@pytest.fixture(scope="module")
def eth() -> Candles:
    return load_dir(SAMPLE, ["ETH/BTC"])["ETH/BTC"].slice(0, 1800)


class Scripted(Strategy):
    """Signals at given bars: ``{index: (side, confidence, exit)}``; stop/target at
    ``close -/+ side * k%`` with ``k = 1 + index of the script``."""

    name = "scripted"
    params: ClassVar = (
        ParamSpec("low", "int", 0, 10, 1, "a lower bound (must be < high)"),
        ParamSpec("high", "int", 1, 10, 5, "an upper bound"),
    )

    def __init__(self, script: dict[int, tuple[int, float, bool]], pct: float = 1.0) -> None:
        self.script = script
        self.pct = pct

    @classmethod
    def check_params(cls, params: dict[str, int | float]) -> None:
        if params["low"] >= params["high"]:
            raise ValueError(f"parameter 'low' ({params['low']}) must be smaller than "
                             f"'high' ({params['high']})")

    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        return 2

    def _generate(self, bars: OHLCV, params: dict[str, int | float]) -> SignalFrame:
        close = np.asarray(bars.close, dtype=np.float64)
        n = len(close)
        side, conf, ex = np.zeros(n, np.int8), np.zeros(n), np.zeros(n, bool)
        for i, (sd, c, e) in self.script.items():
            if i < n:
                side[i], conf[i], ex[i] = sd, c, e
        stop = close * (1 - side * self.pct / 100)
        target = close * (1 + side * 2 * self.pct / 100)
        return finish_brackets(bars, side, conf, stop, target,
                               lambda i: f"scripted {self.pct:g}% at {i}", exit=ex)


def flat(n: int = 60) -> Candles:
    c = np.linspace(1.0, 1.1, n)
    return Candles("TST/BTC", np.arange(n, dtype=np.int64) * 300 * 10**9, c, c * 1.01,
                   c * 0.99, c, np.ones(n))


def combo(a: dict, b: dict, *, wa: float = 1.0, wb: float = 1.0, threshold: float = 0.8,
          memory: int = 6) -> Combined:
    return Combined([Component("a", Scripted(a, 1.0), wa), Component("b", Scripted(b, 2.0), wb)],
                    threshold=threshold, memory=memory)


# ------------------------------------------------------------------ the vote
def test_agreement_within_memory_fires_with_the_vote_as_confidence():
    s = combo({10: (1, 0.9, False)}, {12: (1, 0.8, False)})
    f = s.generate(flat())
    assert f.indices().tolist() == [12]  # bar 10 alone: vote 0.45 < 0.8
    p = f.point(12)
    assert p.side == 1 and p.confidence == pytest.approx(0.85)  # (0.9 + 0.8) / 2
    close = flat().close[12]
    # lead: the fresh signal at bar 12 (b): its own stop and target
    assert (p.stop_loss, p.take_profit) == (pytest.approx(close * 0.98),
                                            pytest.approx(close * 1.04))
    assert p.reason.startswith("combined vote +0.85") and "lead b: scripted 2%" in p.reason
    assert not p.exit
    # the same pair, too far apart for the memory: nothing
    assert not combo({10: (1, 0.9, False)}, {12: (1, 0.8, False)}, memory=2).generate(
        flat()).side.any()


def test_weights_and_threshold():
    a, b = {10: (1, 0.9, False)}, {10: (-1, 0.6, False)}
    # a alone with 3/4 of the weight: 0.75*0.9 - 0.25*0.6 = 0.525
    f = combo(a, b, wa=3, wb=1, threshold=0.5).generate(flat())
    assert f.indices().tolist() == [10] and f.side[10] == 1
    assert f.confidence[10] == pytest.approx(0.525)
    assert not combo(a, b, wa=3, wb=1, threshold=0.6).generate(flat()).side.any()
    g = combo(a, b, wa=1, wb=5, threshold=0.3).generate(flat())  # 0.15 - 0.5 = -0.35
    assert g.side[10] == -1 and g.confidence[10] == pytest.approx(0.35)


def test_lead_is_the_largest_weighted_confidence():
    s = combo({10: (1, 0.9, False)}, {10: (1, 0.7, False)}, wa=1, wb=2, threshold=0.5)
    p = s.generate(flat()).point(10)
    assert "lead b" in p.reason  # 2 * 0.7 > 1 * 0.9
    assert p.stop_loss == pytest.approx(flat().close[10] * 0.98)


def test_any_component_exit_becomes_a_combined_exit():
    s = combo({10: (1, 0.9, False), 20: (-1, 0.0, True)}, {12: (1, 0.8, False)})
    f = s.generate(flat())
    assert f.indices().tolist() == [12, 20]
    p = f.point(20)
    assert p.side == -1 and p.exit and p.confidence == 0.0
    assert p.reason.startswith("combined exit by a")
    # an exit cancels its component's vote
    s2 = combo({10: (1, 0.9, False), 11: (-1, 0.0, True)}, {12: (1, 0.8, False)})
    assert s2.generate(flat()).indices().tolist() == [11]  # 12: vote 0.4 only


# ------------------------------------------------------------------ declared parameters
def test_parameters_are_prefixed_and_default_to_the_configured_ones():
    s = build_strategy(REAL)
    names = [p.name for p in s.params]
    assert names[:2] == ["threshold", "memory"]
    rsi = get_strategy("rsi_reversion")
    assert [n for n in names if n.startswith("rsi_reversion.")] == [
        f"rsi_reversion.{p.name}" for p in rsi.params]
    d = s.defaults()
    assert d["threshold"] == 0.4 and d["bollinger_reversion.num_sd"] == 1.8
    assert d["vwap_momentum.target_pct"] == 1.4
    assert s.resolve_params({"rsi_reversion.period": "10"})["rsi_reversion.period"] == 10
    with pytest.raises(ValueError, match="'rsi_reversion.oversold'.*'rsi_reversion.overbought'"):
        s.resolve_params({"rsi_reversion.oversold": 50, "rsi_reversion.overbought": 50})
    with pytest.raises(ValueError, match="has no parameter 'period'"):
        s.resolve_params({"period": 10})
    w = max(get_strategy(n).warmup() for n in ("rsi_reversion", "bollinger_reversion",
                                                 "vwap_momentum"))
    assert s.warmup() == w + 6 - 1


def test_genome_repairs_a_component_constraint_by_its_prefixed_names():
    s = Combined([Component("x", Scripted({}), 1.0)], threshold=0.5)
    g = Genome(s)
    assert g.names == ["threshold", "memory", "x.low", "x.high"]
    genes = g.repair([0.5, 3, 7, 2])  # low 7 >= high 2: swapped
    assert genes[2:] == [2, 7] and g.feasible(genes)
    with pytest.raises(ValueError, match="component 'x': parameter 'x.low'"):
        Combined([Component("x", Scripted({}), 1.0, {"low": 6, "high": 6})])


def test_bad_compositions_are_refused():
    with pytest.raises(ValueError, match="at least one component"):
        Combined([])
    with pytest.raises(ValueError, match="used twice"):
        Combined([Component("a", Scripted({})), Component("a", Scripted({}))])
    with pytest.raises(ValueError, match="weight must be > 0"):
        Combined([Component("a", Scripted({}), 0.0)])
    with pytest.raises(ValueError, match="without '.'"):
        Combined([Component("a.b", Scripted({}))])
    with pytest.raises(ValueError, match="out of range"):
        Combined([Component("a", Scripted({}))], threshold=1.5)


# ------------------------------------------------------------------ real data
def test_vote_on_real_data_matches_a_plain_loop(eth):
    s = build_strategy(REAL)
    p = s.resolve_params({})
    f = s.generate(eth)
    comps = [(c.label, c.weight, c.strategy.generate(eth, s.component_params(p, c)))
             for c in s.components]
    total = sum(w for _, w, _ in comps)
    n_entries = 0
    for i in range(s.warmup() - 1, len(eth)):
        vote = 0.0
        for _, w, g in comps:
            recent = [j for j in range(i - p["memory"] + 1, i + 1) if g.side[j] != 0]
            if recent and not g.is_exit(recent[-1]):
                vote += w * g.side[recent[-1]] * g.confidence[recent[-1]]
        vote /= total
        fresh = [g for _, _, g in comps if g.side[i] > 0 and not g.is_exit(i)]
        if fresh and vote >= p["threshold"]:
            assert f.side[i] == 1 and f.confidence[i] == pytest.approx(vote, abs=1e-12)
            n_entries += 1
        elif any(g.is_exit(i) for _, _, g in comps):
            assert f.side[i] == -1 and f.is_exit(i)
        else:
            assert f.side[i] == 0
    assert n_entries > 5


def test_no_look_ahead_and_runner_parity(eth):
    s = build_strategy(REAL)
    full = s.generate(eth)
    for t in (800, len(eth) - 2):
        part = s.generate(eth.slice(0, t + 1))
        np.testing.assert_array_equal(part.side, full.side[: t + 1])
        np.testing.assert_array_equal(part.confidence, full.confidence[: t + 1])
        assert [part.point(i) for i in part.indices()] == \
            [full.point(i) for i in full.indices() if i <= t]
    expect = full.points()
    r = StrategyRunner(s)
    got = [q for i in range(len(eth)) if (q := r.on_bar(
        int(eth.time[i]), eth.open[i], eth.high[i], eth.low[i], eth.close[i],
        eth.volume[i])) is not None]
    assert len(got) == len(expect) > 20 and got == expect
    assert all(q.regime for q in got)


def test_pickles_with_the_same_signals(eth):
    s = build_strategy(REAL.model_copy(update={"regimes": ["ranging"]}))
    back = pickle.loads(pickle.dumps(s))
    assert back.name == "combined" and [p.name for p in back.params] == [
        p.name for p in s.params]
    assert back.generate(eth).points() == s.generate(eth).points()


@pytest.mark.parametrize("n", [0, 1, 2, 50])
def test_short_series_give_no_signals(n):
    for cfg in (REAL, REAL.model_copy(update={"regimes": ["high_vol"]})):
        f = build_strategy(cfg).generate(flat(n))
        assert len(f) == n and not f.side.any() and f.points() == []
