"""The optimizer's objectives and sizings by name: no pydantic, no numeric library, so that
the command line's help lists them without loading the optimizer."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["GA_OBJECTIVES", "SIZINGS", "Objective", "Sizing"]

#: An objective the optimizer maximises.
Objective = Literal["sharpe", "sortino", "calmar", "return_dd"]

#: A position sizing the optimizer can score with (``all-in``: the whole equity on each
#: crossing; ``risk``: the mesh's own risk sizing, compliance and stops).
Sizing = Literal["all-in", "risk"]

#: Objectives the optimizer offers (all maximised).
GA_OBJECTIVES: tuple[str, ...] = get_args(Objective)

#: Position sizings the optimizer can score with.
SIZINGS: tuple[str, ...] = get_args(Sizing)
