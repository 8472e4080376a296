"""A private random generator for DEAP's operators.

DEAP's selection, crossover, mutation and ``varAnd`` draw from the ``random`` module's
shared generator.  Seeding that one is not enough for a reproducible run: anything else
in the process that draws from it meanwhile (Dask's scheduler and workers running as
threads of this process, a library, another task) would shift the GA's sequence.  So a
run gives DEAP its own :class:`random.Random` (``random.Random(seed)``): while
:func:`deap_random` is active, the ``random`` name inside DEAP's modules is that
generator, and the global ``random`` module is left alone.

Runs that use it in one process take turns (a lock), since DEAP's modules are shared.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from deap import algorithms
from deap.tools import crossover, mutation, selection

__all__ = ["DEAP_MODULES", "deap_random"]

#: The DEAP modules whose operators the GA uses (each does ``import random``).
DEAP_MODULES: tuple[ModuleType, ...] = (algorithms, crossover, mutation, selection)

_LOCK = threading.RLock()


@contextmanager
def deap_random(rng: random.Random) -> Iterator[random.Random]:
    """Make DEAP's operators draw from ``rng`` inside the ``with`` block.

    Parameters
    ----------
    rng : random.Random
        E.g. ``random.Random(seed)``.

    Yields
    ------
    random.Random
        ``rng``.
    """
    with _LOCK:
        saved = [m.random for m in DEAP_MODULES]
        for m in DEAP_MODULES:
            m.random = rng  # type: ignore[attr-defined]
        try:
            yield rng
        finally:
            for m, r in zip(DEAP_MODULES, saved, strict=True):
                m.random = r  # type: ignore[attr-defined]
