"""vwap_momentum: session VWAP, sessions, entry rule, the session flatten (also through the
whole pipeline), finite memory and live parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend import indicators as ind
from backend.marketdata.candles import Candles, load_dir
from backend.mesh.simulate import simulate
from backend.messages import Side
from backend.settings import Settings, StrategyConfig
from backend.strategies.runner import StrategyRunner
from backend.strategies.vwap_momentum import (
    NS_PER_DAY,
    NS_PER_HOUR,
    NS_PER_MINUTE,
    VwapMomentum,
    session_clock,
)

SAMPLE = Path(__file__).resolve().parents[4] / "data" / "sample"
BAR = 5 * NS_PER_MINUTE


@pytest.fixture(scope="module")
def eth() -> Candles:
    return load_dir(SAMPLE, ["ETH/BTC"])["ETH/BTC"].slice(0, 1800)


def feed(runner: StrategyRunner, c: Candles) -> list:
    out = []
    for i in range(len(c)):
        p = runner.on_bar(int(c.time[i]), c.open[i], c.high[i], c.low[i], c.close[i],
                          c.volume[i])
        if p is not None:
            out.append(p)
    return out


# ------------------------------------------------------------------ VWAP and sessions
def test_vwap_resets_at_each_utc_day_like_a_pandas_groupby(eth):
    session, _, _ = session_clock(eth.time, 0, 24)
    got = ind.session_vwap(eth.high, eth.low, eth.close, eth.volume, session, 288)
    df = pd.DataFrame({"day": eth.time // NS_PER_DAY, "v": eth.volume,
                       "pv": (eth.high + eth.low + eth.close) / 3 * eth.volume})
    g = df.groupby("day")
    expect = (g["pv"].cumsum() / g["v"].cumsum()).to_numpy()
    np.testing.assert_allclose(got, expect, rtol=1e-12)
    first = np.flatnonzero(np.r_[True, np.diff(df["day"]) != 0])
    tp = (eth.high + eth.low + eth.close) / 3
    np.testing.assert_allclose(got[first], tp[first], rtol=1e-12)  # reset: VWAP = tp


def test_vwap_window_is_capped_at_max_bars_within_a_session(eth):
    session = np.zeros(len(eth), dtype=np.int64)  # one long session
    session[:100] = -1  # outside any session
    got = ind.session_vwap(eth.high, eth.low, eth.close, eth.volume, session, 50)
    assert np.isnan(got[:100]).all()
    pv = (eth.high + eth.low + eth.close) / 3 * eth.volume
    for i in (100, 120, 149, 150, 151, 900):
        a = max(100, i - 49)
        assert got[i] == pytest.approx(pv[a: i + 1].sum() / eth.volume[a: i + 1].sum(),
                                       rel=1e-12)
    # finite memory, bit for bit: the last 50 bars decide
    part = ind.session_vwap(eth.high[500:], eth.low[500:], eth.close[500:], eth.volume[500:],
                            session[500:], 50)
    np.testing.assert_array_equal(part[49:], got[549:])


def test_session_clock_same_day_and_overnight_sessions():
    day = 19_000 * NS_PER_DAY
    t = np.array([day + h * NS_PER_HOUR for h in (0, 12, 13, 19, 20, 23)], dtype=np.int64)
    sid, since, to_end = session_clock(t, 13, 7)  # 13:00-20:00 UTC
    assert sid.tolist() == [-1, -1, 19_000, 19_000, -1, -1]
    assert since[2] == 0 and to_end[3] == NS_PER_HOUR
    sid, _, to_end = session_clock(t, 22, 8)  # 22:00-06:00, over midnight
    assert sid.tolist() == [18_999, -1, -1, -1, -1, 19_000]
    assert to_end[0] == 6 * NS_PER_HOUR
    sid, _, _ = session_clock(t, 0, 24)
    assert (sid == 19_000).all()


# ------------------------------------------------------------------ the rules
def test_entries_follow_the_rule_and_flatten_once_per_session(eth):
    s = VwapMomentum()
    p = s.resolve_params({})
    f = s.generate(eth)
    session, since, to_end = session_clock(eth.time, 0, 24)
    vwap = ind.session_vwap(eth.high, eth.low, eth.close, eth.volume, session, 288)
    rsi = ind.rsi_cutler(eth.close, 14)
    atr_pct = 100 * ind.atr_sma(eth.high, eth.low, eth.close, 14) / eth.close
    window = to_end <= 10 * NS_PER_MINUTE
    cond = (~window & (since >= 30 * NS_PER_MINUTE) & (eth.close > vwap) & (rsi < 70)
            & (atr_pct > 0.3))
    w = s.warmup()
    assert w == 289
    buys = np.flatnonzero(cond & ~np.r_[False, cond[:-1]])
    ix = f.indices()
    assert ix[f.side[ix] > 0].tolist() == buys[buys >= w - 1].tolist()
    for i in ix[f.side[ix] > 0]:  # percent brackets
        assert f.stop_loss[i] == pytest.approx(eth.close[i] * (1 - p["stop_pct"] / 100))
        assert f.take_profit[i] == pytest.approx(eth.close[i] * (1 + p["target_pct"] / 100))
    flat = ix[f.side[ix] < 0]
    clock = (eth.time[flat] % NS_PER_DAY) // NS_PER_MINUTE
    assert flat.size >= 4 and (clock == 23 * 60 + 50).all()  # the 23:50 bar of every day
    assert all(f.is_exit(i) and f.confidence[i] == 0 for i in flat)
    assert "flatten" in f.reason_at(int(flat[0]))
    # the flatten can be turned off; sessions can be narrower
    off = s.generate(eth, {"flatten": 0})
    assert not (off.side < 0).any()
    narrow = s.generate(eth, {"session_start_hour": 13, "session_hours": 7})
    nix = narrow.indices()
    hours = (eth.time[nix] % NS_PER_DAY) // NS_PER_HOUR
    assert nix.size and ((hours >= 13) & (hours < 20)).all()
    nflat = nix[narrow.side[nix] < 0]
    assert ((eth.time[nflat] % NS_PER_DAY) // NS_PER_MINUTE == 19 * 60 + 50).all()


# ------------------------------------------------------------------ finite memory, live
def test_no_look_ahead(eth):
    s = VwapMomentum()
    full = s.generate(eth)
    rng = np.random.default_rng(5)
    for t in (700, 1234, len(eth) - 2):
        noise = rng.uniform(0.9, 1.1, len(eth) - t - 1)
        fut = Candles(eth.symbol, eth.time, *(
            np.r_[a[: t + 1], a[t + 1:] * noise]
            for a in (eth.open, eth.high, eth.low, eth.close, eth.volume)))
        for g in (s.generate(eth.slice(0, t + 1)), s.generate(fut)):
            for a, b in ((g.side, full.side), (g.confidence, full.confidence),
                         (g.stop_loss, full.stop_loss), (g.take_profit, full.take_profit)):
                np.testing.assert_array_equal(a[: t + 1], b[: t + 1])
            assert [g.point(i) for i in g.indices() if i <= t] == \
                [full.point(i) for i in full.indices() if i <= t]


def test_runner_equals_generate_on_real_data(eth):
    s = VwapMomentum()
    expect = s.generate(eth).points()
    got = feed(StrategyRunner(s, symbol="ETH/BTC"), eth)
    assert len(got) == len(expect) > 30
    assert got == expect
    trimmed = feed(StrategyRunner(s, max_history=s.warmup() + 2, eval_window=s.warmup()), eth)
    assert trimmed == expect


# ------------------------------------------------------------------ flatten through the pipeline
def rising_days(days: int = 3) -> Candles:
    """5-minute bars from a UTC midnight: a zig-zag up-trend (+2, -1 ticks), RSI ~67."""
    n = days * 288
    t0 = 19_000 * NS_PER_DAY
    steps = np.where(np.arange(n) % 2 == 0, 2.0, -1.0) * 1e-5
    close = 0.05 + np.cumsum(steps)
    open_ = np.r_[close[0], close[:-1]]
    return Candles("ETH/BTC", t0 + np.arange(n, dtype=np.int64) * BAR, open_,
                   np.maximum(open_, close) * 1.003, np.minimum(open_, close) * 0.997, close,
                   np.full(n, 100.0))


def test_flatten_closes_an_open_long_before_the_session_close():
    candles = rising_days()
    cfg = StrategyConfig(name="vwap_momentum", params={"target_pct": 20, "stop_pct": 20})
    s = Settings(symbols=["ETH/BTC"], default_strategy=cfg)
    s = s.model_copy(update={"risk": s.risk.model_copy(update={"min_confidence": 0.0})})
    res = simulate(s, {"ETH/BTC": candles})
    buys = [x for x in res.fills if x.side is Side.BUY]
    sells = [x for x in res.fills if x.side is Side.SELL]
    assert buys and sells
    day1 = 19_001 * NS_PER_DAY
    # entered on day 1 (after the warmup and the 30-minute open delay), held all day ...
    assert day1 < buys[0].fill_time < day1 + 2 * NS_PER_HOUR
    # ... and closed at the open of the session's last bar (23:55), before the close
    close_fill = sells[0]
    assert close_fill.fill_time == day1 + NS_PER_DAY - BAR
    assert close_fill.quantity == pytest.approx(buys[0].quantity)
    rules = {rule for sid, stage, ok, rule in res.decisions if stage == "risk" and ok}
    assert "close_position" in rules  # the exit-only SELL became a reduce-only close
    orders = {o.signal_id: o for o in res.orders}
    closing = [o for o in orders.values() if o.side is Side.SELL]
    assert closing and all(o.reduce_only for o in closing)
    marks = {m.bar_time: m for m in res.marks}
    assert marks[day1 + NS_PER_DAY - 2 * BAR].positions  # long at 23:50
    assert not marks[day1 + NS_PER_DAY - BAR].positions  # flat from 23:55
    flat_signal = next(x for x in res.signals if x.side is Side.SELL)
    assert flat_signal.confidence == 0.0 and "flatten" in flat_signal.reason
    # without the flatten the long is carried over midnight
    off = simulate(s.model_copy(update={"default_strategy": cfg.model_copy(
        update={"params": {**cfg.params, "flatten": 0}})}), {"ETH/BTC": candles})
    assert not [x for x in off.fills if x.side is Side.SELL]
    assert {m.bar_time: m for m in off.marks}[day1 + NS_PER_DAY].positions


@pytest.mark.parametrize("n", [0, 1, 2, 300])
def test_short_series_give_no_signals(n):
    c = rising_days(2).slice(0, n)
    f = VwapMomentum().generate(c)
    assert len(f) == n and not f.side[: min(n, 288)].any()
    assert [p.index for p in f.points()] == [int(i) for i in f.indices()]
