"""Kelly-fraction position sizing (pure), the alternative to fixed-fractional sizing.

Kelly (1956, "A new interpretation of information rate", *Bell System Technical
Journal* 35(4)) and Thorp (2006, "The Kelly criterion in blackjack, sports betting and
the stock market", *Handbook of Asset and Liability Management*, Section 2): for a bet
won with probability ``p`` that pays ``b`` per unit staked and loses the stake
otherwise, the growth-optimal fraction of capital to stake is::

    f* = p - (1 - p) / b

For a bracketed trade the stake is what the stop loses: the trade risks ``f`` of equity
(``quantity = f * equity / stop_distance``), wins ``b = |take_profit - entry| /
|entry - stop|`` times that at the take-profit.  ``p`` is the signal's confidence (or a
configured win rate).  Full Kelly is volatile and ``p`` is an estimate, so the fraction
used is ``min(kelly_fraction * f*, kelly_cap)`` (fractional Kelly, capped); ``f* <= 0``
(no edge) sizes nothing.
"""

from __future__ import annotations

import math

from backend.messages import SignalGenerated
from backend.risk.config import RiskConfig


def kelly_fraction(p: float, b: float) -> float:
    """Full Kelly fraction ``p - (1 - p) / b`` (``-inf`` when ``b <= 0``: no reward).

    Parameters
    ----------
    p
        Win probability in [0, 1].
    b
        Reward-to-risk ratio (win per unit lost), > 0.
    """
    if not b > 0:
        return -math.inf
    return p - (1.0 - p) / b


def kelly_risk(signal: SignalGenerated, cfg: RiskConfig, stop_distance: float,
               ) -> tuple[float, str]:
    """Fraction of equity to risk on ``signal`` under Kelly sizing, and the reason.

    Parameters
    ----------
    signal
        The signal (entry, stop, take-profit in quote/base; confidence in [0, 1]).
    cfg
        ``kelly_win_rate`` (0: use the confidence), ``kelly_fraction``, ``kelly_cap``.
    stop_distance
        ``|entry - stop|`` (quote/base), > 0.

    Returns
    -------
    tuple of (float, str)
        ``min(kelly_fraction * f*, kelly_cap)``, or ``0.0`` when ``f* <= 0``; the reason
        gives ``p``, ``b``, ``f*`` and the fraction used.
    """
    p = cfg.kelly_win_rate if cfg.kelly_win_rate > 0 else signal.confidence
    reward = (signal.take_profit - signal.entry_price) * signal.side.sign
    b = reward / stop_distance if stop_distance > 0 else 0.0
    f = kelly_fraction(p, b)
    head = f"kelly p {p:.4g}, b {b:.4g} (reward {reward:.8g} / risk {stop_distance:.8g})"
    if not f > 0:
        return 0.0, f"{head}: f* = {f:.4g} <= 0 (no edge)"
    used = min(cfg.kelly_fraction * f, cfg.kelly_cap)
    capped = " (capped)" if used < cfg.kelly_fraction * f else ""
    return used, (f"{head}: f* = {f:.4g}, x {cfg.kelly_fraction:.4g} -> risk "
                  f"{used:.4g} of equity{capped}")
