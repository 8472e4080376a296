"""The trading records: orders, fills, round-trip trades, signals, equity, P&L."""

from __future__ import annotations

from fastapi import APIRouter

from backend.messages import OrderStatus
from backend.rest.models import EquityPoint, FillView, OrderView, PnL, SignalView, TradeList
from orchestrator.api.deps import READ, Control, Limit, SymbolQ, errors, reader

__all__ = ["router"]

router = APIRouter()


@router.get("/api/orders", response_model=list[OrderView], dependencies=reader,
            responses=errors(401, 404, 503), tags=["trading"])
async def orders(
    control: Control,
    status: OrderStatus | None = None, symbol: SymbolQ = None, limit: Limit = 200,
) -> list[OrderView]:
    """Orders, newest last, optionally filtered by status and symbol."""
    return await control.orders(status, symbol, limit)


@router.get("/api/fills", response_model=list[FillView], dependencies=reader,
            responses=errors(401, 404, 503), tags=["trading"])
async def fills(
    control: Control, symbol: SymbolQ = None, limit: Limit = 200,
) -> list[FillView]:
    """Fills, newest last."""
    return await control.fills(symbol, limit)


@router.get("/api/trades", response_model=TradeList, dependencies=reader,
            responses=errors(401, 404, 503), tags=["trading"])
async def trades(control: Control, symbol: SymbolQ = None) -> TradeList:
    """Round trips built from the fills (closed and still open)."""
    return await control.trades(symbol)


@router.get("/api/signals", response_model=list[SignalView], dependencies=reader,
            responses=errors(401, 404, 503), tags=["trading"])
async def signals(
    control: Control, symbol: SymbolQ = None, limit: Limit = 100,
) -> list[SignalView]:
    """Signals with the compliance and risk decision (rule, reason) and the order."""
    return await control.signals(symbol, limit)


@router.get("/api/equity", response_model=list[EquityPoint], dependencies=reader,
            responses=READ, tags=["trading"])
async def equity(control: Control, limit: Limit = 2000) -> list[EquityPoint]:
    """Equity curve (per bar) with the drawdown from the running peak."""
    return await control.equity(limit)


@router.get("/api/pnl", response_model=PnL, dependencies=reader, responses=READ,
            tags=["trading"])
async def pnl(control: Control) -> PnL:
    """Realised and unrealised P&L and fees, per symbol and in total."""
    return await control.pnl()
