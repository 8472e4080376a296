"""Read models of the control plane: database rows and Redis state as API bodies.

Pure functions over :class:`~backend.persistence.Store` rows and the execution
agent's last :class:`~backend.messages.PortfolioMarked` (plus one async Redis reader
for channel statistics), so that the REST handlers stay thin and the dashboard sees
exactly what the API validates.  Units as in :mod:`backend.rest.models`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from backend import channels
from backend.bus import STATS_KEY
from backend.bus import as_text as _s
from backend.mesh.hotreload import parse_state
from backend.mesh.topology import strategy_id
from backend.messages import PortfolioMarked, now_ns
from backend.performance.report import extract_trades
from backend.rest.models import (
    AuditView,
    ChannelStats,
    DecisionView,
    EquityPoint,
    FillView,
    GroupStats,
    OrderView,
    ParamSpecView,
    PendingParamsView,
    PnL,
    Positions,
    PositionView,
    SignalView,
    StrategiesView,
    StrategyAgentView,
    StrategyInfo,
    StreamStats,
    SymbolPnL,
    TradeList,
)
from backend.strategies.build import build_strategy
from backend.strategies.registry import STRATEGIES

Row = Mapping[str, Any]


def _fields(model: type, row: Row) -> dict[str, Any]:
    return {k: row.get(k) for k in model.model_fields}  # type: ignore[attr-defined]


def order_views(rows: Iterable[Row]) -> list[OrderView]:
    """Order rows (``Store.orders``) as :class:`OrderView`."""
    return [OrderView(**_fields(OrderView, r)) for r in rows]


def fill_views(rows: Iterable[Row]) -> list[FillView]:
    """Fill rows (``Store.fills``) as :class:`FillView`."""
    return [FillView(**_fields(FillView, r)) for r in rows]


def audit_views(rows: Iterable[Row]) -> list[AuditView]:
    """Audit rows (``Store.audit``) as :class:`AuditView`."""
    return [AuditView(**_fields(AuditView, r)) for r in rows]


def trade_list(fill_rows: Sequence[Row], symbol: str | None = None) -> TradeList:
    """Round trips from fills (closed ones by exit time, then the open ones)."""
    closed, still_open = extract_trades(fill_rows)
    if symbol is not None:
        closed = [t for t in closed if t.symbol == symbol]
        still_open = [t for t in still_open if t.symbol == symbol]
    return TradeList(closed=closed, open=still_open)


def signal_views(
    signal_rows: Sequence[Row], decision_rows: Iterable[Row], order_rows: Iterable[Row],
) -> list[SignalView]:
    """Signals with their compliance and risk decisions and the order they became.

    ``outcome`` is ``rejected`` as soon as a stage said no, ``ordered`` when risk
    approved (the order's client order id attached), else ``pending``.
    """
    by_signal: dict[str, dict[str, Row]] = {}
    for d in decision_rows:
        by_signal.setdefault(d["signal_id"], {})[d["stage"]] = d
    coid = {o["signal_id"]: o["client_order_id"] for o in order_rows}
    out = []
    for s in signal_rows:
        ds = by_signal.get(s["id"], {})
        comp = DecisionView(**_fields(DecisionView, ds["compliance"])) if "compliance" in ds \
            else None
        risk = DecisionView(**_fields(DecisionView, ds["risk"])) if "risk" in ds else None
        rejected_by = None
        if comp is not None and not comp.approved:
            rejected_by = "compliance"
        elif risk is not None and not risk.approved:
            rejected_by = "risk"
        if rejected_by:
            outcome = "rejected"
        elif risk is not None and risk.approved:
            outcome = "ordered"
        else:
            outcome = "pending"
        out.append(SignalView(
            **{k: s.get(k) for k in (
                "id", "ts", "symbol", "side", "confidence", "entry_price", "stop_loss",
                "take_profit", "strategy", "reason", "bar_seq", "bar_time")},
            compliance=comp, risk=risk, outcome=outcome, rejected_by=rejected_by,
            client_order_id=coid.get(s["id"]), regime=s.get("regime") or "",
        ))
    return out


def equity_points(curve: pd.DataFrame, limit: int | None = None) -> list[EquityPoint]:
    """Equity marks (``Store.equity_curve``) with the drawdown from the running peak.

    ``limit`` keeps the last N points (the drawdown still uses the whole curve's peak).
    """
    if curve.empty:
        return []
    eq = curve["equity"].to_numpy(dtype=float)
    peak = np.maximum.accumulate(eq)
    dd = np.where(peak > 0, (peak - eq) / np.where(peak > 0, peak, 1.0), 0.0)
    frame = curve.assign(drawdown=np.maximum(dd, 0.0))
    if limit is not None:
        frame = frame.tail(limit)
    return [
        EquityPoint(bar_seq=int(r.bar_seq), bar_time=int(r.bar_time), equity=float(r.equity),
                    cash=float(r.cash), exposure=float(r.exposure), drawdown=float(r.drawdown))
        for r in frame.itertuples(index=False)
    ]


def positions_view(mark: PortfolioMarked | None, halted: bool) -> Positions:
    """Open positions of the last mark, with notional and unrealised P&L."""
    if mark is None:
        return Positions(halted=halted, positions=[])
    rows = [
        PositionView(
            symbol=sym, quantity=p.quantity, avg_price=p.avg_price, mark=p.mark,
            notional=abs(p.quantity * p.mark),
            unrealized_pnl=p.quantity * (p.mark - p.avg_price),
        )
        for sym, p in sorted(mark.positions.items()) if p.quantity
    ]
    return Positions(
        bar_seq=mark.bar_seq, bar_time=mark.bar_time, cash=mark.cash, equity=mark.equity,
        exposure=mark.exposure, halted=halted, positions=rows,
    )


def pnl_view(fill_rows: Sequence[Row], mark: PortfolioMarked | None, initial_cash: float) -> PnL:
    """Realised P&L (closed trades, net of their fees), unrealised (open positions at
    the last mark, before exit fees), fees paid on all fills, per symbol and in total."""
    closed, _ = extract_trades(fill_rows)
    by: dict[str, SymbolPnL] = {}
    for t in closed:
        s = by.setdefault(t.symbol, SymbolPnL())
        s.realized += t.net_pnl
        s.trades += 1
    for f in fill_rows:
        by.setdefault(f["symbol"], SymbolPnL()).fees += float(f["fee"])
    if mark is not None:
        for sym, p in mark.positions.items():
            if p.quantity:
                by.setdefault(sym, SymbolPnL()).unrealized = p.quantity * (p.mark - p.avg_price)
    equity = mark.equity if mark is not None else None
    return PnL(
        initial_cash=initial_cash, equity=equity,
        total=None if equity is None else equity - initial_cash,
        total_return=None if equity is None else equity / initial_cash - 1,
        realized=sum(s.realized for s in by.values()),
        unrealized=sum(s.unrealized for s in by.values()),
        fees=sum(s.fees for s in by.values()), by_symbol=dict(sorted(by.items())),
    )


async def read_portfolio_mark(redis: Redis) -> PortfolioMarked | None:
    """The execution agent's last mark (``execution:portfolio``), None before any bar."""
    raw = await redis.get(channels.PORTFOLIO_KEY)
    return PortfolioMarked.model_validate_json(raw) if raw else None


async def channel_stats(redis: Redis, streams: Sequence[str] = channels.STREAMS) -> ChannelStats:
    """Messages published per channel (``stats:messages``), stream lengths and, per
    consumer group, consumers, pending entries (read, not acked) and lag (not read)."""
    counts = {_s(k): int(v) for k, v in (await redis.hgetall(STATS_KEY)).items()}
    out = []
    for stream in streams:
        try:
            length = int(await redis.xlen(stream))
            groups = await redis.xinfo_groups(stream) if length or await redis.exists(stream) \
                else []
        except ResponseError:
            length, groups = 0, []
        out.append(StreamStats(stream=stream, length=length, groups=[
            GroupStats(
                group=_s(g["name"]), consumers=int(g["consumers"]), pending=int(g["pending"]),
                lag=None if g.get("lag") is None else int(g["lag"]),
                last_delivered_id=_s(g["last-delivered-id"]),
            ) for g in groups
        ]))
    return ChannelStats(ts=now_ns(), messages=dict(sorted(counts.items())), streams=out)


def strategies_view(settings: Any, states: Mapping[str, bytes | str | None]) -> StrategiesView:
    """The strategy registry and, per configured symbol, what its strategy agent runs.

    ``states`` maps each symbol to its agent's state blob (``agent:state:strategy:<SYM>``,
    ``None`` if it never wrote one: then the configured strategy, ``reported=False``).
    """
    registry = [StrategyInfo(name=name, params=[
        ParamSpecView(name=p.name, kind=p.kind, low=p.low, high=p.high, default=p.default,
                      doc=p.doc) for p in cls.params]) for name, cls in STRATEGIES.items()]
    agents = []
    for sym in settings.symbols:
        cfg = settings.strategy_for(sym)
        configured = build_strategy(cfg).resolve_params(cfg.params)
        state = parse_state(states.get(sym))
        base = {"agent_id": strategy_id(sym), "symbol": sym,
                "configured_strategy": cfg.name, "configured_params": configured}
        if state is None:
            agents.append(StrategyAgentView(**base, strategy=cfg.name, params=configured,
                                            source="config", reported=False))
            continue
        a, p = state.active, state.pending
        agents.append(StrategyAgentView(
            **base, strategy=a.strategy, params=a.params, source=a.source,
            since_seq=a.since_seq, run_id=a.run_id, actor=a.actor, updated_ts=a.updated_ts,
            pending=None if p is None else PendingParamsView.model_validate(p.model_dump())))
    return StrategiesView(registry=registry, agents=agents)
