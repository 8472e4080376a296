"""RSI mean reversion (``"rsi_reversion"``): buy the turn out of oversold, exit when overbought.

Indicator
---------
Cutler's RSI (:func:`backend.indicators.rsi_cutler`): ``RSI = 100 * G / (G + L)`` with
``G``, ``L`` the *simple* means of the gains and losses of the last ``period`` closes
(Wilder's RSI smooths them exponentially and so depends on the whole history; Cutler's
depends on the last ``period + 1`` closes only, bit for bit).

Signal
------
* **buy** at the close of bar ``i`` when the RSI crosses up through the oversold level,
  ``RSI[i] > oversold >= RSI[i-1]`` (the turn, not the dip itself);
* **exit** (an exit-only SELL, confidence 0) when it enters the overbought zone,
  ``RSI[i] > overbought >= RSI[i-1]``, for the first time within ``hold_bars`` bars
  after a buy (:func:`~backend.strategies.base.armed_exits`: a flat strategy sends no
  SELLs).  It closes a long; it never opens a short.

Stop loss and take profit are ATR brackets around the close
(:func:`~backend.strategies.base.bracket`, ATR = mean true range over ``atr_period``).

Confidence (buys)
-----------------
Two features:

* dip depth ``d = (oversold - min(RSI over the previous period bars)) / oversold`` in
  [0, 1]: how far into the oversold zone the RSI went before turning;
* bounce ``k = (RSI[i] - RSI[i-1]) / mean(|RSI[j] - RSI[j-1]|, last NORM_WINDOW (100)
  bars)``: how sharp the turn is against the RSI's typical bar-to-bar move.

``confidence = logistic(A * d + B * ln k - C)`` with ``A = 6, B = 1.5, C = 1.2``
(chosen so that ~30-40% of the buys on the shipped sample data reach 0.85, e.g. a dip
to RSI 15 (d = 0.5) with a bounce 1.6x the typical move).
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
    finish,
    logistic,
)

__all__ = ["RsiReversion"]

NORM_WINDOW = 100
_A, _B, _C = 6.0, 1.5, 1.2


class RsiReversion(Strategy):
    """Cutler-RSI oversold turn entries, overbought exits, ATR stop and target."""

    name = "rsi_reversion"
    params = (
        ParamSpec("period", "int", 2, 100, 14, "RSI window (bars), simple averages (Cutler)"),
        ParamSpec("oversold", "float", 1.0, 50.0, 30.0,
                  "buy when the RSI crosses up through this level; < overbought"),
        ParamSpec("overbought", "float", 50.0, 99.0, 70.0,
                  "exit a long when the RSI rises above this level"),
        ParamSpec("atr_period", "int", 2, 100, 14, "ATR window (bars), mean of true range"),
        ParamSpec("stop_atr", "float", 0.5, 10.0, 2.0, "stop-loss distance in ATRs"),
        ParamSpec("reward_risk", "float", 0.5, 10.0, 2.0, "take-profit / stop-loss distance"),
        ParamSpec("hold_bars", "int", 1, 1000, 96,
                  "bars after a buy during which the overbought exit is armed"),
    )

    @classmethod
    def check_params(cls, params: dict[str, int | float]) -> None:
        """``oversold`` must be below ``overbought``."""
        if params["oversold"] >= params["overbought"]:
            raise ValueError(
                f"parameter 'oversold' ({params['oversold']}) must be smaller than "
                f"'overbought' ({params['overbought']})")

    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        """``max(period + NORM_WINDOW, 2 * period, atr_period) + 1 + hold_bars`` bars (211
        by default): a buy's own history, plus the bars its exit stays armed."""
        return self._entry_warmup(self.resolve_params(params)) + int(
            self.resolve_params(params)["hold_bars"])

    @staticmethod
    def _entry_warmup(p: Mapping[str, Any]) -> int:
        n = int(p["period"])
        return max(n + NORM_WINDOW, 2 * n, int(p["atr_period"])) + 1

    def _generate(self, bars: OHLCV, params: dict[str, int | float]) -> SignalFrame:
        close = np.asarray(bars.close, dtype=np.float64)
        n, atr_n = int(params["period"]), int(params["atr_period"])
        lo, hi = float(params["oversold"]), float(params["overbought"])
        rsi = ind.rsi_cutler(close, n)
        atr = ind.atr_sma(bars.high, bars.low, close, atr_n)
        with np.errstate(invalid="ignore", divide="ignore"):
            prev = ind.lag(rsi)
            buy = (rsi > lo) & (prev <= lo)
            buy[: self._entry_warmup(params) - 1] = False
            out = armed_exits(buy, (rsi > hi) & (prev <= hi), int(params["hold_bars"]))
            side = buy.astype(np.int8) - out.astype(np.int8)
            side[: self.warmup(params) - 1] = 0
            dip = ind.lag(ind.rolling_min(rsi, n))
            depth = np.clip((lo - dip) / lo, 0.0, 1.0)
            move = rsi - prev
            bounce = move / ind.rolling_mean(np.abs(move), NORM_WINDOW)
            conf = np.where(out, 0.0, logistic(_A * depth + _B * np.log(bounce) - _C))

        def reason(i: int) -> str:
            if side[i] < 0:
                return (f"exit: RSI({n}) {rsi[i]:.1f} rose above overbought {hi:g} "
                        f"(from {prev[i]:.1f}) at close {close[i]:.8g}; closes a long")
            return (f"RSI({n}) {rsi[i]:.1f} crossed up through oversold {lo:g} "
                    f"(from {prev[i]:.1f}) at close {close[i]:.8g}; dip to {dip[i]:.1f} "
                    f"(depth {depth[i]:.2f}), bounce {bounce[i]:.2f}x typical; "
                    f"ATR({atr_n}) {atr[i]:.3g}; confidence {conf[i]:.2f}")

        return finish(bars, side, conf, atr, params, reason, exit=out)
