"""Strategy interface: declared parameters, vectorised signal generation.

A strategy is a pure function of the bars and its parameters.  ``generate``
computes, for every bar ``i`` at once, whether to buy or sell at the close of bar
``i``, using only bars ``0..i`` (no look-ahead).  The same code serves the backtester
(whole series) and the live strategy agent (:class:`~backend.strategies.runner.StrategyRunner`).

Units: prices (close, stop loss, take profit, ATR) in quote currency per base unit;
volume in base units; time in ns since the Unix epoch (UTC).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

__all__ = [
    "OHLCV",
    "ParamSpec",
    "SignalFrame",
    "SignalPoint",
    "Strategy",
    "bracket",
    "finish",
    "logistic",
]


class OHLCV(Protocol):
    """Anything with parallel bar arrays of shape ``(n,)`` (e.g. ``marketdata.Candles``).

    ``time`` int64 ns UTC (bar open time); ``open, high, low, close`` float64
    quote/base; ``volume`` float64 base units.
    """

    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


@dataclass(frozen=True)
class ParamSpec:
    """One tunable parameter: the GA optimizer builds genomes from these.

    Attributes
    ----------
    name : str
    kind : {"int", "float"}
    low, high : float
        Inclusive bounds.
    default : float
        Value used when none is given (within bounds).
    doc : str
        What it means, with units.
    """

    name: str
    kind: Literal["int", "float"]
    low: float
    high: float
    default: float
    doc: str = ""

    def cast(self, value: Any) -> int | float:
        """Validate and convert one value.

        Raises
        ------
        ValueError
            Not a number, not an integer for an ``int`` spec, or out of ``[low, high]``;
            the message names the parameter.
        """
        if isinstance(value, bool):
            raise ValueError(f"parameter {self.name!r}: expected a number, got {value!r}")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {self.name!r}: {value!r} is not a number") from None
        if not math.isfinite(v):
            raise ValueError(f"parameter {self.name!r}: {value!r} is not finite")
        if self.kind == "int" and v != int(v):
            raise ValueError(f"parameter {self.name!r}: {value!r} is not an integer")
        if not self.low <= v <= self.high:
            raise ValueError(
                f"parameter {self.name!r} = {value!r} is out of range [{self.low}, {self.high}]"
            )
        return int(v) if self.kind == "int" else v


@dataclass(frozen=True)
class SignalPoint:
    """One signal: act at the close of bar ``index``.

    ``side`` +1 buy / -1 sell; ``confidence`` in [0, 1]; ``price`` the bar's close,
    ``stop_loss`` and ``take_profit`` absolute prices (quote/base); ``time`` the bar's
    open time (ns UTC); ``index`` the bar's position in the series (0-based).
    """

    index: int
    time: int
    side: int
    confidence: float
    price: float
    stop_loss: float
    take_profit: float
    reason: str


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
    """

    side: np.ndarray
    confidence: np.ndarray
    stop_loss: np.ndarray
    take_profit: np.ndarray
    time: np.ndarray
    close: np.ndarray
    reasoner: Callable[[int], str]

    def __len__(self) -> int:
        return len(self.side)

    def indices(self) -> np.ndarray:
        """Bar indices with a signal (``side != 0``), ascending; int64 shape ``(k,)``."""
        return np.flatnonzero(self.side)

    def reason_at(self, i: int) -> str:
        """Human-readable reason for the signal at bar ``i`` (``""`` if none)."""
        return self.reasoner(int(i)) if self.side[i] != 0 else ""

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
        )

    def points(self) -> list[SignalPoint]:
        """All signals, in bar order."""
        return [p for i in self.indices() if (p := self.point(int(i))) is not None]


def logistic(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))`` element-wise, in [0, 1] (NaN stays NaN)."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def bracket(
    side: np.ndarray, close: np.ndarray, atr: np.ndarray, stop_atr: float, reward_risk: float
) -> tuple[np.ndarray, np.ndarray]:
    """ATR stop loss and take profit for each bar.

    ``stop = close - side * stop_atr * atr``; ``target = close + side * reward_risk *
    stop_atr * atr`` (so the reward is ``reward_risk`` times the risk).  Prices in
    quote/base, shape ``(n,)``; NaN where ``side == 0``.
    """
    dist = stop_atr * atr
    with np.errstate(invalid="ignore"):
        stop = np.where(side != 0, close - side * dist, np.nan)
        target = np.where(side != 0, close + side * reward_risk * dist, np.nan)
    return stop, target


class Strategy(ABC):
    """Base class of all strategies.

    Subclasses set ``name`` and ``params`` (the one declaration of their tunable
    parameters) and implement :meth:`warmup` and :meth:`_generate`.
    """

    name: ClassVar[str]
    params: ClassVar[tuple[ParamSpec, ...]]

    # ------------------------------------------------------------ parameters
    @classmethod
    def spec(cls, name: str) -> ParamSpec:
        """The :class:`ParamSpec` called ``name`` (ValueError if unknown)."""
        for p in cls.params:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in cls.params)
        raise ValueError(f"strategy {cls.name!r} has no parameter {name!r} (known: {known})")

    @classmethod
    def defaults(cls) -> dict[str, int | float]:
        """All parameters at their default values."""
        return {p.name: _default(p) for p in cls.params}

    @classmethod
    def resolve_params(cls, overrides: Mapping[str, Any] | None = None) -> dict[str, int | float]:
        """Validate ``overrides`` against the declared specs and fill in defaults.

        Returns
        -------
        dict
            Every declared parameter, ints cast to ``int``, in declaration order.

        Raises
        ------
        ValueError
            Unknown name, value out of range, non-integer for an int parameter, or a
            cross-parameter constraint broken (see :meth:`check_params`); the message
            names the parameter.
        """
        out = cls.defaults()
        for k, v in (overrides or {}).items():
            out[k] = cls.spec(k).cast(v)
        cls.check_params(out)
        return out

    @classmethod
    def check_params(cls, params: dict[str, int | float]) -> None:
        """Cross-parameter constraints (e.g. fast < slow); raise ValueError.  Default: none."""
        return None

    # ------------------------------------------------------------ signals
    @abstractmethod
    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        """Bars needed before the first possible signal: the earliest signal is at
        index ``warmup - 1``."""

    def generate(self, bars: OHLCV, params: Mapping[str, Any] | None = None) -> SignalFrame:
        """Signals for every bar of ``bars``.

        Parameters
        ----------
        bars : OHLCV
            Shape ``(n,)`` arrays, time ascending.
        params : mapping, optional
            Overrides of the defaults (validated with :meth:`resolve_params`).

        Returns
        -------
        SignalFrame
            Shape ``(n,)``; the signal at bar ``i`` depends only on bars ``0..i``.
        """
        p = self.resolve_params(params)
        return self._generate(bars, p)

    @abstractmethod
    def _generate(self, bars: OHLCV, params: dict[str, int | float]) -> SignalFrame:
        """Compute the signals; ``params`` is already resolved."""


def _default(p: ParamSpec) -> int | float:
    return int(p.default) if p.kind == "int" else float(p.default)


def finish(
    bars: OHLCV,
    side: np.ndarray,
    confidence: np.ndarray,
    atr: np.ndarray,
    params: Mapping[str, Any],
    reasoner: Callable[[int], str],
) -> SignalFrame:
    """Common tail of ``_generate``: brackets, clean-up, the :class:`SignalFrame`.

    A signal is dropped (side 0) where its confidence or ATR is not finite, the ATR
    is not positive (zero stop distance) or a bracket price would be <= 0.
    """
    close = np.asarray(bars.close, dtype=np.float64)
    side = side.astype(np.int8)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(confidence) & np.isfinite(atr) & (atr > 0)
    side[~ok] = 0
    stop, target = bracket(
        side, close, atr, float(params["stop_atr"]), float(params["reward_risk"])
    )
    with np.errstate(invalid="ignore"):
        bad = (side != 0) & ~((stop > 0) & (target > 0))
    side[bad] = 0
    stop[side == 0] = np.nan
    target[side == 0] = np.nan
    conf = np.where(side != 0, np.clip(np.nan_to_num(confidence), 0.0, 1.0), 0.0)
    return SignalFrame(side, conf, stop, target, np.asarray(bars.time), close, reasoner)
