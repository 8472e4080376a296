"""Signal kernels are the strategies' own direction rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.backtest.signals import GenerateSignals, SmaCrossSignals, signal_source
from backend.marketdata.candles import Candles, load_candles
from backend.strategies.momentum import Momentum
from backend.strategies.sma_cross import SmaCross

DATA = Path(__file__).resolve().parents[4] / "data" / "sample"


@pytest.fixture(scope="module", params=["ETH_BTC-5m.csv", "ADA_BTC-5m.csv"])
def bars(request: pytest.FixtureRequest) -> Candles:
    return load_candles(DATA / request.param)


@pytest.mark.parametrize("params", [{}, {"fast": 10, "slow": 20}, {"fast": 3, "slow": 5},
                                    {"fast": 30, "slow": 70, "atr_period": 50}])
def test_sma_kernel_is_generate_without_the_warmup_filter(bars: Candles, params: dict) -> None:
    src = signal_source("sma_cross", bars)
    assert isinstance(src, SmaCrossSignals)
    kernel = src.side(params)
    strat = SmaCross()
    gen = strat.generate(bars, params).side
    assert kernel.dtype == np.int8 and kernel.shape == gen.shape
    emitted = gen != 0
    assert emitted.sum() > 10
    # every signal generate emits is the kernel's, bit for bit (same rolling means)
    np.testing.assert_array_equal(kernel[emitted], gen[emitted])
    # generate only drops signals before its confidence normaliser is defined
    warm = strat.warmup(params) - 1
    np.testing.assert_array_equal(kernel[warm:], gen[warm:])
    # the kernel starts at the first bar where the crossing rule is defined
    slow = strat.resolve_params(params)["slow"]
    assert not kernel[:slow].any()
    assert kernel[slow:warm].any()


def test_kernel_memoises_rolling_means(bars: Candles) -> None:
    src = signal_source("sma_cross", bars)
    a = src.rolling_mean(10)
    assert src.rolling_mean(10) is a and not a.flags.writeable
    src.side({"fast": 10, "slow": 20})
    assert set(src._means) == {10, 20}


def test_other_strategies_fall_back_to_generate(bars: Candles) -> None:
    src = signal_source("momentum", bars)
    assert isinstance(src, GenerateSignals)
    np.testing.assert_array_equal(src.side({"lookback": 6}),
                                  Momentum().generate(bars, {"lookback": 6}).side)

    class Custom(SmaCross):  # a subclass may change the rule: no kernel
        pass

    assert isinstance(signal_source(Custom(), bars), GenerateSignals)


def test_bad_names_and_params() -> None:
    bars = load_candles(DATA / "ETH_BTC-5m.csv")
    with pytest.raises(ValueError, match="unknown strategy"):
        signal_source("nope", bars)
    with pytest.raises(ValueError, match="'fast'"):
        signal_source("sma_cross", bars).side({"fast": 1})


def test_kernel_follows_the_strategy_on_exact_ties() -> None:
    # integer closes and windows 2 / 8: the SMAs are exact, so d = fast - slow hits 0
    rng = np.random.default_rng(7)
    close = rng.integers(95, 105, size=400).astype(float)
    t = np.arange(400, dtype=np.int64) * 300_000_000_000
    bars = Candles("X/Y", t, close, close + 1, close - 1, close, np.ones(400))
    params = {"fast": 2, "slow": 8}
    src = signal_source("sma_cross", bars)
    d = src.rolling_mean(2) - src.rolling_mean(8)
    ties = np.flatnonzero(d[:-1] == 0)
    kernel, gen = src.side(params), SmaCross().generate(bars, params).side
    warm = SmaCross().warmup(params) - 1
    assert (kernel[ties[ties >= warm] + 1] != 0).any()  # some signals leave a tie
    np.testing.assert_array_equal(kernel[warm:], gen[warm:])
