"""The control plane's logic: what every REST endpoint does, independent of HTTP.

:class:`ControlPlane` wraps one running mesh (its :class:`Supervisor`, Redis and
database) and returns the typed bodies of :mod:`backend.rest.models`; the optimizer's
endpoints are :class:`~orchestrator.optimizer_control.OptimizerControl` (``.optimizer``).
Problems are raised as :class:`ControlError` subclasses (:mod:`orchestrator.errors`)
carrying the HTTP status the API maps them to (404 unknown agent/symbol/run, 409
conflict, 422 unusable input, 503 Redis unreachable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import orjson
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from backend import channels
from backend.evaluation.build import evaluate
from backend.marketdata.history import load_history
from backend.mesh.halt import read_halt
from backend.mesh.topology import strategy_id
from backend.messages import AgentHeartbeat, OrderStatus, PortfolioMarked, now_ns
from backend.persistence import Store
from backend.rest.halts import SymbolHaltView, SymbolResolveRequest, SymbolResolveResult
from backend.rest.models import (
    AgentAction,
    AgentInfo,
    AgentList,
    AuditView,
    BreakerState,
    ChannelStats,
    EmergencyStopResult,
    EquityPoint,
    EvaluationReport,
    FillView,
    Health,
    OrderView,
    PnL,
    Positions,
    Ready,
    ResetResult,
    RiskFigures,
    SignalView,
    TradeList,
)
from backend.risk import var_limit
from backend.risk.analytics import risk_analytics
from backend.risk.rules import RiskState, daily_drawdown
from backend.settings import Settings
from orchestrator import killswitch, symbol_halts, views
from orchestrator.errors import (  # noqa: F401 - ControlError and friends, re-exported
    Conflict,
    ControlError,
    Invalid,
    NotFound,
    Unavailable,
    resolve_symbol,
)
from orchestrator.optimizer_control import OptimizerControl
from orchestrator.supervisor import Managed, Supervisor

log = logging.getLogger("orchestrator.control")


class ControlPlane:
    """Operations on one running mesh.

    Parameters
    ----------
    settings
        The mesh's resolved settings (Redis and database URLs filled in).
    supervisor
        The supervisor that runs the agents.
    store
        The mesh's database.
    redis
        The mesh's Redis (a new client for ``settings.redis_url`` by default).
    """

    def __init__(
        self, settings: Settings, supervisor: Supervisor, store: Store,
        redis: Redis | None = None,
    ) -> None:
        self.settings = settings
        self.supervisor = supervisor
        self.store = store
        self.redis = redis if redis is not None else Redis.from_url(
            settings.redis_url, socket_timeout=10, socket_connect_timeout=3)
        self.started_mono = time.monotonic()
        #: Optimizer runs, proposals, hot reload (``/api/optimizer``, ``/api/strategies``).
        self.optimizer = OptimizerControl(settings, self.redis, store)

    async def close(self) -> None:
        """Release the Redis connection pool."""
        with contextlib.suppress(Exception):
            await self.redis.aclose()

    async def _db(self, fn, *args, **kwargs):  # noqa: ANN001, ANN202 - thin to_thread
        return await asyncio.to_thread(fn, *args, **kwargs)

    # ------------------------------------------------------------------ agents
    def _info(self, m: Managed, hb: AgentHeartbeat | None, now: int) -> AgentInfo:
        ttl = self.settings.orchestrator.heartbeat_ttl_s
        pid = m.pid
        if self.supervisor.external:  # only heartbeats to go by
            return self._external_info(m, hb, now, ttl)
        if m.stopped_by_operator:
            state = "stopped" if pid is None else "stopping"
        elif m.gave_up:
            state = "given_up"
        elif m.next_start_mono is not None:
            state = "restarting"
        elif hb is not None and pid is not None and hb.pid == pid:
            state = hb.state.value
        else:
            state = "no_heartbeat" if pid is not None else "restarting"
        age = None if hb is None else max(0.0, (now - hb.ts) / 1e9)
        current = hb is not None and hb.pid == pid
        return AgentInfo(
            agent_id=m.spec.agent_id, role=m.spec.role, symbol=m.spec.symbol, state=state,
            desired="stopped" if m.stopped_by_operator else "running", pid=pid,
            uptime_s=(time.monotonic() - m.started_mono) if pid is not None else None,
            restarts=m.total_restarts, heartbeat_age_s=age,
            stale=pid is not None and (age is None or age > ttl),
            messages_in=hb.messages_in if current else 0,
            messages_out=hb.messages_out if current else 0,
            errors=hb.errors if current else 0,
            dead_letters=hb.dead_letters if current else 0,
            last_error=(hb.last_error if hb is not None and hb.last_error else m.last_failure),
        )

    @staticmethod
    def _external_info(m: Managed, hb: AgentHeartbeat | None, now: int, ttl: float) -> AgentInfo:
        age = None if hb is None else max(0.0, (now - hb.ts) / 1e9)
        return AgentInfo(
            agent_id=m.spec.agent_id, role=m.spec.role, symbol=m.spec.symbol,
            state=hb.state.value if hb is not None else "no_heartbeat", desired="running",
            pid=hb.pid if hb is not None else None,
            uptime_s=max(0.0, (now - hb.started_at) / 1e9) if hb is not None else None,
            restarts=0, heartbeat_age_s=age, stale=age is None or age > ttl,
            messages_in=hb.messages_in if hb else 0, messages_out=hb.messages_out if hb else 0,
            errors=hb.errors if hb else 0, dead_letters=hb.dead_letters if hb else 0,
            last_error=hb.last_error if hb else "",
        )

    async def agents(self) -> AgentList:
        """Every agent with state, pid, uptime, restarts, heartbeat age, counters."""
        beats = await self.supervisor.health()
        now = now_ns()
        return AgentList(ts=now, agents=[
            self._info(m, beats.get(a), now) for a, m in self.supervisor.agents.items()
        ])

    def _managed(self, agent_id: str, operate: bool = False) -> Managed:
        try:
            m = self.supervisor.get(agent_id)
        except KeyError:
            known = ", ".join(self.supervisor.agents)
            raise NotFound(f"unknown agent {agent_id!r}; agents: {known}") from None
        if operate and self.supervisor.external:
            raise Conflict(
                f"agents are run externally (docker compose): restart {agent_id} there, "
                "e.g. `docker compose restart <service>`; this orchestrator only watches"
            )
        return m

    async def agent(self, agent_id: str) -> AgentInfo:
        """One agent (:class:`NotFound` if there is no such agent)."""
        m = self._managed(agent_id)
        beats = await self.supervisor.health()
        return self._info(m, beats.get(agent_id), now_ns())

    async def start(self, agent_id: str, action: str = "start") -> AgentAction:
        """Start a stopped agent (:class:`Conflict` if it is running)."""
        m = self._managed(agent_id, operate=True)
        if m.alive and not m.stopped_by_operator:
            raise Conflict(f"agent {agent_id} is already running (pid {m.pid})")
        if m.alive:  # still stopping: finish that first
            await self.supervisor.stop_agent(agent_id)
        await self.supervisor.start_agent(agent_id)
        return AgentAction(agent_id=agent_id, action=action, ok=True, pid=m.pid,
                           restarts=m.total_restarts, message=f"{agent_id} started")

    async def stop(self, agent_id: str) -> AgentAction:
        """Stop an agent and keep it stopped (:class:`Conflict` if already stopped)."""
        m = self._managed(agent_id, operate=True)
        if m.stopped_by_operator and not m.alive:
            raise Conflict(f"agent {agent_id} is already stopped")
        code = await self.supervisor.stop_agent(agent_id)
        return AgentAction(agent_id=agent_id, action="stop", ok=True, pid=None,
                           restarts=m.total_restarts,
                           message=f"{agent_id} stopped (exit code {code})")

    async def restart(self, agent_id: str) -> AgentAction:
        """Stop and start an agent now (works on stopped and given-up agents too)."""
        m = self._managed(agent_id, operate=True)
        code = await self.supervisor.restart_agent(agent_id)
        return AgentAction(agent_id=agent_id, action="restart", ok=True, pid=m.pid,
                           restarts=m.total_restarts,
                           message=f"{agent_id} restarted (old exit code {code})")

    def strategy_agent_id(self, symbol: str) -> str:
        """Agent id of the strategy agent of ``symbol`` (any accepted form)."""
        sym = resolve_symbol(symbol, self.settings.symbols)
        return strategy_id(sym)

    async def create_strategy(self, symbol: str) -> AgentAction:
        """Start the strategy agent of ``symbol`` (404 unknown, 409 already running)."""
        agent_id = self.strategy_agent_id(symbol)
        m = self._managed(agent_id, operate=True)
        if m.alive and not m.stopped_by_operator:
            raise Conflict(f"symbol {m.spec.symbol} already has a running strategy agent "
                           f"({agent_id}, pid {m.pid})")
        return await self.start(agent_id, action="create")

    # ------------------------------------------------------------------ trading
    async def _mark(self) -> PortfolioMarked | None:
        return await self._redis(views.read_portfolio_mark(self.redis))

    async def _redis(self, coro):  # noqa: ANN001, ANN202
        try:
            return await coro
        except (RedisError, OSError) as exc:
            raise Unavailable(f"Redis is unreachable: {type(exc).__name__}") from None

    async def positions(self) -> Positions:
        """Open positions at the last mark."""
        mark = await self._mark()
        halted = await self._redis(read_halt(self.redis)) is not None
        return views.positions_view(mark, halted)

    def _symbol_or_none(self, symbol: str | None) -> str | None:
        return None if symbol is None else resolve_symbol(symbol, self.settings.symbols)

    async def orders(
        self, status: OrderStatus | None, symbol: str | None, limit: int
    ) -> list[OrderView]:
        """The last ``limit`` orders, optionally by status and symbol."""
        rows = await self._db(self.store.orders, status, self._symbol_or_none(symbol), limit)
        return views.order_views(rows)

    async def fills(self, symbol: str | None, limit: int) -> list[FillView]:
        """The last ``limit`` fills, optionally of one symbol."""
        return views.fill_views(
            await self._db(self.store.fills, self._symbol_or_none(symbol), limit))

    async def trades(self, symbol: str | None) -> TradeList:
        """Closed and open round trips."""
        sym = self._symbol_or_none(symbol)
        return views.trade_list(await self._db(self.store.fills), sym)

    async def signals(self, symbol: str | None, limit: int) -> list[SignalView]:
        """The last ``limit`` signals with their decisions and resulting order."""
        sigs = await self._db(self.store.signals, self._symbol_or_none(symbol), limit)
        ids = [s["id"] for s in sigs]
        decs = await self._db(self.store.decisions_for, ids)
        ords = await self._db(self.store.orders_for, ids)
        return views.signal_views(sigs, decs, ords)

    async def equity(self, limit: int | None) -> list[EquityPoint]:
        """Equity curve with drawdown (last ``limit`` points)."""
        return views.equity_points(await self._db(self.store.equity_curve), limit)

    async def pnl(self) -> PnL:
        """Realised / unrealised P&L and fees, per symbol and total."""
        fills = await self._db(self.store.fills)
        return views.pnl_view(fills, await self._mark(), self.settings.paper.initial_cash)

    # ------------------------------------------------------------------ risk
    async def breaker(self) -> BreakerState:
        """The halt latch and the daily drawdown against the breaker's limit."""
        halt = await self._redis(read_halt(self.redis))
        mark = await self._mark()
        limit = self.settings.risk.daily_drawdown_limit
        return BreakerState(
            halted=halt is not None, kind=halt.kind if halt else "none",
            by=halt.by if halt else None, reason=halt.reason if halt else None,
            since=halt.ts if halt else None,
            daily_drawdown=daily_drawdown(mark.equity, mark.day_start_equity) if mark else None,
            limit=limit, equity=mark.equity if mark else None,
            day_start_equity=mark.day_start_equity if mark else None,
        )

    async def reset(self, reason: str, actor: str) -> ResetResult:
        """Clear the halt latch (audited)."""
        return await self._redis(
            killswitch.reset_halt(self.redis, self.store, reason=reason, actor=actor))

    async def risk(self) -> RiskFigures:
        """Exposure now; VaR and CVaR of the equity curve's bar returns and of the
        positions (portfolio and per symbol; historical, parametric, Monte Carlo);
        portfolio metrics; the VaR limit and the risk agent's alert level; the equity
        forecast band (:func:`backend.risk.analytics.risk_analytics`)."""
        curve = await self._db(self.store.equity_curve)
        # One point per bar time (every symbol's bar gets a mark; same-time marks would
        # add near-zero returns and shrink the figures).
        by_time = None if curve.empty else curve.groupby("bar_time", sort=True)["equity"].last()
        times = [] if by_time is None else by_time.index.to_numpy(dtype="int64")
        eq = [] if by_time is None else by_time.to_numpy(dtype=float)
        cfg = self.settings.risk
        hist, _ = await self._redis(load_history(
            self.redis, var_limit.history_len(cfg), self.settings.symbols))
        mark = await self._mark()
        agent = await self._risk_agent_state()
        return await asyncio.to_thread(risk_analytics, times, eq, mark, hist.series(), cfg,
                                       self.settings.symbols, agent)

    async def _risk_agent_state(self) -> RiskState | None:
        """The risk agent's durable rule state (``agent:state:risk``), if readable."""
        raw = await self._redis(self.redis.get(channels.state_key("risk")))
        if not raw:
            return None
        try:
            return RiskState.model_validate(orjson.loads(raw)["state"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValidationError):
            return None

    async def report(self, since: int | None) -> EvaluationReport:
        """The self-evaluation report from ``since`` (ns UTC; None = everything)."""
        return await self._db(evaluate, self.store, self.settings, since)

    async def emergency_stop(self, reason: str, actor: str, wait_s: float) -> EmergencyStopResult:
        """The kill switch (see :mod:`orchestrator.killswitch`)."""
        return await self._redis(killswitch.emergency_stop(
            self.redis, self.store, reason=reason, actor=actor, wait_s=wait_s))

    # ------------------------------------------------------------------ plumbing
    async def audit(self, limit: int, action: str | None) -> list[AuditView]:
        """The last ``limit`` audit entries (optionally of one action)."""
        return views.audit_views(await self._db(self.store.audit, None, limit, action))

    async def channels(self) -> ChannelStats:
        """Messages per channel, stream lengths, pending entries per group."""
        return await self._redis(views.channel_stats(self.redis))

    def health(self) -> Health:
        """Liveness."""
        return Health(ts=now_ns(), uptime_s=time.monotonic() - self.started_mono)

    async def ready(self) -> Ready:
        """Redis reachable and every agent that should run reports ``running``."""
        try:
            redis_ok = bool(await self.redis.ping())
        except (RedisError, OSError):
            redis_ok = False
        listing = await self.agents() if redis_ok else None
        expected = [a for a in (listing.agents if listing else []) if a.desired == "running"]
        down = [a.agent_id for a in expected if a.state != "running"]
        if not redis_ok:
            down = [a for a, m in self.supervisor.agents.items() if not m.stopped_by_operator]
        return Ready(
            ready=redis_ok and not down, redis=redis_ok,
            agents_running=len(expected) - len(down) if redis_ok else 0,
            agents_expected=len(down) if not redis_ok else len(expected), not_running=down,
        )


    async def symbol_halts(self) -> list[SymbolHaltView]:
        """Every halted symbol (see :mod:`orchestrator.symbol_halts`)."""
        return await self._redis(symbol_halts.list_symbol_halts(self.redis, self.store))

    async def resolve_symbol(self, symbol: str, body: SymbolResolveRequest, actor: str
                             ) -> SymbolResolveResult:
        """Send a person's resolution of ``symbol`` (any accepted form; 404 unknown) to
        execution and wait for its answer."""
        return await self._redis(symbol_halts.resolve_symbol(
            self.redis, self.store, symbol=resolve_symbol(symbol, self.settings.symbols),
            reason=body.reason, actor=actor, adopt_venue_position=body.adopt_venue_position,
            not_placed=body.not_placed, wait_s=body.wait_s))
