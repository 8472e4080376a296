"""Per-symbol halts: list them, and a person's resolution (``/api/halt/symbols``)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from backend.rest.halts import SymbolHaltView, SymbolResolveRequest, SymbolResolveResult
from orchestrator.api.deps import READ, Control, actor, errors, reader, writer

__all__ = ["router"]

router = APIRouter()


@router.get("/api/halt/symbols", response_model=list[SymbolHaltView], dependencies=reader,
            responses=READ, tags=["risk"])
async def halted_symbols(control: Control) -> list[SymbolHaltView]:
    """Symbols halted until a person resolves them (an order whose outcome stayed
    unknown, a position the venue holds differently)."""
    return await control.symbol_halts()


@router.post("/api/halt/symbols/{symbol:path}/resolve", response_model=SymbolResolveResult,
             dependencies=writer, responses=errors(400, 401, 404, 503), tags=["risk"])
async def resolve_symbol(control: Control, symbol: str, request: Request,
                         body: SymbolResolveRequest) -> SymbolResolveResult:
    """A person resolves a halted symbol (audited): orders confirmed not at the venue,
    or the venue's position adopted; execution clears the halt when nothing is left."""
    return await control.resolve_symbol(symbol, body, actor(request))
