"""Momentum breakout strategy with volume and trend filters (``"momentum"``).

Signal
------
``m = ROC(close, lookback)`` in percent (``(close[i] / close[i-lookback] - 1) * 100``).
Buy at the close of bar ``i`` when momentum *enters* the upper zone,
``m[i] > threshold >= m[i-1]`` (not on every bar inside it), and

* volume confirms: ``volume[i] > volume_factor * mean(volume over volume_window
  bars, bar i included)``,
* the trend agrees: ``SMA(close, fast_ma) > SMA(close, slow_ma)``.

Sell symmetrically: ``m[i] < -threshold <= m[i-1]``, same volume rule,
``SMA(fast_ma) < SMA(slow_ma)``.  (If the volume or trend filter fails on the
entering bar, there is no signal until momentum leaves and re-enters the zone.)
Stop loss and take profit are ATR brackets around the close (ATR = mean true range
over ``atr_period`` bars).

Confidence
----------
``q = r * v`` with momentum strength ``r = |m[i]| / mean(|m[j]|, last NORM_WINDOW
(100) bars)`` (how strong this move is against the symbol's recent typical
momentum) and volume ratio ``v = volume[i] / mean volume``;
``confidence = q / (q + K)`` with ``K = 0.75`` (= ``logistic(ln q - ln K)``).  It is
0.5 at ``q = K`` and reaches 0.85 at ``q ~= 4.25``, e.g. twice the typical momentum
on 2.1x the average volume.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from backend import indicators as ind
from backend.strategies.base import OHLCV, ParamSpec, SignalFrame, Strategy, finish

__all__ = ["Momentum"]

NORM_WINDOW = 100
_K = 0.75


class Momentum(Strategy):
    """Momentum threshold crossing, confirmed by volume and an SMA trend filter."""

    name = "momentum"
    params = (
        ParamSpec("lookback", "int", 2, 200, 12, "momentum (ROC) horizon (bars)"),
        ParamSpec("threshold", "float", 0.01, 50.0, 0.5, "momentum zone edge (percent)"),
        ParamSpec("volume_window", "int", 2, 500, 20, "average-volume window (bars)"),
        ParamSpec("volume_factor", "float", 0.0, 5.0, 1.2, "volume must exceed this x average"),
        ParamSpec("fast_ma", "int", 2, 100, 10, "trend filter fast SMA (bars); < slow_ma"),
        ParamSpec("slow_ma", "int", 5, 300, 40, "trend filter slow SMA (bars)"),
        ParamSpec("atr_period", "int", 2, 100, 14, "ATR window (bars), mean of true range"),
        ParamSpec("stop_atr", "float", 0.5, 10.0, 2.0, "stop-loss distance in ATRs"),
        ParamSpec("reward_risk", "float", 0.5, 10.0, 2.0, "take-profit / stop-loss distance"),
    )

    @classmethod
    def check_params(cls, params: dict[str, int | float]) -> None:
        """``fast_ma`` must be smaller than ``slow_ma``."""
        if params["fast_ma"] >= params["slow_ma"]:
            raise ValueError(
                f"parameter 'fast_ma' ({params['fast_ma']}) must be smaller than "
                f"'slow_ma' ({params['slow_ma']})"
            )

    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        """``max(lookback + NORM_WINDOW - 1, volume_window - 1, slow_ma - 1, atr_period) + 1``
        bars (112 by default)."""
        p = self.resolve_params(params)
        first = max(
            int(p["lookback"]) + NORM_WINDOW - 1,
            int(p["volume_window"]) - 1,
            int(p["slow_ma"]) - 1,
            int(p["atr_period"]),
        )
        return first + 1

    def _generate(self, bars: OHLCV, params: dict[str, int | float]) -> SignalFrame:
        close = np.asarray(bars.close, dtype=np.float64)
        volume = np.asarray(bars.volume, dtype=np.float64)
        n_look, thr = int(params["lookback"]), float(params["threshold"])
        n_vol, factor = int(params["volume_window"]), float(params["volume_factor"])
        n_fast, n_slow = int(params["fast_ma"]), int(params["slow_ma"])
        atr_n = int(params["atr_period"])
        mom = ind.roc(close, n_look)
        avg_vol = ind.volume_sma(volume, n_vol)
        fast = ind.rolling_mean(close, n_fast)
        slow = ind.rolling_mean(close, n_slow)
        atr = ind.atr_sma(bars.high, bars.low, close, atr_n)
        with np.errstate(invalid="ignore", divide="ignore"):
            prev = ind.lag(mom)
            vol_ok = volume > factor * avg_vol
            buy = (mom > thr) & (prev <= thr) & vol_ok & (fast > slow)
            sell = (mom < -thr) & (prev >= -thr) & vol_ok & (fast < slow)
            side = buy.astype(np.int8) - sell.astype(np.int8)
            strength = np.abs(mom) / ind.rolling_mean(np.abs(mom), NORM_WINDOW)
            vratio = volume / avg_vol
            q = strength * vratio
            conf = q / (q + _K)

        def reason(i: int) -> str:
            up = side[i] > 0
            edge = f"above +{thr:g}%" if up else f"below -{thr:g}%"
            rel = ">" if up else "<"
            return (
                f"{n_look}-bar momentum {mom[i]:+.3f}% crossed {edge} at close {close[i]:.8g}; "
                f"volume {vratio[i]:.2f}x its {n_vol}-bar average (needs > {factor:g}x); "
                f"trend SMA({n_fast}) {fast[i]:.8g} {rel} SMA({n_slow}) {slow[i]:.8g}; "
                f"momentum {strength[i]:.2f}x typical; ATR({atr_n}) {atr[i]:.3g}; "
                f"confidence {conf[i]:.2f}"
            )

        return finish(bars, side, conf, atr, params, reason)
