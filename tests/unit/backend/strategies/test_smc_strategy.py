"""The ``smc`` strategy: concepts dated causally, no look-ahead, finite memory (live ==
backtest), signal rule, confidence, backtester and optimizer on the shipped data."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.backtest import run_backtest
from backend.marketdata.candles import Candles, load_dir
from backend.optimizer.models import OptimizeConfig
from backend.optimizer.runner import optimize
from backend.strategies import smc_concepts as sc
from backend.strategies import smc_zones as sz
from backend.strategies.registry import STRATEGIES, get_strategy
from backend.strategies.runner import StrategyRunner
from backend.strategies.smc import SmartMoney, confidence_of

with contextlib.redirect_stdout(io.StringIO()):
    from smartmoneyconcepts import smc as pkg

SAMPLE = Path(__file__).resolve().parents[4] / "data" / "sample"
WICK = 0.002


@pytest.fixture(scope="module")
def data() -> dict[str, Candles]:
    return load_dir(SAMPLE)


@pytest.fixture(scope="module")
def eth(data) -> Candles:
    return data["ETH/BTC"]


@pytest.fixture(scope="module")
def eth_frame(eth):
    return SmartMoney().generate(eth)


def bars_from_closes(closes, wick: float = WICK) -> Candles:
    """Hand-made bars: open = previous close, high/low = body +/- ``wick``."""
    c = np.asarray(closes, dtype=np.float64)
    o = np.r_[c[:1], c[:-1]]
    n = len(c)
    return Candles("TST/BTC", np.arange(n, dtype=np.int64) * 300 * 10**9, o,
                   np.maximum(o, c) + wick, np.minimum(o, c) - wick, c, np.ones(n))


def ohlcv(c: Candles) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(a) for a in (c.open, c.high, c.low, c.close, c.volume))


def frame_of(c: Candles) -> pd.DataFrame:
    return pd.DataFrame({"open": c.open, "high": c.high, "low": c.low, "close": c.close,
                         "volume": c.volume})


# A flat zigzag (equal highs and lows: no structure), then a bullish BOS: high 1.05,
# higher low 1.02, a rally of wide bars (a bullish fair value gap at each) to 1.12, a
# pause above the gaps and a retrace into the top gap [1.112, 1.118].
PREAMBLE = [1.00, 1.003, 1.006, 1.01, 1.007, 1.004] * 16
RALLY = ([1.01, 1.02, 1.03, 1.04, 1.05, 1.045, 1.04, 1.035, 1.03, 1.025, 1.02]
         + [1.03, 1.04, 1.05, 1.06, 1.07, 1.08, 1.09, 1.10, 1.11, 1.12]
         + [1.125, 1.128, 1.126, 1.129, 1.127, 1.125]
         + [1.122, 1.116, 1.114, 1.112])
HAND = {"swing_length": 2, "lookback": 100}


# ------------------------------------------------------------------ registry, params
def test_registered_with_declared_params():
    assert STRATEGIES["smc"] is SmartMoney
    s = get_strategy("smc")
    assert isinstance(s, SmartMoney)
    for p in s.params:
        assert p.low <= p.default <= p.high and p.doc
    assert s.warmup() == 300 and s.warmup({"lookback": 150}) == 150
    with pytest.raises(ValueError, match="'swing_length'"):
        s.resolve_params({"swing_length": 1})


# ------------------------------------------------------------------ concepts vs the package
@pytest.mark.parametrize("length", [2, 5, 10])
def test_swings_reproduce_the_package(data, length):
    for sym, c in data.items():
        sw = sc.find_swings(c.high, c.low, length)
        out = pkg.swing_highs_lows(frame_of(c), length)
        hl = out["HighLow"].to_numpy().copy()
        hl[[0, -1]] = np.nan  # the package marks the first and last bar as swings
        rows = np.flatnonzero(~np.isnan(hl))
        bar, kind, level = sw.merged()
        assert bar.tolist() == rows.tolist(), sym
        assert kind.tolist() == hl[rows].tolist(), sym
        assert level.tolist() == out["Level"].to_numpy()[rows].tolist(), sym
        assert (sw.confirmed == sw.bar + length).all()


def test_window_swings_are_the_package_on_the_window(eth):
    sw = sc.find_swings(eth.high, eth.low, 5)
    for start in (0, 777, 3000, 5460):
        w = eth.slice(start, start + 300)
        at, kind, level = sc.window_swings(sw, start, start + 300)
        out = pkg.swing_highs_lows(frame_of(w), 5)
        hl = out["HighLow"].to_numpy().copy()
        hl[[0, -1]] = np.nan
        rows = np.flatnonzero(~np.isnan(hl))
        assert at.tolist() == rows.tolist()
        assert kind.tolist() == hl[rows].tolist()
        assert level.tolist() == out["Level"].to_numpy()[rows].tolist()


def test_structure_events_are_the_packages_dated_causally(data):
    """Every event ``smc.bos_choch`` keeps (from the third swing on) is ours, with the same
    direction and kind, and with the package's float32 level our break bar is its
    ``BrokenIndex`` (the few it keeps that no close breaks at the exact swing price are
    float32 artefacts); ``known`` is never before the break."""
    for sym, c in data.items():
        sw = sc.find_swings(c.high, c.low, 5)
        ev = sc.structure_events(sw, np.asarray(c.close), len(c))
        assert (ev.known >= ev.broken).all() and (ev.broken >= ev.pivot + 2).all()
        ours = {int(p): e for e, p in enumerate(ev.pivot)}
        frame = frame_of(c)
        out = pkg.bos_choch(frame, pkg.swing_highs_lows(frame, 5))
        # ours start at the third swing: the package's first events use its invented
        # bar-0 swing, and an event whose first run starts the data has no span
        first_real = int(sw.merged()[0][2])
        rows = np.flatnonzero((out["BOS"].notna() | out["CHOCH"].notna()).to_numpy())
        rows = rows[rows >= first_real]
        assert len(rows) > 150, sym
        close = np.asarray(c.close)
        missing = 0
        for j in rows.tolist():
            d = int(np.nan_to_num(out["BOS"][j]) + np.nan_to_num(out["CHOCH"][j]))
            cl = close[j + 2:]
            if j not in ours:  # only broken against the package's float32-rounded level
                exact = c.high[j] if d > 0 else c.low[j]
                assert not (cl > exact if d > 0 else cl < exact).any(), (sym, j)
                missing += 1
                continue
            e = ours[j]
            assert ev.direction[e] == d and ev.choch[e] == out["CHOCH"].notna()[j]
            lvl = np.float32(ev.level[e])
            b = j + 2 + int(np.argmax(cl > lvl if d > 0 else cl < lvl))
            assert b == int(out["BrokenIndex"][j]), (sym, j)
        assert missing <= 2, sym


def test_fair_value_gaps_are_the_packages(data):
    for sym, c in data.items():
        z = sz.fair_value_gaps(ohlcv(c), max_age=len(c))
        out = pkg.fvg(frame_of(c))
        rows = np.flatnonzero(out["FVG"].notna().to_numpy())
        assert z.formed.tolist() == rows.tolist(), sym
        assert z.direction.tolist() == out["FVG"].to_numpy()[rows].tolist()
        assert z.top.tolist() == out["Top"].to_numpy()[rows].tolist()
        assert z.bottom.tolist() == out["Bottom"].to_numpy()[rows].tolist()
        mit = out["MitigatedIndex"].to_numpy()[rows].astype(np.int64)
        assert z.touch.tolist() == np.where(mit > 0, mit, -1).tolist(), sym
        assert (z.known == z.formed + 1).all()


def test_order_blocks_are_the_packages_on_the_trigger_slice(eth):
    """The block candle is the package's, and the one a plain reading of its rule gives:
    the lowest low (highest high) between the swing and the crossing close, last on ties."""
    bars = ohlcv(eth)
    sw = sc.find_swings(eth.high, eth.low, 5)
    z = sz.order_blocks(bars, sw, len(eth), 100)
    assert len(z) > 50 and set(z.direction.tolist()) == {1, -1}
    h, lo, c = bars[1], bars[2], bars[3]
    swing_of = {}
    for q in np.flatnonzero(sw.extreme).tolist():
        swing_of.setdefault(int(sw.kind[q]), []).append(q)
    for k in range(len(z)):
        i, d, cb = int(z.known[k]), int(z.direction[k]), int(z.formed[k])
        # the swing in force: latest run extreme of that kind confirmed by bar i
        qs = [q for q in swing_of[d] if sw.confirmed[q] <= i]
        j = int(sw.bar[qs[-1]])
        assert (c[i] > h[j]) if d > 0 else (c[i] < lo[j])
        seg = lo[j + 1:i] if d > 0 else -h[j + 1:i]
        assert cb == j + 1 + int(np.flatnonzero(seg == seg.min())[-1])
        assert (z.top[k], z.bottom[k]) == (h[cb], lo[cb])
        out = pkg.ob(sc.ohlc_frame(*(a[j:i + 1] for a in bars)),
                     pd.DataFrame({"HighLow": [d] + [np.nan] * (i - j),
                                   "Level": [h[j] if d > 0 else lo[j]] + [np.nan] * (i - j)}))
        assert np.flatnonzero(out["OB"].to_numpy() == d).tolist() == [cb - j]


# ------------------------------------------------------------------ each concept's date
def test_swing_is_known_exactly_swing_length_bars_later():
    c = bars_from_closes([1.0, 1.001, 1.002, 1.003, 1.004, 1.01, 1.02, 1.03, 1.05, 1.04, 1.03,
                          1.02, 1.01, 1.0, 0.99])
    peak, L = 8, 3  # (the package's rule needs 2L - 1 bars before a swing)
    for end in range(peak + 1, len(c) + 1):
        sw = sc.find_swings(c.high[:end], c.low[:end], L)
        has = peak in sw.bar[sw.kind == 1].tolist()
        assert has == (end - 1 >= peak + L), end  # known at the close of bar peak + L
    sw = sc.find_swings(c.high, c.low, L)
    assert sw.confirmed[sw.bar.tolist().index(peak)] == peak + L


def test_fair_value_gap_is_known_one_bar_after_its_middle_candle():
    c = bars_from_closes([1.0, 1.001, 1.002, 1.003, 1.02, 1.021, 1.022, 1.015, 1.01])
    m = 4  # the wide up candle: high[3] = 1.005 < low[5] = 1.018
    for end in range(m + 1, len(c) + 1):
        z = sz.fair_value_gaps(ohlcv(c.slice(0, end)), 100)
        assert (m in z.formed.tolist()) == (end - 1 >= m + 1), end
    z = sz.fair_value_gaps(ohlcv(c), 100)
    k = z.formed.tolist().index(m)
    assert (z.direction[k], z.known[k]) == (1, m + 1)
    assert (z.bottom[k], z.top[k]) == (c.high[m - 1], c.low[m + 1])
    assert z.touch[k] == 7  # low[7] = 1.013 <= top 1.018, first bar to reach it


def test_bos_is_known_at_the_break_and_the_confirming_swing():
    c = bars_from_closes(PREAMBLE + RALLY)
    sw = sc.find_swings(c.high, c.low, 2)
    ev = sc.structure_events(sw, np.asarray(c.close), 100)
    e = ev.pivot.tolist().index(100)  # the swing high 1.05 + wick of the rally
    assert (ev.direction[e], bool(ev.choch[e]), ev.level[e]) == (1, False, c.high[100])
    assert ev.broken[e] == 110  # first close above 1.052
    first_above = [q for q in range(len(sw.bar))
                   if sw.kind[q] == 1 and sw.bar[q] > 106 and sw.level[q] > c.high[100]][0]
    assert ev.known[e] == max(110, sw.confirmed[first_above]) == 122
    for end in (121, 122):  # not in force before its known bar, in force from it
        cut = c.slice(0, end + 1)
        s2 = sc.find_swings(cut.high, cut.low, 2)
        e2 = sc.structure_events(s2, np.asarray(cut.close), 100)
        at = sc.structure_at(e2, len(cut), 100)
        assert (at[end] >= 0 and e2.pivot[at[end]] == 100) == (end >= 122)


def test_order_block_is_known_at_the_crossing_close():
    closes = [1.0, 1.01, 1.02, 1.03, 1.04, 1.03, 1.02, 1.01, 1.015, 1.02, 1.03, 1.05, 1.06]
    c = bars_from_closes(PREAMBLE[:30] + closes)
    bars, j = ohlcv(c), 34  # swing high 1.04 + wick
    sw = sc.find_swings(c.high, c.low, 2)
    assert j in sw.bar[sw.kind == 1].tolist()
    cross = int(np.flatnonzero(c.close > c.high[j])[0])  # 1.05 closes above 1.042
    cb = j + 4  # lowest low 1.008 in between: bars 37 and 38 tie, the package takes the last
    for end in (cross, cross + 1):
        cut = tuple(a[:end] for a in bars)
        z = sz.order_blocks(cut, sc.find_swings(cut[1], cut[2], 2), 100, 100)
        assert (cb in z.formed.tolist()) == (end == cross + 1)
    z = sz.order_blocks(bars, sw, 100, 100)
    k = z.formed.tolist().index(cb)
    assert (z.direction[k], z.known[k]) == (1, cross)
    assert c.low[cb] == c.low[cb - 1] == min(c.low[j + 1:cross])
    assert (z.top[k], z.bottom[k]) == (c.high[cb], c.low[cb])


def test_liquidity_sweep_is_seen_at_the_bar_that_runs_the_pool():
    lows = [1.0, 1.01, 1.02, 1.01, 1.0, 1.01, 1.02, 1.01, 1.0, 1.01, 1.02, 1.015, 1.005]
    c = bars_from_closes(PREAMBLE[:60] + lows + [0.99, 1.0, 1.01])
    sw = sc.find_swings(c.high, c.low, 2)
    bars, dip = ohlcv(c), 60 + len(lows)  # the close 0.99 runs the equal lows
    for t in (dip - 1, dip, dip + 2):
        s = sz.recent_sweeps(tuple(a[t - 59:t + 1] for a in bars), sw, t - 59, 0.01, 30)
        if t < dip:
            assert s.sell_side is None
        else:
            assert s.sell_side is not None and s.sell_side[1] == t - dip
            assert abs(s.sell_side[0] - (1.0 - WICK)) < 1e-6
        assert s.supporting(1) == s.sell_side and s.supporting(-1) == s.buy_side


# ------------------------------------------------------------------ the signal rule
def test_bullish_bos_and_retrace_into_a_bullish_gap_gives_a_long_below_the_gap():
    c = bars_from_closes(PREAMBLE + RALLY)
    f = SmartMoney().generate(c, HAND)
    p = f.point(124)  # the bar whose low reaches the top gap [1.112, 1.118]
    assert p is not None and p.side == 1
    gap_bottom = c.high[115]  # the bar before the last wide candle: 1.11 + wick
    assert abs(gap_bottom - 1.112) < 1e-12
    atr = np.mean([max(c.high[i], c.close[i - 1]) - min(c.low[i], c.close[i - 1])
                   for i in range(111, 125)])
    assert p.stop_loss == pytest.approx(gap_bottom - 0.5 * atr, rel=1e-12)
    assert p.stop_loss < gap_bottom < p.price
    assert p.take_profit == pytest.approx(p.price + 2 * (p.price - p.stop_loss), rel=1e-12)
    assert "bullish BOS" in p.reason and "fair value gap 1.112-1.118" in p.reason
    # every signal of the series is a long with the structure (no short: no bearish BOS)
    assert set(f.side[f.indices()].tolist()) == {1}
    # bearish mirror: the same series upside down gives a short above the gap
    inv = bars_from_closes([2.3 - x for x in PREAMBLE + RALLY])
    q = SmartMoney().generate(inv, HAND).point(124)
    assert q is not None and q.side == -1 and q.stop_loss > inv.low[115] > q.price
    assert "bearish BOS" in q.reason


def test_frame_invariants(eth, eth_frame):
    f, s = eth_frame, SmartMoney()
    n, sig = len(eth), eth_frame.side != 0
    assert len(f) == n and not sig[: s.warmup() - 1].any()
    assert np.isnan(f.stop_loss[~sig]).all() and (f.confidence[~sig] == 0).all()
    ix = f.indices()
    assert len(ix) > 100 and set(f.side[ix].tolist()) == {1, -1}
    close, side = eth.close[ix], f.side[ix].astype(float)
    risk = side * (close - f.stop_loss[ix])
    assert (risk > 0).all() and (f.stop_loss[ix] > 0).all()
    np.testing.assert_allclose(side * (f.take_profit[ix] - close), 2.0 * risk, rtol=1e-9)


def test_confidence_counts_agreeing_concepts(data):
    assert [confidence_of(k) for k in range(2, 6)] == [0.5, 0.75, 0.875, 0.9375]
    gate = {k for k in range(2, 6) if confidence_of(k) >= 0.85}
    assert gate == {4, 5}  # the risk agent's default gate: strong confluence only
    seen = set()
    for c in data.values():
        f = SmartMoney().generate(c)
        for p in f.points():
            k = int(re.search(r"(\d)/5 concepts agree", p.reason).group(1))
            named = (1 + ("order block" in p.reason) + ("fair value gap" in p.reason)
                     + ("liquidity at" in p.reason) + (" BOS " in p.reason))
            assert k == named and p.confidence == confidence_of(k), p.reason
            seen.add(k)
    assert seen >= {2, 3, 4}


def test_more_agreeing_concepts_raise_the_confidence():
    """The hand-made long, then the same BOS and gap after a pause with two equal swing
    lows at 1.122 (a sell-side pool) that the entry bar runs: one more concept agrees
    (the sweep) and the confidence rises past the risk gate."""
    base = SmartMoney().generate(bars_from_closes(PREAMBLE + RALLY), HAND).point(124)
    closes = PREAMBLE + RALLY[:21] + [1.125, 1.127] + [1.124, 1.128, 1.130, 1.126] * 3 + [1.116]
    p = SmartMoney().generate(bars_from_closes(closes), HAND).point(len(closes) - 1)
    assert p is not None and p.side == 1
    for q in (base, p):
        assert "bullish BOS (swing high 1.052" in q.reason
        assert "first touch of bullish fair value gap 1.112-1.118" in q.reason
    assert "no sell-side liquidity sweep" in base.reason and "3/5" in base.reason
    assert "sell-side liquidity at 1.122 swept 0 bars ago" in p.reason and "4/5" in p.reason
    assert base.confidence == 0.75 < 0.85 <= p.confidence == 0.875


# ------------------------------------------------------------------ causality and memory
def test_no_look_ahead(eth, eth_frame):
    s, full = SmartMoney(), eth_frame
    rng = np.random.default_rng(11)
    for t in (700, 2345, 4100, len(eth) - 2):
        sc.clear_caches()
        part = s.generate(eth.slice(0, t + 1))
        for a, b in ((part.side, full.side), (part.confidence, full.confidence),
                     (part.stop_loss, full.stop_loss), (part.take_profit, full.take_profit)):
            np.testing.assert_array_equal(a, b[: t + 1])
        assert [part.reason_at(i) for i in part.indices()] == \
            [full.reason_at(i) for i in part.indices()]
        noise = rng.uniform(0.97, 1.03, len(eth) - t - 1)
        fut = Candles(eth.symbol, eth.time, *(np.r_[a[: t + 1], a[t + 1:] * noise] for a in (
            eth.open, eth.high, eth.low, eth.close, eth.volume)))
        other = s.generate(fut)
        np.testing.assert_array_equal(other.side[: t + 1], full.side[: t + 1])
        np.testing.assert_array_equal(other.confidence[: t + 1], full.confidence[: t + 1])
        np.testing.assert_array_equal(other.stop_loss[: t + 1], full.stop_loss[: t + 1])
        if t < len(eth) - 100:
            assert (other.side[t + 1:] != full.side[t + 1:]).any()  # the future did change
    # cut right after signal bars too: a fact used before it is known would show there
    for i in full.indices()[::12].tolist():
        part = s.generate(eth.slice(0, i + 1))
        np.testing.assert_array_equal(part.side, full.side[: i + 1])
        assert part.point(i) == full.point(i)


@pytest.mark.parametrize("params", [{}, {"lookback": 120, "zone_age": 400, "swing_length": 3}])
def test_memory_is_warmup_bars(eth, eth_frame, params):
    s = SmartMoney()
    w = s.warmup(params)
    full = s.generate(eth, params) if params else eth_frame
    for i in full.indices()[:: 1 if params else 10]:  # short windows: every signal
        p = s.generate(eth.slice(i - w + 1, i + 1), params).point(w - 1)
        assert p is not None
        q = full.point(i)
        assert (p.side, p.confidence, p.stop_loss, p.take_profit, p.reason) == \
            (q.side, q.confidence, q.stop_loss, q.take_profit, q.reason)
    assert not s.generate(eth.slice(0, w - 1), params).side.any()


def test_runner_bar_by_bar_equals_generate(eth):
    """The live runner (default eval window: 2 x warmup) on the first 1800 ETH/BTC bars."""
    s, c = SmartMoney(), eth.slice(0, 1800)
    expect = s.generate(c).points()
    sc.clear_caches()  # the runner computes every package result itself
    r = StrategyRunner(s, symbol="ETH/BTC")
    got = []
    for i in range(len(c)):
        p = r.on_bar(int(c.time[i]), c.open[i], c.high[i], c.low[i], c.close[i], c.volume[i])
        if p is not None:
            got.append(p)
    assert len(got) == len(expect) > 40
    assert got == expect  # indices, times, sides, confidences, stops, targets, reasons


@pytest.mark.parametrize("n", [0, 1, 2, 50, 299])
def test_short_series_give_no_signals(n):
    f = SmartMoney().generate(bars_from_closes(np.linspace(1.0, 2.0, n)))
    assert len(f) == n and not f.side.any() and f.points() == []


# ------------------------------------------------------------------ backtester, optimizer
def test_backtest_on_eth(eth, eth_frame):
    allin = run_backtest({"ETH/BTC": eth}, "smc", sizing="all-in")
    assert allin.stats.trades == len(allin.trades) > 20
    assert all(t.symbol == "ETH/BTC" and t.entry_bar >= 299 for t in allin.trades)
    part = eth.slice(0, 1200)  # the risk sizing replays the live runner bar by bar
    risk = run_backtest({"ETH/BTC": part}, "smc", sizing="risk")
    f = SmartMoney().generate(part)
    assert risk.extra["signals"] == len(f.indices())
    assert 0 < len(risk.trades) + len(risk.open_trades) <= int((f.confidence >= 0.85).sum())


def test_tiny_optimizer_run(eth):
    res = optimize([eth.slice(0, 2500)], OptimizeConfig(strategy="smc", population=6,
                                                        generations=1, seed=3))
    fold = res.folds[0]
    assert res.status == "finished" and fold.hall_of_fame
    best = fold.hall_of_fame[0].params
    SmartMoney.resolve_params(best)  # within the declared specs
    assert set(best) == {p.name for p in SmartMoney.params}
