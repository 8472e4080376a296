"""The GA genome of a strategy, built from its declared :class:`ParamSpec` s.

Every tunable parameter of the strategy (``Strategy.params``) is one gene, in
declaration order, except those pinned by ``fixed`` and those whose range is a single
value.  So a new strategy is optimizable as soon as it declares its parameters.

Representation
--------------
An individual is a list of genes: Python ``int`` for ``int`` specs, ``float`` for
``float`` specs, each within the spec's inclusive ``[low, high]``.  The variation
operators (DEAP's bounded simulated binary crossover and polynomial mutation) work on
floats; :meth:`Genome.repair` then rounds the int genes and clips every gene back to its
bounds.  For the operators an int gene's bounds are widened by half a unit
(``[low - 0.5, high + 0.5]``) so that, after rounding, the end values are as likely as
the inner ones.

Cross-parameter constraints
---------------------------
A strategy states them in ``check_params`` (e.g. ``sma_cross``: ``fast < slow``).  The
genome knows nothing of them beyond that function:

1. **repair by swapping**: when ``check_params`` rejects a genome, swapping the values
   of two genes of the same kind (each value within the other's bounds) is tried, pairs
   in declaration order among the parameters the error message names (strategies name
   the parameters they reject, quoted: ``'fast'``; any pair if it names fewer than
   two), and the first swap that passes is kept.  This fixes the usual ordering
   constraints (``fast = 50, slow = 20`` becomes ``fast = 20, slow = 50``) with no
   knowledge of the strategy;
2. **penalty**: a genome still rejected is *infeasible*; its fitness is ``-inf``
   (:data:`INFEASIBLE`), so it loses every tournament and never enters the hall of fame
   unless nothing feasible exists.
3. random initial genomes are redrawn (up to :data:`MAX_DRAWS` times) until feasible.

Units: those of each parameter (see its ``doc``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deap import tools

from backend.strategies.base import ParamSpec, Strategy
from backend.strategies.registry import get_strategy

__all__ = ["INFEASIBLE", "MAX_DRAWS", "Gene", "Genome"]

#: Fitness of a genome the strategy rejects (after repair).
INFEASIBLE = float("-inf")

#: Random draws tried for one feasible initial genome before giving up.
MAX_DRAWS = 100


@dataclass(frozen=True)
class Gene:
    """One tunable parameter as a gene.

    Attributes
    ----------
    spec : ParamSpec
        The strategy's declaration (name, kind, inclusive bounds, default).
    """

    spec: ParamSpec

    @property
    def name(self) -> str:
        """The parameter name."""
        return self.spec.name

    @property
    def is_int(self) -> bool:
        """Integer-valued gene."""
        return self.spec.kind == "int"

    @property
    def op_low(self) -> float:
        """Lower bound seen by the variation operators (int: ``low - 0.5``)."""
        return self.spec.low - 0.5 if self.is_int else float(self.spec.low)

    @property
    def op_high(self) -> float:
        """Upper bound seen by the variation operators (int: ``high + 0.5``)."""
        return self.spec.high + 0.5 if self.is_int else float(self.spec.high)

    def fix(self, value: float) -> int | float:
        """``value`` rounded (int genes, half away from zero) and clipped to ``[low, high]``."""
        v = float(value)
        if not math.isfinite(v):
            v = float(self.spec.default)
        if self.is_int:
            r = int(math.floor(v + 0.5)) if v >= 0 else -int(math.floor(-v + 0.5))
            return int(min(max(r, math.ceil(self.spec.low)), math.floor(self.spec.high)))
        return float(min(max(v, self.spec.low), self.spec.high))

    def draw(self, rng: random.Random | Any = random) -> int | float:
        """A uniform random value within the bounds (``rng``: the ``random`` module by
        default, the generator DEAP uses)."""
        if self.is_int:
            return rng.randint(math.ceil(self.spec.low), math.floor(self.spec.high))
        return rng.uniform(self.spec.low, self.spec.high)


class Genome:
    """The genes of one strategy and the operators on them.

    Parameters
    ----------
    strategy : str or Strategy
        Registry name or instance; its ``params`` declaration defines the genes.
    fixed : mapping, optional
        Parameters held at a value (validated against their spec) instead of evolved.
    cx_eta, mut_eta : float
        Crowding degrees of the simulated binary crossover and the polynomial mutation
        (higher: children closer to their parents).
    indpb : float, optional
        Probability that the mutation changes each gene; default ``1 / n_genes``.

    Raises
    ------
    ValueError
        Unknown strategy or fixed parameter, a bad fixed value, or nothing left to evolve.
    """

    def __init__(
        self,
        strategy: str | Strategy,
        fixed: Mapping[str, Any] | None = None,
        *,
        cx_eta: float = 15.0,
        mut_eta: float = 20.0,
        indpb: float | None = None,
    ) -> None:
        self.strategy = get_strategy(strategy) if isinstance(strategy, str) else strategy
        self.fixed: dict[str, int | float] = {
            k: self.strategy.spec(k).cast(v) for k, v in (fixed or {}).items()}
        self.genes: tuple[Gene, ...] = tuple(
            Gene(p) for p in self.strategy.params
            if p.name not in self.fixed and p.low < p.high)
        #: Parameters neither evolved nor fixed by the caller (single-value range).
        self.constant: dict[str, int | float] = {
            p.name: self.strategy.defaults()[p.name] for p in self.strategy.params
            if p.name not in self.fixed and not p.low < p.high}
        if not self.genes:
            raise ValueError(f"strategy {self.strategy.name!r}: no parameter left to optimize")
        self.cx_eta = float(cx_eta)
        self.mut_eta = float(mut_eta)
        self.indpb = float(indpb) if indpb is not None else 1.0 / len(self.genes)
        self._low = [g.op_low for g in self.genes]
        self._high = [g.op_high for g in self.genes]

    def __len__(self) -> int:
        return len(self.genes)

    @property
    def names(self) -> list[str]:
        """Gene (parameter) names, in order."""
        return [g.name for g in self.genes]

    # ------------------------------------------------------------ encoding
    def decode(self, genes: Sequence[float]) -> dict[str, int | float]:
        """Every parameter of the strategy (genes, fixed and constant), declaration order."""
        vals = dict(zip(self.names, genes, strict=True))
        vals.update(self.fixed)
        vals.update(self.constant)
        return {p.name: vals[p.name] for p in self.strategy.params}

    def encode(self, params: Mapping[str, Any]) -> list[int | float]:
        """Genes of ``params`` (defaults for missing names), repaired."""
        full = {**self.strategy.defaults(), **params}
        return self.repair([full[g.name] for g in self.genes])

    def defaults(self) -> list[int | float]:
        """The strategy's default parameters as genes (repaired)."""
        return self.encode({})

    # ------------------------------------------------------------ constraints
    def problem(self, genes: Sequence[float]) -> str | None:
        """Why the strategy rejects these genes (its ``ValueError`` message), or ``None``."""
        try:
            self.strategy.resolve_params(self.decode(genes))
        except ValueError as exc:
            return str(exc)
        return None

    def feasible(self, genes: Sequence[float]) -> bool:
        """The strategy accepts these genes (``resolve_params`` does not raise)."""
        return self.problem(genes) is None

    def repair(self, genes: Sequence[float]) -> list[int | float]:
        """Round int genes, clip to bounds, then try same-kind swaps (module docstring).

        The swaps tried are between the genes the strategy's error message names
        (``resolve_params`` names the parameters it rejects, quoted), or between any
        two genes if it names fewer than two.  Returns a new list; it may still be
        infeasible (see :meth:`feasible`).
        """
        out = [g.fix(v) for g, v in zip(self.genes, genes, strict=True)]
        why = self.problem(out)
        if why is None:
            return out
        named = [i for i, g in enumerate(self.genes) if f"'{g.name}'" in why]
        idx = named if len(named) >= 2 else list(range(len(out)))
        for a, i in enumerate(idx):
            for j in idx[a + 1:]:
                gi, gj = self.genes[i], self.genes[j]
                if gi.is_int != gj.is_int:
                    continue
                x, y = out[i], out[j]
                if not (gi.spec.low <= y <= gi.spec.high and gj.spec.low <= x <= gj.spec.high):
                    continue
                cand = list(out)
                cand[i], cand[j] = y, x
                if self.feasible(cand):
                    return cand
        return out

    # ------------------------------------------------------------ operators
    def random(self, rng: random.Random | Any = random) -> list[int | float]:
        """A random feasible genome (uniform per gene, repaired, redrawn while
        infeasible; the last draw is returned if none is feasible in :data:`MAX_DRAWS`)."""
        genes: list[int | float] = []
        for _ in range(MAX_DRAWS):
            genes = self.repair([g.draw(rng) for g in self.genes])
            if self.feasible(genes):
                break
        return genes

    def mate(self, a: list[Any], b: list[Any]) -> tuple[list[Any], list[Any]]:
        """Bounded simulated binary crossover in place, then :meth:`repair` in place."""
        tools.cxSimulatedBinaryBounded(a, b, self.cx_eta, self._low, self._high)
        a[:] = self.repair(a)
        b[:] = self.repair(b)
        return a, b

    def mutate(self, a: list[Any]) -> tuple[list[Any]]:
        """Bounded polynomial mutation in place, then :meth:`repair` in place."""
        tools.mutPolynomialBounded(a, self.mut_eta, self._low, self._high, self.indpb)
        a[:] = self.repair(a)
        return (a,)
