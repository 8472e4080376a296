"""Signal containers: :class:`SignalPoint` (one signal) and :class:`SignalFrame` (every bar).

Split from :mod:`backend.strategies.base` (which re-exports both).  Units: prices
(close, stop loss, take profit) in quote currency per base unit; time in ns since the
Unix epoch (UTC).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from backend.marketdata import regime

__all__ = ["SignalFrame", "SignalPoint", "labeller"]


@dataclass(frozen=True)
class SignalPoint:
    """One signal: act at the close of bar ``index``.

    ``side`` +1 buy / -1 sell; ``confidence`` in [0, 1]; ``price`` the bar's close,
    ``stop_loss`` and ``take_profit`` absolute prices (quote/base); ``time`` the bar's
    open time (ns UTC); ``index`` the bar's position in the series (0-based).
    ``regime`` the market regime label of the bar (:mod:`backend.marketdata.regime`, ``""`` when
    the strategy was not built with regime labels or the bar has too little history);
    ``exit`` True for an exit-only signal (it closes a position, never opens one; its
    confidence is 0, see :class:`SignalFrame`).
    """

    index: int
    time: int
    side: int
    confidence: float
    price: float
    stop_loss: float
    take_profit: float
    reason: str
    regime: str = ""
    exit: bool = False


@dataclass(frozen=True, eq=False)
class SignalFrame:
    """Signals for every bar of a series, as parallel arrays of shape ``(n,)``.

    Attributes
    ----------
    side : numpy.ndarray of int8
        +1 buy, -1 sell, 0 none (at the close of the bar).
    confidence : numpy.ndarray of float64
        In [0, 1]; 0 where ``side == 0``.
    stop_loss, take_profit : numpy.ndarray of float64
        Absolute prices (quote/base); NaN where ``side == 0``.
    time, close : numpy.ndarray
        The input bars' open times (int64 ns) and closes (references, not copies).
    reasoner : callable
        ``reasoner(i) -> str`` explaining the signal at bar ``i``; use :meth:`reason_at`.
    exit : numpy.ndarray of bool, optional
        True where the signal only exits (closes a position: a SELL that closes a long).
        Exit signals carry confidence 0, so the risk rules close a position with them
        (a close bypasses the confidence threshold) but never open one (an opening
        order needs ``confidence >= risk.min_confidence``, > 0).  ``None``: no exits.
    regimer : callable, optional
        ``regimer(i) -> str``: the regime label of bar ``i`` (:mod:`backend.marketdata.regime`);
        ``None``: no labels (``""``).  Use :meth:`regime_at`.
    """

    side: np.ndarray
    confidence: np.ndarray
    stop_loss: np.ndarray
    take_profit: np.ndarray
    time: np.ndarray
    close: np.ndarray
    reasoner: Callable[[int], str]
    exit: np.ndarray | None = field(default=None)
    regimer: Callable[[int], str] | None = field(default=None)

    def __len__(self) -> int:
        return len(self.side)

    def indices(self) -> np.ndarray:
        """Bar indices with a signal (``side != 0``), ascending; int64 shape ``(k,)``."""
        return np.flatnonzero(self.side)

    def reason_at(self, i: int) -> str:
        """Human-readable reason for the signal at bar ``i`` (``""`` if none)."""
        return self.reasoner(int(i)) if self.side[i] != 0 else ""

    def is_exit(self, i: int) -> bool:
        """Whether the signal at bar ``i`` is exit-only (False where there is none)."""
        return bool(self.exit is not None and self.side[i] != 0 and self.exit[i])

    def exits(self) -> np.ndarray:
        """Boolean mask, shape ``(n,)``: exit-only signals."""
        if self.exit is None:
            return np.zeros(len(self.side), dtype=bool)
        return (self.side != 0) & self.exit

    def regime_at(self, i: int) -> str:
        """Regime label of bar ``i`` (``""`` without labels)."""
        return self.regimer(int(i)) if self.regimer is not None else ""

    def point(self, i: int) -> SignalPoint | None:
        """The signal at bar ``i`` (negative ``i`` counts from the end), or ``None``."""
        i = int(i) % len(self.side) if i < 0 else int(i)
        if self.side[i] == 0:
            return None
        return SignalPoint(
            index=i,
            time=int(self.time[i]),
            side=int(self.side[i]),
            confidence=float(self.confidence[i]),
            price=float(self.close[i]),
            stop_loss=float(self.stop_loss[i]),
            take_profit=float(self.take_profit[i]),
            reason=self.reasoner(i),
            regime=self.regime_at(i),
            exit=self.is_exit(i),
        )

    def points(self) -> list[SignalPoint]:
        """All signals, in bar order."""
        return [p for i in self.indices() if (p := self.point(int(i))) is not None]


def labeller(close: np.ndarray) -> Callable[[int], str]:
    """``regimer`` of a frame: the regime label of bar ``i`` (:func:`backend.marketdata.regime.
    labels_at`), computed on demand and memoised (most bars are never asked)."""
    memo: dict[int, str] = {}

    def label(i: int) -> str:
        got = memo.get(i)
        if got is None:
            got = memo[i] = str(regime.labels_at(close, [i])[0])
        return got

    return label
