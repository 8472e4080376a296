"""Bollinger band mean reversion (``"bollinger_reversion"``): buy a close back inside the
lower band, exit at the middle (or upper) band.

Bands
-----
``mid = SMA(close, period)``, ``sd`` = population standard deviation of the same
``period`` closes, ``lower/upper = mid -/+ num_sd * sd`` (J. Bollinger, *Bollinger on
Bollinger Bands*, 2001: 20 bars, 2 deviations, population deviation).  Both with
finite-window, bit-exact code (:func:`backend.indicators.rolling_mean`,
:func:`backend.indicators.rolling_std`).

Signal
------
* **buy** at the close of bar ``i`` when the close comes back inside the lower band,
  ``close[i-1] < lower[i-1]`` and ``close[i] >= lower[i]``;
* **exit** (an exit-only SELL, confidence 0) when the close crosses the exit band,
  ``close[i] >= band[i]`` and ``close[i-1] < band[i-1]``, with ``band`` the middle band
  (``exit_band = 0``) or the upper band (``exit_band = 1``); only the first crossing
  within ``hold_bars`` bars after a buy (:func:`~backend.strategies.base.armed_exits`:
  a flat strategy sends no SELLs).

Brackets: take profit at the exit band's value at the entry bar (the reversion target),
stop loss ``stop_atr`` ATRs below the close (ATR = mean true range over ``atr_period``).
A buy whose target is not above its close is dropped.

Confidence (buys)
-----------------
* penetration ``z = (lower[i-1] - close[i-1]) / sd[i-1]``: how many deviations
  outside the band the previous close was (> 0);
* reward/risk ``q = (target - close) / (close - stop)`` of the bracket.

``confidence = logistic(A * z + B * ln q - C)`` with ``A = 4, B = 1, C = -0.4``
(chosen so that ~15-35% of the buys on the shipped sample data reach 0.85, e.g. a
previous close 0.4 deviations outside the band with a 1:1 reward/risk).
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
    armed_exits,
    finish_brackets,
    logistic,
)

__all__ = ["BollingerReversion"]

_A, _B, _C = 4.0, 1.0, -0.4


class BollingerReversion(Strategy):
    """Close back inside the lower Bollinger band; exit at the middle or upper band."""

    name = "bollinger_reversion"
    params = (
        ParamSpec("period", "int", 5, 200, 20, "band window (bars): SMA and deviation"),
        ParamSpec("num_sd", "float", 0.5, 5.0, 2.0, "band half-width in standard deviations"),
        ParamSpec("exit_band", "int", 0, 1, 0, "exit and target: 0 = middle band, 1 = upper"),
        ParamSpec("atr_period", "int", 2, 100, 14, "ATR window (bars), mean of true range"),
        ParamSpec("stop_atr", "float", 0.5, 10.0, 1.5, "stop-loss distance in ATRs"),
        ParamSpec("hold_bars", "int", 1, 1000, 96,
                  "bars after a buy during which the band exit is armed"),
    )

    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        """``max(period, atr_period) + 1 + hold_bars`` bars (117 by default): a buy's own
        history, plus the bars its exit stays armed."""
        p = self.resolve_params(params)
        return self._entry_warmup(p) + int(p["hold_bars"])

    @staticmethod
    def _entry_warmup(p: Mapping[str, Any]) -> int:
        return max(int(p["period"]), int(p["atr_period"])) + 1

    def _generate(self, bars: OHLCV, params: dict[str, int | float]) -> SignalFrame:
        close = np.asarray(bars.close, dtype=np.float64)
        n, k = int(params["period"]), float(params["num_sd"])
        atr_n, stop_atr = int(params["atr_period"]), float(params["stop_atr"])
        upper_exit = int(params["exit_band"]) == 1
        mid = ind.rolling_mean(close, n)
        sd = ind.rolling_std(close, n)
        lower, upper = mid - k * sd, mid + k * sd
        band = upper if upper_exit else mid
        atr = ind.atr_sma(bars.high, bars.low, close, atr_n)
        with np.errstate(invalid="ignore", divide="ignore"):
            c_prev = ind.lag(close)
            buy = (c_prev < ind.lag(lower)) & (close >= lower)
            buy[: self._entry_warmup(params) - 1] = False
            out = armed_exits(buy, (close >= band) & (c_prev < ind.lag(band)),
                              int(params["hold_bars"]))
            side = buy.astype(np.int8) - out.astype(np.int8)
            side[: self.warmup(params) - 1] = 0
            z = (ind.lag(lower) - c_prev) / ind.lag(sd)
            stop = np.where(side > 0, close - stop_atr * atr, close + stop_atr * atr)
            target = np.where(side > 0, band, close - stop_atr * atr)
            q = (target - close) / (close - stop)
            conf = np.where(out, 0.0, logistic(_A * z + _B * np.log(q) - _C))
        word = "upper" if upper_exit else "middle"

        def reason(i: int) -> str:
            if side[i] < 0:
                return (f"exit: close {close[i]:.8g} crossed the {word} band "
                        f"{band[i]:.8g} (BB({n}, {k:g})); closes a long")
            return (f"close {close[i]:.8g} back inside the lower band {lower[i]:.8g} "
                    f"(BB({n}, {k:g}): mid {mid[i]:.8g}, sd {sd[i]:.3g}); previous close "
                    f"{z[i]:.2f} sd below the band; target the {word} band {band[i]:.8g}, "
                    f"reward/risk {q[i]:.2f}; ATR({atr_n}) {atr[i]:.3g}; "
                    f"confidence {conf[i]:.2f}")

        return finish_brackets(bars, side, conf, stop, target, reason, exit=out)
