"""Intraday VWAP momentum (``"vwap_momentum"``): long above the session VWAP, flat by the close.

Sessions
--------
A session starts every UTC day at ``session_start_hour`` and lasts ``session_hours``
hours (``0`` and ``24``, the defaults: the UTC day, for 24/7 crypto markets; ``13`` and
``7`` would be 13:00-20:00 UTC; a session may run past midnight).  Bars are placed by
their open time; bars outside every session never signal.

VWAP
----
``VWAP[i] = sum(tp * volume) / sum(volume)`` from the session's first bar to bar ``i``
with ``tp = (high + low + close) / 3`` (:func:`backend.indicators.session_vwap`),
reset at each session start, and spanning at most ``max_session_bars`` bars (288 = a
UTC day of 5-minute bars; set it to at least the bars in one session for an exact
session VWAP).  That cap is what keeps the strategy's memory finite:
``warmup = max_session_bars + 1`` bars.

Signal
------
* **buy** at the close of bar ``i`` when the entry condition becomes true,
  ``E[i] and not E[i-1]``, with ``E`` = inside the session, at least
  ``open_delay_minutes`` after its start and before the flatten window,
  ``close > VWAP``, Cutler ``RSI(rsi_period) < rsi_max`` (not overbought) and
  ``ATR% = 100 * ATR(atr_period) / close > atr_pct_min`` (enough movement to reach the
  target).
* **flatten**: with ``flatten = 1`` (default), an exit-only SELL (confidence 0) on the
  first bar of the session's last ``flatten_minutes`` (bar open time ``>= session end -
  flatten_minutes``).  Orders fill at the next bar's open, so ``flatten_minutes`` must
  span at least two bars (10 minutes for 5-minute bars, the default): the closing order
  then fills before the session ends.  The SELL goes through compliance and risk like
  any signal; with a long open, risk turns it into a reduce-only close
  (``rules.risk._opposite`` -> ``close_position``, which bypasses the confidence
  threshold); when flat it is rejected (``short_not_allowed``, or ``min_confidence``
  when shorts are allowed, since its confidence is 0).  ``flatten = 0`` holds positions
  across sessions (only the brackets close them).

Exits are the brackets: take profit ``target_pct`` percent above the entry close
(default +1.4%), stop loss ``stop_pct`` percent below (default -0.8%), and the flatten.

Confidence (buys)
-----------------
* extension ``z = (close - VWAP) / ATR`` (how decisively above the VWAP, in ATRs);
* volume ratio ``v = volume / mean(volume, last VOLUME_WINDOW (20) bars)``.

``confidence = logistic(A * z + B * ln v - C)`` with ``A = 1.5, B = 1, C = 0.3``
(chosen so that ~10-25% of the buys on the shipped sample data reach 0.85, e.g. a close
1 ATR above the VWAP on 1.7x the average volume).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from backend import indicators as ind
from backend.strategies.base import (
    OHLCV,
    ParamSpec,
    SignalFrame,
    Strategy,
    finish_brackets,
    logistic,
)

__all__ = ["VwapMomentum", "session_clock"]

VOLUME_WINDOW = 20
_A, _B, _C = 1.5, 1.0, 0.3
NS_PER_MINUTE = 60_000_000_000
NS_PER_HOUR = 60 * NS_PER_MINUTE
NS_PER_DAY = 24 * NS_PER_HOUR


def session_clock(
    time: np.ndarray, start_hour: int, hours: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each bar lies in the daily sessions.

    Parameters
    ----------
    time : numpy.ndarray of int64, shape (n,)
        Bar open times, ns UTC.
    start_hour : int
        Session start, hour of the UTC day (0-23).
    hours : int
        Session length in hours (1-24).

    Returns
    -------
    session : numpy.ndarray of int64
        Session id (the UTC day index of the session's start), -1 outside sessions.
    since_start, to_end : numpy.ndarray of int64
        ns from the session start to the bar's open, and from the bar's open to the
        session end (undefined outside sessions).
    """
    t = np.asarray(time, dtype=np.int64) - start_hour * NS_PER_HOUR
    day, offset = np.divmod(t, NS_PER_DAY)
    length = hours * NS_PER_HOUR
    inside = offset < length
    return np.where(inside, day, -1), offset, length - offset


class VwapMomentum(Strategy):
    """Long above the session VWAP with RSI and ATR% filters; percent brackets; flat by
    the session close."""

    name = "vwap_momentum"
    params = (
        ParamSpec("rsi_period", "int", 2, 100, 14, "RSI window (bars), Cutler's"),
        ParamSpec("rsi_max", "float", 50.0, 100.0, 70.0, "no entry at or above this RSI"),
        ParamSpec("atr_period", "int", 2, 100, 14, "ATR window (bars), mean of true range"),
        ParamSpec("atr_pct_min", "float", 0.0, 5.0, 0.3,
                  "ATR as percent of the close must exceed this"),
        ParamSpec("target_pct", "float", 0.1, 20.0, 1.4, "take profit, percent above entry"),
        ParamSpec("stop_pct", "float", 0.1, 20.0, 0.8, "stop loss, percent below entry"),
        ParamSpec("open_delay_minutes", "int", 0, 720, 30,
                  "no entry in the session's first minutes (VWAP still noisy)"),
        ParamSpec("session_start_hour", "int", 0, 23, 0, "session start, hour UTC"),
        ParamSpec("session_hours", "int", 1, 24, 24, "session length (hours)"),
        ParamSpec("flatten", "int", 0, 1, 1, "1: exit-only SELL before the session ends"),
        ParamSpec("flatten_minutes", "int", 1, 240, 10,
                  "flatten window before the session end (minutes; >= 2 bars)"),
        ParamSpec("max_session_bars", "int", 12, 2000, 288,
                  "bars one VWAP spans at most (>= bars per session for an exact VWAP)"),
    )

    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        """``max(max_session_bars + 1, rsi_period + 2, atr_period + 2, VOLUME_WINDOW + 1)``
        bars (289 by default)."""
        p = self.resolve_params(params)
        return max(int(p["max_session_bars"]) + 1, int(p["rsi_period"]) + 2,
                   int(p["atr_period"]) + 2, VOLUME_WINDOW + 1)

    def _generate(self, bars: OHLCV, params: dict[str, int | float]) -> SignalFrame:
        close = np.asarray(bars.close, dtype=np.float64)
        volume = np.asarray(bars.volume, dtype=np.float64)
        time = np.asarray(bars.time, dtype=np.int64)
        rsi_n, atr_n = int(params["rsi_period"]), int(params["atr_period"])
        rsi_max, atr_min = float(params["rsi_max"]), float(params["atr_pct_min"])
        tgt, stp = float(params["target_pct"]) / 100.0, float(params["stop_pct"]) / 100.0
        delay = int(params["open_delay_minutes"]) * NS_PER_MINUTE
        flat_on = int(params["flatten"]) == 1
        flat_ns = int(params["flatten_minutes"]) * NS_PER_MINUTE
        session, since, to_end = session_clock(
            time, int(params["session_start_hour"]), int(params["session_hours"]))
        vwap = ind.session_vwap(bars.high, bars.low, close, volume, session,
                                int(params["max_session_bars"]))
        rsi = ind.rsi_cutler(close, rsi_n)
        atr = ind.atr_sma(bars.high, bars.low, close, atr_n)
        inside = session >= 0
        window = inside & (to_end <= flat_ns) if flat_on else np.zeros(len(close), bool)
        prev_sess = np.r_[-2, session[:-1]] if len(close) else session
        prev_win = np.r_[False, window[:-1]] if len(close) else window
        with np.errstate(invalid="ignore", divide="ignore"):
            atr_pct = 100.0 * atr / close
            entry = (inside & ~window & (since >= delay) & (close > vwap)
                     & (rsi < rsi_max) & (atr_pct > atr_min))
            buy = entry & ~np.r_[False, entry[:-1]] if len(close) else entry
            out = window & ~(prev_win & (prev_sess == session))
            side = buy.astype(np.int8) - out.astype(np.int8)
            side[: self.warmup(params) - 1] = 0
            z = (close - vwap) / atr
            vratio = volume / ind.rolling_mean(volume, VOLUME_WINDOW)
            conf = np.where(out, 0.0, logistic(_A * z + _B * np.log(vratio) - _C))
            stop = np.where(side > 0, close * (1.0 - stp), close * (1.0 + stp))
            target = np.where(side > 0, close * (1.0 + tgt), close * (1.0 - tgt))

        def reason(i: int) -> str:
            if side[i] < 0:
                return (f"flatten: {to_end[i] // NS_PER_MINUTE} min to the session end "
                        f"(window {flat_ns // NS_PER_MINUTE} min); exit-only SELL at close "
                        f"{close[i]:.8g} closes a long before the close")
            return (f"close {close[i]:.8g} above session VWAP {vwap[i]:.8g} "
                    f"({z[i]:+.2f} ATR); RSI({rsi_n}) {rsi[i]:.1f} < {rsi_max:g}; "
                    f"ATR% {atr_pct[i]:.3f} > {atr_min:g}; volume {vratio[i]:.2f}x its "
                    f"{VOLUME_WINDOW}-bar average; target +{tgt:.2%}, stop -{stp:.2%}; "
                    f"confidence {conf[i]:.2f}")

        return finish_brackets(bars, side, conf, stop, target, reason, exit=out)
