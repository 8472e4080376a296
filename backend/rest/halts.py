"""REST bodies of the per-symbol halts (``/api/halt/symbols``; see
:mod:`backend.mesh.symbol_halt`).  Times in ns UTC."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from backend.rest.base import ApiModel, RequestModel

__all__ = ["SymbolHaltView", "SymbolResolveRequest", "SymbolResolveResult"]


class SymbolHaltView(ApiModel):
    """One halted symbol: why (``order_unknown``, ``position_mismatch``), by whom, since
    when, the order concerned, and whether Redis holds it (``latched``) or only the
    database does (Redis lost it; the orchestrator puts it back)."""

    symbol: str
    kind: str
    reason: str
    by: str
    client_order_id: str = ""
    ts: int
    latched: bool = True


class SymbolResolveRequest(RequestModel):
    """A person's resolution of a halted symbol (audited).

    ``not_placed``: client order ids left UNKNOWN that the person checked are not at the
    venue; ``adopt_venue_position``: the books take the venue's position.
    """

    reason: str = Field(min_length=3, max_length=500)
    adopt_venue_position: bool = False
    not_placed: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=100)
    wait_s: float = Field(default=10.0, ge=0, le=120)


class SymbolResolveResult(ApiModel):
    """What execution did: ``resumed`` (the halt is cleared) or not, and why
    (``message``); ``confirmed`` false when execution did not answer within ``wait_s``
    (the command stays queued on ``orders`` and runs when execution is up)."""

    symbol: str
    command_id: str
    confirmed: bool
    resumed: bool
    message: str
