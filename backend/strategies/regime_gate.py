"""The regime gate: a strategy that opens positions only in allowed market regimes.

Every strategy's signals carry the market regime of their bar (:mod:`backend.marketdata.regime`,
attached by :meth:`Strategy.generate`; the pipeline puts it in
``SignalGenerated.regime``).  :class:`RegimeGated` wraps a strategy (same name, same
parameters) for a configuration with ``regimes = [...]``: entries whose bar is in
another regime -- or whose regime is unknown -- are dropped.  Exit-only signals
(:attr:`SignalFrame.exit`) always pass: the gate decides where positions are opened,
never keeps one from being closed.

Finite memory: a label depends on the last :data:`backend.marketdata.regime.LOOKBACK` closes, so a
gated strategy's warmup is ``max(inner warmup, LOOKBACK)`` and its signals depend on its
warmup bars only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from pydantic import BaseModel

from backend.marketdata import regime
from backend.strategies.base import OHLCV, SignalFrame, Strategy

__all__ = ["RegimeGated"]


class RegimeGated(Strategy):
    """``inner`` whose entries pass only in the ``allowed`` regimes.

    Parameters
    ----------
    inner : Strategy
        The strategy whose signals are labelled (and filtered).
    allowed : sequence of str
        Allowed regimes: full labels, trends or volatility levels (empty: no gate).
    config : backend.strategies.config.StrategyConfig, optional
        The configuration this strategy was built from (:func:`build_strategy` sets it;
        the backtester's risk sizing rebuilds the strategy from it).

    Raises
    ------
    ValueError
        An unknown regime in ``allowed``.
    """

    def __init__(self, inner: Strategy, allowed: Sequence[str] = (),
                 config: BaseModel | None = None) -> None:
        self.inner = inner
        self.allowed: tuple[str, ...] = tuple(regime.validate_regimes(allowed))
        self.name = inner.name  # type: ignore[misc]
        self.params = inner.params  # type: ignore[misc]
        self.config = config

    def check_params(self, params: dict[str, int | float]) -> None:  # type: ignore[override]
        """The inner strategy's constraints."""
        self.inner.check_params(params)

    @property
    def finite_memory(self) -> bool:
        """The inner strategy's."""
        return self.inner.finite_memory

    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        """The inner warmup; with a gate, at least :data:`backend.marketdata.regime.LOOKBACK`."""
        w = self.inner.warmup(params)
        return max(w, regime.LOOKBACK) if self.allowed else w

    def _generate(self, bars: OHLCV, params: dict[str, int | float]) -> SignalFrame:
        f = self.inner._generate(bars, params)
        close = np.asarray(f.close, dtype=np.float64)
        idx = f.indices()
        labels = regime.labels_at(close, idx)
        if self.allowed:
            keep = regime.allowed_mask(labels, self.allowed) | f.exits()[idx]
            keep &= idx >= self.warmup(params) - 1
            if not keep.all():
                drop = idx[~keep]
                side, conf = f.side.copy(), f.confidence.copy()
                stop, target = f.stop_loss.copy(), f.take_profit.copy()
                side[drop], conf[drop], stop[drop], target[drop] = 0, 0.0, np.nan, np.nan
                f = replace(f, side=side, confidence=conf, stop_loss=stop, take_profit=target)
                idx, labels = idx[keep], labels[keep]
        memo = {int(i): str(lab) for i, lab in zip(idx, labels, strict=True)}

        def regimer(i: int) -> str:
            got = memo.get(i)
            return got if got is not None else str(regime.labels_at(close, [i])[0])

        return replace(f, regimer=regimer)
