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
import types
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

import numpy as np

from backend.marketdata.ohlcv import OHLCV
from backend.strategies.frame import SignalFrame, SignalPoint, labeller

__all__ = [
    "OHLCV",
    "ParamSpec",
    "SignalFrame",
    "SignalPoint",
    "Strategy",
    "armed_exits",
    "bracket",
    "finish",
    "finish_brackets",
    "logistic",
]


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


class _hybridmethod:
    """A method bound to the instance when called on one, else to the class.

    ``Strategy.spec``/``defaults``/``resolve_params`` work on a strategy class (its
    declared ``params``) and on an instance, whose ``params`` may be its own (a
    strategy built from configuration, e.g. ``combined``, declares per-instance
    parameters).
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        self.__func__ = func
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__

    def __get__(self, obj: Any, objtype: type | None = None) -> Callable[..., Any]:
        return types.MethodType(self.__func__, obj if obj is not None else objtype)


class Strategy(ABC):
    """Base class of all strategies.

    Subclasses set ``name`` and ``params`` (the one declaration of their tunable
    parameters) and implement :meth:`warmup` and :meth:`_generate`.  A strategy
    assembled at run time (:mod:`backend.strategies.config`) sets them on the instance.
    """

    name: ClassVar[str]
    params: ClassVar[tuple[ParamSpec, ...]]

    # ------------------------------------------------------------ parameters
    @_hybridmethod
    def spec(cls, name: str) -> ParamSpec:
        """The :class:`ParamSpec` called ``name`` (ValueError if unknown)."""
        for p in cls.params:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in cls.params)
        raise ValueError(f"strategy {cls.name!r} has no parameter {name!r} (known: {known})")

    @_hybridmethod
    def defaults(cls) -> dict[str, int | float]:
        """All parameters at their default values."""
        return {p.name: _default(p) for p in cls.params}

    @_hybridmethod
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
    @property
    def finite_memory(self) -> bool:
        """Whether the signal at bar ``i`` depends only on the last ``warmup`` bars, so
        ``generate`` over a whole series gives the signals of
        :class:`~backend.strategies.runner.StrategyRunner` fed bar by bar (what the mesh
        trades).  True for the built-in indicator strategies; a self-training
        ``ml_classifier`` retrains on the runner's window and is not."""
        return True

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
            Shape ``(n,)``; the signal at bar ``i`` depends only on bars ``0..i``.  Its
            points carry the market regime of their bar (:mod:`backend.marketdata.regime`, labels
            from the last ``regime.LOOKBACK`` closes) unless ``_generate`` set its own.
        """
        p = self.resolve_params(params)
        frame = self._generate(bars, p)
        if frame.regimer is None:
            frame = replace(frame, regimer=labeller(frame.close))
        return frame

    @abstractmethod
    def _generate(self, bars: OHLCV, params: dict[str, int | float]) -> SignalFrame:
        """Compute the signals; ``params`` is already resolved."""


def armed_exits(buy: np.ndarray, candidate: np.ndarray, hold: int) -> np.ndarray:
    """Exit signals of a long-only strategy, sent only while an entry may be open.

    ``exit[i]`` is true when ``candidate[i]`` and the strategy bought at some bar ``j``
    in ``[i - hold, i - 1]`` with no candidate in ``(j, i)`` (the first exit after the
    last buy, if it comes within ``hold`` bars).  So a flat strategy does not send a
    stream of SELLs that compliance would count as trades.  Finite memory: ``hold``
    bars of ``buy`` and ``candidate`` (add ``hold`` to the warmup).

    Parameters
    ----------
    buy, candidate : numpy.ndarray of bool, shape (n,)
    hold : int
        Bars after a buy during which its exit is armed (>= 1).

    Returns
    -------
    numpy.ndarray of bool, shape (n,)
    """
    n = len(buy)
    idx = np.arange(n)
    last_buy = np.maximum.accumulate(np.where(buy, idx, -1)) if n else idx
    last_cand = np.maximum.accumulate(np.where(candidate, idx, -1)) if n else idx
    lb = np.r_[-1, last_buy[:-1]] if n else idx
    lc = np.r_[-1, last_cand[:-1]] if n else idx
    return candidate & (lb >= 0) & (lb >= idx - hold) & (lc <= lb)


def _default(p: ParamSpec) -> int | float:
    return int(p.default) if p.kind == "int" else float(p.default)


def finish(
    bars: OHLCV,
    side: np.ndarray,
    confidence: np.ndarray,
    atr: np.ndarray,
    params: Mapping[str, Any],
    reasoner: Callable[[int], str],
    exit: np.ndarray | None = None,
) -> SignalFrame:
    """Common tail of ``_generate``: brackets, clean-up, the :class:`SignalFrame`.

    A signal is dropped (side 0) where its confidence or ATR is not finite, the ATR
    is not positive (zero stop distance) or a bracket price would be <= 0.  ``exit``
    (bool, shape ``(n,)``, optional) marks exit-only signals: their confidence is set
    to 0 (see :class:`SignalFrame`).
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
    ex = None
    if exit is not None:
        ex = np.asarray(exit, dtype=bool) & (side != 0)
        conf[ex] = 0.0
    return SignalFrame(side, conf, stop, target, np.asarray(bars.time), close, reasoner, ex)


def finish_brackets(
    bars: OHLCV,
    side: np.ndarray,
    confidence: np.ndarray,
    stop: np.ndarray,
    target: np.ndarray,
    reasoner: Callable[[int], str],
    exit: np.ndarray | None = None,
) -> SignalFrame:
    """:func:`finish` for a strategy that sets its own stop loss and take profit.

    Parameters
    ----------
    bars : OHLCV
        Shape ``(n,)``.
    side : numpy.ndarray
        +1 / -1 / 0 per bar.
    confidence : numpy.ndarray
        In [0, 1] where ``side != 0`` (clipped).
    stop, target : numpy.ndarray
        Absolute stop-loss and take-profit prices (quote/base) per bar.
    reasoner : callable
        ``reasoner(i) -> str``.
    exit : numpy.ndarray of bool, optional
        Exit-only signals (confidence set to 0).

    Returns
    -------
    SignalFrame
        A signal is dropped where its confidence, stop or target is not finite, a
        bracket price is <= 0, or the stop (target) is not on the losing (winning)
        side of the close: ``side * (close - stop) > 0`` and ``side * (target - close)
        > 0``.
    """
    close = np.asarray(bars.close, dtype=np.float64)
    side = side.astype(np.int8)
    stop = np.array(stop, dtype=np.float64)
    target = np.array(target, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ok = (np.isfinite(confidence) & np.isfinite(stop) & np.isfinite(target)
              & (stop > 0) & (target > 0)
              & (side * (close - stop) > 0) & (side * (target - close) > 0))
    side[~ok] = 0
    stop[side == 0] = np.nan
    target[side == 0] = np.nan
    conf = np.where(side != 0, np.clip(np.nan_to_num(confidence), 0.0, 1.0), 0.0)
    ex = None
    if exit is not None:
        ex = np.asarray(exit, dtype=bool) & (side != 0)
        conf[ex] = 0.0
    return SignalFrame(side, conf, stop, target, np.asarray(bars.time), close, reasoner, ex)
