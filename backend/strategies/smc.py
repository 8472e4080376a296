"""Smart money concepts strategy (``"smc"``): retrace entries into order blocks and fair
value gaps in the direction of market structure.

Concepts (from the ``smartmoneyconcepts`` package, dated by the bar at which each
becomes known: :mod:`backend.strategies.smc_concepts` explains the package's look-ahead
and how every concept is made causal) with ``L = swing_length``:

* **swings**: the package's centred swing rule; a swing at bar ``j`` is confirmed at
  ``j + L``;
* **structure**: the package's BOS / CHOCH classification of four consecutive swings;
  an event is known once a close has gone beyond the broken swing's level *and* the
  fourth swing confirming the pattern is known.  The structure at bar ``t`` is the
  direction of the known event with the latest broken swing (bullish +1 / bearish -1);
* **order blocks**: ``smc.ob`` on the bars from the swing in force to the first close
  beyond it (known at that close): the candle with the lowest low (bullish) / highest
  high (bearish) in between, zone = its low .. high;
* **fair value gaps**: ``smc.fvg``, known one bar after the middle candle;
* **liquidity sweeps**: ``smc.liquidity`` on the last ``lookback`` bars: equal lows
  (sell-side) or highs (buy-side) within ``liquidity_range`` of the window's range,
  run through by price within the last ``sweep_window`` bars.

Signal
------
Long at the close of bar ``t`` when

1. the structure at ``t`` is bullish, and
2. bar ``t`` is the *first touch* of a known bullish order block or fair value gap --
   the first bar after the zone is known whose low reaches the zone's top, within
   ``zone_age`` bars of the zone becoming known -- and the zone held: ``close[t] >
   bottom``.

Short mirrored (bearish structure, first touch of a bearish zone -- high reaches its
bottom -- and ``close[t] < top``).  The stop loss goes beyond the touched zones: for a
long ``min(bottom of the touched zones) - buffer_atr * ATR``, for a short ``max(top) +
buffer_atr * ATR`` (ATR = mean true range over ``atr_period`` bars); the take profit is
``reward_risk`` times the stop distance from the close.  A signal whose stop or
target is not a positive price on the right side of the close is dropped
(:func:`~backend.strategies.base.finish_brackets`).  Facts are used at ``t`` only when
they lie in the last ``lookback`` bars (see below), and there is no signal before bar
``lookback - 1``.

Confidence
----------
The concepts that agree with the trade, out of five: the structure (always), a touched
order block, a touched fair value gap, a sell-side (for a long; buy-side for a short)
liquidity sweep within ``sweep_window`` bars, and the structure event being a BOS
rather than a CHOCH (a BOS continues the previous structure, so two structure events
agree; a CHOCH is the first of a new direction).  With ``k`` agreeing concepts,
``confidence = 1 - 2 ** -(k - 1)``: 0.5, 0.75, 0.875, 0.9375 for k = 2..5, so the risk
agent's default 0.85 gate passes only a trade with at least four agreeing concepts.

Finite memory (live == backtest)
--------------------------------
Every fact records the first bar it depends on and is used only while that bar is
within the last ``lookback`` bars; liquidity is computed on exactly the last
``lookback`` bars; ATR needs ``atr_period + 1``.  So the signal at ``t`` is a function
of bars ``t - lookback + 1 .. t`` (``warmup = lookback``), and the live
:class:`~backend.strategies.runner.StrategyRunner`, which evaluates a tail of at least
``warmup`` bars, gives bit-for-bit the signals of a backtest over the whole series.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from backend import indicators as ind
from backend.strategies import smc_concepts as sc
from backend.strategies import smc_zones as sz
from backend.strategies.base import OHLCV, ParamSpec, SignalFrame, Strategy, finish_brackets

__all__ = ["SmartMoney", "confidence_of"]


def confidence_of(agreeing: int) -> float:
    """``1 - 2 ** -(agreeing - 1)`` for ``agreeing`` in 1..5 concepts."""
    return 1.0 - 2.0 ** -(agreeing - 1)


@dataclass(frozen=True)
class _Touch:
    concept: str
    top: float
    bottom: float
    age: int  # bars since the zone became known


@dataclass(frozen=True)
class _Setup:
    direction: int
    event: int
    zones: tuple[_Touch, ...]
    sweep: tuple[float, int] | None
    agreeing: int


class SmartMoney(Strategy):
    """Order block / fair value gap retrace entries with the market structure."""

    name = "smc"
    params = (
        ParamSpec("swing_length", "int", 2, 30, 5,
                  "swing points: bars each side (the package's swing_length); a swing is "
                  "known swing_length bars after it"),
        ParamSpec("lookback", "int", 100, 2000, 300,
                  "memory (bars): facts older than this are forgotten; liquidity window"),
        ParamSpec("zone_age", "int", 5, 500, 100,
                  "bars after an order block / gap is known within which its first touch "
                  "is an entry"),
        ParamSpec("sweep_window", "int", 1, 200, 30,
                  "bars: a liquidity sweep this recent adds confluence"),
        ParamSpec("liquidity_range", "float", 0.001, 0.1, 0.01,
                  "equal highs/lows tolerance, fraction of the window's high-low range"),
        ParamSpec("atr_period", "int", 2, 50, 14, "ATR window (bars), mean of true range"),
        ParamSpec("buffer_atr", "float", 0.0, 5.0, 0.5,
                  "stop-loss distance beyond the zone, in ATRs"),
        ParamSpec("reward_risk", "float", 0.5, 10.0, 2.0, "take-profit / stop-loss distance"),
    )

    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        """``lookback`` bars (300 by default; always >= ``atr_period + 1``)."""
        return int(self.resolve_params(params)["lookback"])

    def _generate(self, bars: OHLCV, params: dict[str, int | float]) -> SignalFrame:
        o, h, lo, c, v = (np.asarray(a, dtype=np.float64) for a in
                          (bars.open, bars.high, bars.low, bars.close, bars.volume))
        n = len(c)
        L, M = int(params["swing_length"]), int(params["lookback"])
        age = int(params["zone_age"])
        atr = ind.atr_sma(h, lo, c, int(params["atr_period"])) if n else np.zeros(0)
        side = np.zeros(n, dtype=np.int8)
        conf = np.zeros(n)
        stop = np.full(n, np.nan)
        target = np.full(n, np.nan)
        setups: dict[int, _Setup] = {}
        if n >= M:
            sw = sc.find_swings(h, lo, L)
            events = sc.structure_events(sw, c, M)
            in_force = sc.structure_at(events, n, M)
            direction = np.zeros(n, dtype=np.int8)
            direction[in_force >= 0] = events.direction[in_force[in_force >= 0]]
            zones = (sz.order_blocks((o, h, lo, c, v), sw, M, age, direction),
                     sz.fair_value_gaps((o, h, lo, c, v), age))
            touched = _touches(zones, in_force, events, c, M)
            for t, (d, ev, hits) in sorted(touched.items()):
                window = tuple(a[t - M + 1:t + 1] for a in (o, h, lo, c, v))
                sweep = sz.recent_sweeps(window, sw, t - M + 1,
                                         float(params["liquidity_range"]),
                                         int(params["sweep_window"])).supporting(d)
                concepts = {z.concept for z in hits}
                k = (1 + ("order block" in concepts) + ("fair value gap" in concepts)
                     + (sweep is not None) + (not bool(events.choch[ev])))
                side[t], conf[t] = d, confidence_of(k)
                edge = min(z.bottom for z in hits) if d > 0 else max(z.top for z in hits)
                stop[t] = edge - d * float(params["buffer_atr"]) * atr[t]
                target[t] = c[t] + float(params["reward_risk"]) * (c[t] - stop[t])
                setups[t] = _Setup(d, ev, tuple(hits), sweep, k)

        def reason(i: int) -> str:
            s = setups[i]
            return _describe(s, events, i, c[i], stop[i], target[i], conf[i], params)

        return finish_brackets(bars, side, conf, stop, target, reason)


def _touches(
    zones: tuple[sz.Zones, ...], in_force: np.ndarray, events: sc.Structure, close: np.ndarray,
    horizon: int,
) -> dict[int, tuple[int, int, list[_Touch]]]:
    """Bars with an entry: ``t -> (direction, structure event, touched zones that held)``."""
    out: dict[int, tuple[int, int, list[_Touch]]] = {}
    for z in zones:
        for q in np.flatnonzero(z.touch >= max(horizon - 1, 0)).tolist():
            t, d = int(z.touch[q]), int(z.direction[q])
            if int(z.span[q]) < t - horizon + 1:
                continue  # the zone depends on bars older than the memory
            ev = int(in_force[t])
            if ev < 0 or int(events.direction[ev]) != d:
                continue
            top, bottom = float(z.top[q]), float(z.bottom[q])
            if not (close[t] > bottom if d > 0 else close[t] < top):
                continue  # price went through the zone: it did not hold
            out.setdefault(t, (d, ev, []))[2].append(
                _Touch(z.concept, top, bottom, t - int(z.known[q])))
    return out


def _describe(
    s: _Setup, events: sc.Structure, t: int, close: float, stop: float, target: float,
    conf: float, params: Mapping[str, Any],
) -> str:
    """The reason text of one signal (prices and bar ages only: equal live and backtest)."""
    e = s.event
    bull = s.direction > 0
    kind = "CHOCH" if events.choch[e] else "BOS"
    head = (f"{'long' if bull else 'short'}: {'bullish' if bull else 'bearish'} {kind} "
            f"(swing {'high' if bull else 'low'} {events.level[e]:.8g} closed beyond "
            f"{t - int(events.broken[e])} bars ago, known {t - int(events.known[e])} bars ago)")
    zones = " and ".join(
        f"{'bullish' if bull else 'bearish'} {z.concept} {z.bottom:.8g}-{z.top:.8g} "
        f"(known {z.age} bars ago)" for z in s.zones)
    if s.sweep is None:
        liq = f"no {'sell' if bull else 'buy'}-side liquidity sweep in the last " \
              f"{int(params['sweep_window'])} bars"
    else:
        liq = (f"{'sell' if bull else 'buy'}-side liquidity at {s.sweep[0]:.8g} swept "
               f"{s.sweep[1]} bars ago")
    edge = "low" if bull else "high"
    return (f"{head}; first touch of {zones}, close {close:.8g}; {liq}; stop {stop:.8g} "
            f"(zone {edge} {'-' if bull else '+'} {float(params['buffer_atr']):g} "
            f"ATR({int(params['atr_period'])})), target {target:.8g} "
            f"({float(params['reward_risk']):g}R); {s.agreeing}/5 concepts agree, "
            f"confidence {conf:.4f}")
