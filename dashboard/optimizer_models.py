"""Provisional body of a future ``GET /api/optimizer/runs`` (the control plane has no
optimizer endpoint yet).

When the optimizer issue adds the endpoint, its models belong in
:mod:`backend.api_models` and replace these; unknown fields are ignored meanwhile, so a
richer body still parses.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class GenerationStats(BaseModel):
    """Fitness of one GA generation (provisional: no optimizer API exists yet)."""

    model_config = ConfigDict(extra="ignore")

    generation: int
    best: float
    mean: float


class OptimizerRun(BaseModel):
    """One optimizer run as a future ``GET /api/optimizer/runs`` may describe it.

    Provisional: when the optimizer issue lands, its body belongs in
    :mod:`backend.api_models` and replaces this one.  Unknown fields are ignored.
    """

    model_config = ConfigDict(extra="ignore")

    run_id: str
    strategy: str = ""
    symbol: str | None = None
    status: str = ""
    started_ts: int | None = None
    finished_ts: int | None = None
    generations: list[GenerationStats] = Field(default_factory=list)
    best_params: dict[str, Any] = Field(default_factory=dict)
    in_sample: float | None = None
    out_of_sample: float | None = None
    applied: bool = False
