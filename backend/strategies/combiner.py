"""A portfolio of strategies on one symbol fused into one signal stream (``"combined"``).

Configuration (``config/tradingmesh.toml``)::

    [strategies.ETHBTC]
    name = "combined"
    threshold = 0.5
    params = { memory = 6 }
    components = [
        { name = "rsi_reversion", weight = 1, params = { period = 14 } },
        { name = "bollinger_reversion", weight = 2 },
    ]

Vote
----
Each component ``k`` (weight ``w_k > 0``) runs on the same bars.  Its *stance* at bar
``i`` is its latest signal within the last ``memory`` bars (``i - memory < j <= i``):
``side_k[j] * confidence_k[j]`` for an entry, 0 for an exit-only signal or none.  The
vote is the weighted mean

    ``v[i] = sum(w_k * stance_k[i]) / sum(w_k)``,   in [-1, 1].

* **entry**: BUY at bar ``i`` when ``v[i] >= threshold`` and some component sends a BUY
  entry *at* bar ``i`` (a fresh trigger; stances alone do not repeat a signal every
  bar); SELL symmetrically (``v[i] <= -threshold`` and a fresh SELL entry).
  ``confidence = |v[i]|``: a component alone (weight share ``s``, confidence ``c``)
  reaches ``s * c``; the risk rules' ``min_confidence`` then asks for agreement.
* **exit**: when no entry fires and some component sends an exit-only signal at bar
  ``i``, the combined strategy sends that exit (confidence 0): any component's exit
  (an overbought RSI, the VWAP session flatten...) closes the position.

Brackets and reason: the *lead* component -- among those with a fresh signal of the
chosen side and kind at bar ``i``, the one with the largest ``w_k * confidence_k``
(for exits the largest weight; the first in configuration order on ties) -- gives the
stop loss and take profit (its own, computed on the same close) and its reason, after
the vote's summary.

Parameters (declared, so the GA optimizes them): ``threshold`` (default: the config's
``threshold``), ``memory`` (bars a component's signal keeps voting), then every
component's parameters prefixed with its label (``"<label>.<param>"``, label = the
component's name unless given), defaulting to the values its ``params`` configure.

Finite memory: ``warmup = max(component warmups) + memory - 1``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from typing import Any

import numpy as np
from pydantic import BaseModel

from backend.strategies.base import OHLCV, ParamSpec, SignalFrame, Strategy, finish_brackets
from backend.strategies.config import COMBINED

__all__ = ["COMBINED", "Combined", "Component"]


@dataclass(frozen=True)
class Component:
    """One member of a :class:`Combined` strategy.

    Attributes
    ----------
    label : str
        Prefix of its parameters (unique within the combination, no ``"."``).
    strategy : Strategy
    weight : float
        Vote weight (> 0).
    params : mapping
        Its configured parameters (the defaults of its prefixed parameters).
    """

    label: str
    strategy: Strategy
    weight: float = 1.0
    params: Mapping[str, Any] | None = None


class Combined(Strategy):
    """Weighted confidence vote of several strategies (see the module docstring).

    Parameters
    ----------
    components : sequence of Component
        At least one; labels unique.
    threshold : float
        Default vote threshold, in (0, 1].
    memory : int
        Default bars a component's signal keeps voting (>= 1).
    config : backend.strategies.config.StrategyConfig, optional
        The configuration it was built from (set by ``build_strategy``).

    Raises
    ------
    ValueError
        No component, a duplicate or dotted label, a weight <= 0, a threshold out of
        (0, 1], or a component parameter its strategy rejects (named with its prefix).
    """

    name = COMBINED

    def __init__(self, components: Sequence[Component], threshold: float = 0.5,
                 memory: int = 6, config: BaseModel | None = None) -> None:
        self.config = config
        if not components:
            raise ValueError("a combined strategy needs at least one component")
        labels = [c.label for c in components]
        for c in components:
            if not c.label or "." in c.label:
                raise ValueError(f"component label {c.label!r} must be non-empty without '.'")
            if labels.count(c.label) > 1:
                raise ValueError(f"component label {c.label!r} is used twice; give the "
                                 "components distinct labels")
            if not (np.isfinite(c.weight) and c.weight > 0):
                raise ValueError(f"component {c.label!r}: weight must be > 0, got {c.weight!r}")
        self.components = tuple(components)
        specs = [ParamSpec("threshold", "float", 0.01, 1.0, float(threshold),
                           "vote threshold: |weighted confidence vote| to reach"),
                 ParamSpec("memory", "int", 1, 1000, int(memory),
                           "bars a component's signal keeps voting")]
        for p in specs:
            p.cast(p.default)  # range check of the configured defaults
        for c in self.components:
            own = c.strategy.defaults()
            try:
                for k, v in (c.params or {}).items():
                    own[k] = c.strategy.spec(k).cast(v)
            except ValueError as exc:
                raise ValueError(f"component {c.label!r}: {exc}") from None
            self._check_component(c, own)
            specs += [dc_replace(p, name=f"{c.label}.{p.name}", default=own[p.name],
                                 doc=f"{c.label}: {p.doc}") for p in c.strategy.params]
        self.params = tuple(specs)  # type: ignore[misc]

    # ------------------------------------------------------------ parameters
    @staticmethod
    def _check_component(c: Component, own: dict[str, int | float]) -> None:
        try:
            c.strategy.check_params(own)
        except ValueError as exc:
            msg = str(exc)
            for p in c.strategy.params:
                msg = re.sub(rf"'{re.escape(p.name)}'", f"'{c.label}.{p.name}'", msg)
            raise ValueError(f"component {c.label!r}: {msg}") from None

    def component_params(self, params: Mapping[str, Any], c: Component) -> dict[str, Any]:
        """The unprefixed parameters of component ``c`` out of resolved ``params``."""
        pre = f"{c.label}."
        return {p.name: params[pre + p.name] for p in c.strategy.params}

    def check_params(self, params: dict[str, int | float]) -> None:  # type: ignore[override]
        """Every component's constraints, on its slice (messages name prefixed params)."""
        for c in self.components:
            self._check_component(c, self.component_params(params, c))

    @property
    def finite_memory(self) -> bool:
        """Finite when every component's is."""
        return all(c.strategy.finite_memory for c in self.components)

    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        """``max(component warmups) + memory - 1`` bars."""
        p = self.resolve_params(params)
        w = max(c.strategy.warmup(self.component_params(p, c)) for c in self.components)
        return w + int(p["memory"]) - 1

    # ------------------------------------------------------------ signals
    def _generate(self, bars: OHLCV, params: dict[str, int | float]) -> SignalFrame:
        close = np.asarray(bars.close, dtype=np.float64)
        n = len(close)
        thr, mem = float(params["threshold"]), int(params["memory"])
        frames = [c.strategy._generate(bars, self.component_params(params, c))
                  for c in self.components]
        w = np.array([c.weight for c in self.components])
        idx = np.arange(n)
        stance = np.zeros((len(frames), n))
        for k, f in enumerate(frames):
            ex = f.exits()
            last = np.maximum.accumulate(np.where(f.side != 0, idx, -1)) if n else idx
            live = last > idx - mem
            j = np.maximum(last, 0)
            val = np.where(ex[j], 0.0, f.side[j] * f.confidence[j])
            stance[k] = np.where(live, val, 0.0)
        acc = w[0] * stance[0]
        for k in range(1, len(frames)):  # fixed order: bit-exact per bar
            acc = acc + w[k] * stance[k]
        vote = acc / w.sum()
        fresh_buy = np.stack([(f.side > 0) & ~f.exits() for f in frames])  # (K, n)
        fresh_sell = np.stack([(f.side < 0) & ~f.exits() for f in frames])
        fresh_exit = np.stack([f.exits() for f in frames])
        buy = fresh_buy.any(axis=0) & (vote >= thr)
        sell = fresh_sell.any(axis=0) & (vote <= -thr) & ~buy
        out = fresh_exit.any(axis=0) & ~buy & ~sell
        side = np.zeros(n, dtype=np.int8)
        side[buy], side[sell] = 1, -1
        side[out] = np.array([self._exit_side(frames, w, i) for i in np.flatnonzero(out)],
                             dtype=np.int8)
        side[: self.warmup(params) - 1] = 0
        lead = np.full(n, -1)
        for i in np.flatnonzero(side):
            lead[i] = self._lead(frames, w, int(i), int(side[i]), bool(out[i]))
        stop, target = np.full(n, np.nan), np.full(n, np.nan)
        for i in np.flatnonzero(side):
            f = frames[lead[i]]
            stop[i], target[i] = f.stop_loss[i], f.take_profit[i]
        conf = np.abs(vote)
        labels = [c.label for c in self.components]

        def reason(i: int) -> str:
            k = int(lead[i])
            votes = ", ".join(f"{labels[q]} {stance[q, i]:+.2f}x{w[q]:g}"
                              for q in range(len(frames)) if stance[q, i] != 0)
            head = (f"combined exit by {labels[k]}" if out[i] else
                    f"combined vote {vote[i]:+.2f} (threshold {thr:g}, memory {mem} bars: "
                    f"{votes or 'none'}); lead {labels[k]}")
            return f"{head}: {frames[k].reason_at(i)}"

        return finish_brackets(bars, side, conf, stop, target, reason, exit=out)

    @staticmethod
    def _exit_side(frames: Sequence[SignalFrame], w: np.ndarray, i: int) -> int:
        ks = [k for k, f in enumerate(frames) if f.is_exit(i)]
        k = max(ks, key=lambda q: (w[q], -q))
        return int(frames[k].side[i])

    @staticmethod
    def _lead(frames: Sequence[SignalFrame], w: np.ndarray, i: int, side: int,
              exit_: bool) -> int:
        if exit_:
            ks = [k for k, f in enumerate(frames) if f.is_exit(i) and f.side[i] == side]
            return max(ks, key=lambda q: (w[q], -q))
        ks = [k for k, f in enumerate(frames)
              if f.side[i] == side and not f.is_exit(i)]
        return max(ks, key=lambda q: (w[q] * frames[q].confidence[i], -q))
