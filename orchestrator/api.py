"""The orchestrator's REST control plane (FastAPI).

Routes are thin: each validates its input, calls :class:`orchestrator.control.ControlPlane`
and returns a model of :mod:`backend.rest.models`.  Errors are JSON ``{"detail": ...}``
with the right 4xx (401 token, 404 unknown agent/symbol, 409 conflict, 422 bad input)
or 503 (Redis unreachable / not ready).

Two families of paths:

* the fixed paths existing scripts call (``/api/agents/create?symbol=``,
  ``/api/agents/status``, ``/api/agents/{symbol}/status``, ``/api/agents/stop/{symbol}``,
  ``/api/agents/restart/{symbol}``, ``/api/positions``, ``/api/emergency-stop``), where a
  symbol may be ``ETH/BTC`` (URL-encoded), ``ETHBTC``, ``ETH-BTC`` or ``ETH_BTC``;
* a resource-style API for every agent and every trading record, the optimizer's runs
  (request, inspect, apply: :mod:`orchestrator.optimizer_control`) and the strategies.

Authentication: see :mod:`orchestrator.auth`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backend.mesh.model_views import models_view
from backend.messages import OrderStatus
from backend.rest.halts import SymbolHaltView, SymbolResolveRequest, SymbolResolveResult
from backend.rest.models import (
    AgentAction,
    AgentInfo,
    AgentList,
    ApplyRequest,
    ApplyResult,
    AuditView,
    BreakerState,
    ChannelStats,
    EmergencyStopRequest,
    EmergencyStopResult,
    EquityPoint,
    ErrorBody,
    EvaluationReport,
    FillView,
    Health,
    ModelsView,
    OptimizerRunAccepted,
    OptimizerRunDetail,
    OptimizerRunRequest,
    OptimizerRunView,
    OrderView,
    PnL,
    Positions,
    Ready,
    ResetRequest,
    ResetResult,
    RiskFigures,
    SignalView,
    StrategiesView,
    TradeList,
)
from orchestrator.auth import token_matches
from orchestrator.control import ControlError, ControlPlane

_bearer = HTTPBearer(auto_error=False, description="TRADINGMESH_API_TOKEN (or var/api_token)")
Creds = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


class AuthError(Exception):
    """401 with a message that never contains the token."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"model": ErrorBody} for c in (*codes, 422)}


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


READ = _errors(401, 503)
WRITE = _errors(400, 401, 503)  # 400: a body FastAPI cannot decode (not UTF-8)
Limit = Annotated[int, Query(ge=1, le=10_000, description="Return the last N rows.")]
RunId = Annotated[str, Path(min_length=1, max_length=128)]
SymbolQ = Annotated[
    str | None,
    Query(min_length=1, max_length=32, description="ETH/BTC, ETHBTC, ETH-BTC or ETH_BTC."),
]


def create_app(control: ControlPlane, token: str | None, metrics_text: Callable[[], Any] | None
               = None) -> FastAPI:
    """Build the FastAPI app around ``control``.

    Parameters
    ----------
    control
        The running mesh's control plane.
    token
        The bearer token (None: reads open, writes refused with 401).
    metrics_text
        Async callable returning ``(body bytes, content type)`` for ``GET /metrics``.
    """
    app = FastAPI(
        title="tradingmesh control plane",
        version="1",
        description=(
            "Steer a running trading mesh: agents, orders, fills, signals, P&L, risk, the "
            "circuit breaker and the kill switch.  Mutating endpoints need "
            "`Authorization: Bearer <token>`; reads too when a token is configured."
        ),
    )

    async def can_read(creds: Creds) -> None:
        if token and not token_matches(creds.credentials if creds else None, token):
            raise AuthError("missing or invalid bearer token")

    async def can_write(creds: Creds) -> None:
        if not token:
            raise AuthError(
                "no API token is configured, so changes are refused: set "
                "TRADINGMESH_API_TOKEN or start through scripts/launch.sh (var/api_token)"
            )
        if not token_matches(creds.credentials if creds else None, token):
            raise AuthError("missing or invalid bearer token")

    reader = [Depends(can_read)]
    writer = [Depends(can_write)]

    @app.exception_handler(ControlError)
    async def _control_error(_req: Request, exc: ControlError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field(e.get("loc", ())), "message": str(e.get("msg", "invalid"))}
            for e in exc.errors()
        ]
        text = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        return JSONResponse({"detail": f"invalid request: {text}", "errors": errors},
                            status_code=422)

    @app.exception_handler(AuthError)
    async def _auth_error(_req: Request, exc: AuthError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})

    def actor(request: Request) -> str:
        host = request.client.host if request.client else "unknown"
        return f"api@{host}"

    # ------------------------------------------------ fixed paths (existing scripts)
    @app.post("/api/agents/create", response_model=AgentAction, dependencies=writer,
              responses=_errors(401, 404, 409, 503), tags=["agents (fixed paths)"])
    async def create_agent(
        symbol: Annotated[str, Query(min_length=1, max_length=32)],
    ) -> AgentAction:
        """Start the strategy agent of ``symbol`` (per-symbol agent swarm)."""
        return await control.create_strategy(symbol)

    @app.get("/api/agents/status", response_model=AgentList, dependencies=reader,
             responses=READ, tags=["agents (fixed paths)"])
    async def agents_status() -> AgentList:
        """Every agent's status."""
        return await control.agents()

    @app.get("/api/agents/{symbol:path}/status", response_model=AgentInfo,
             dependencies=reader, responses=_errors(401, 404, 503),
             tags=["agents (fixed paths)"])
    async def symbol_status(symbol: str) -> AgentInfo:
        """Status of the strategy agent of ``symbol``."""
        return await control.agent(control.strategy_agent_id(symbol))

    @app.post("/api/agents/stop/{symbol:path}", response_model=AgentAction,
              dependencies=writer, responses=_errors(401, 404, 409, 503),
              tags=["agents (fixed paths)"])
    async def stop_symbol(symbol: str) -> AgentAction:
        """Stop the strategy agent of ``symbol`` (it stays stopped)."""
        return await control.stop(control.strategy_agent_id(symbol))

    @app.post("/api/agents/restart/{symbol:path}", response_model=AgentAction,
              dependencies=writer, responses=_errors(401, 404, 503),
              tags=["agents (fixed paths)"])
    async def restart_symbol(symbol: str) -> AgentAction:
        """Restart the strategy agent of ``symbol``."""
        return await control.restart(control.strategy_agent_id(symbol))

    @app.get("/api/positions", response_model=Positions, dependencies=reader,
             responses=READ, tags=["trading"])
    async def positions() -> Positions:
        """Open positions and account state at the last mark."""
        return await control.positions()

    @app.post("/api/emergency-stop", response_model=EmergencyStopResult, dependencies=writer,
              responses=WRITE, tags=["kill switch"])
    async def emergency_stop(
        request: Request, body: Annotated[EmergencyStopRequest | None, Body()] = None,
    ) -> EmergencyStopResult:
        """Kill switch: latch HALTED, deny new orders, cancel all, flatten all; report."""
        body = body or EmergencyStopRequest(wait_s=control.settings.api.emergency_wait_s)
        return await control.emergency_stop(body.reason, actor(request), body.wait_s)

    # ------------------------------------------------ agents (every agent)
    @app.get("/api/agents", response_model=AgentList, dependencies=reader, responses=READ,
             tags=["agents"])
    async def list_agents() -> AgentList:
        """Every agent: state, pid, uptime, restarts, heartbeat age, messages, last error."""
        return await control.agents()

    @app.get("/api/agents/{agent_id}", response_model=AgentInfo, dependencies=reader,
             responses=_errors(401, 404, 503), tags=["agents"])
    async def get_agent(agent_id: str) -> AgentInfo:
        """One agent by id (``market_data``, ``strategy:ETHBTC``, ``risk``, ...)."""
        return await control.agent(agent_id)

    @app.post("/api/agents/{agent_id}/start", response_model=AgentAction, dependencies=writer,
              responses=_errors(401, 404, 409, 503), tags=["agents"])
    async def start_agent(agent_id: str) -> AgentAction:
        """Start a stopped agent."""
        return await control.start(agent_id)

    @app.post("/api/agents/{agent_id}/stop", response_model=AgentAction, dependencies=writer,
              responses=_errors(401, 404, 409, 503), tags=["agents"])
    async def stop_agent(agent_id: str) -> AgentAction:
        """Stop an agent (SIGTERM, then SIGKILL after the grace period); it stays stopped."""
        return await control.stop(agent_id)

    @app.post("/api/agents/{agent_id}/restart", response_model=AgentAction,
              dependencies=writer, responses=_errors(401, 404, 503), tags=["agents"])
    async def restart_agent(agent_id: str) -> AgentAction:
        """Restart an agent now (counts as a restart)."""
        return await control.restart(agent_id)

    # ------------------------------------------------ trading records
    @app.get("/api/orders", response_model=list[OrderView], dependencies=reader,
             responses=_errors(401, 404, 503), tags=["trading"])
    async def orders(
        status: OrderStatus | None = None, symbol: SymbolQ = None, limit: Limit = 200,
    ) -> list[OrderView]:
        """Orders, newest last, optionally filtered by status and symbol."""
        return await control.orders(status, symbol, limit)

    @app.get("/api/fills", response_model=list[FillView], dependencies=reader,
             responses=_errors(401, 404, 503), tags=["trading"])
    async def fills(symbol: SymbolQ = None, limit: Limit = 200) -> list[FillView]:
        """Fills, newest last."""
        return await control.fills(symbol, limit)

    @app.get("/api/trades", response_model=TradeList, dependencies=reader,
             responses=_errors(401, 404, 503), tags=["trading"])
    async def trades(symbol: SymbolQ = None) -> TradeList:
        """Round trips built from the fills (closed and still open)."""
        return await control.trades(symbol)

    @app.get("/api/signals", response_model=list[SignalView], dependencies=reader,
             responses=_errors(401, 404, 503), tags=["trading"])
    async def signals(symbol: SymbolQ = None, limit: Limit = 100) -> list[SignalView]:
        """Signals with the compliance and risk decision (rule, reason) and the order."""
        return await control.signals(symbol, limit)

    @app.get("/api/equity", response_model=list[EquityPoint], dependencies=reader,
             responses=READ, tags=["trading"])
    async def equity(limit: Limit = 2000) -> list[EquityPoint]:
        """Equity curve (per bar) with the drawdown from the running peak."""
        return await control.equity(limit)

    @app.get("/api/pnl", response_model=PnL, dependencies=reader, responses=READ,
             tags=["trading"])
    async def pnl() -> PnL:
        """Realised and unrealised P&L and fees, per symbol and in total."""
        return await control.pnl()

    # ------------------------------------------------ risk
    @app.get("/api/circuit-breaker", response_model=BreakerState, dependencies=reader,
             responses=READ, tags=["risk"])
    async def breaker() -> BreakerState:
        """Halt latch (kill switch / circuit breaker) and today's drawdown vs the limit."""
        return await control.breaker()

    @app.post("/api/circuit-breaker/reset", response_model=ResetResult, dependencies=writer,
              responses=WRITE, tags=["risk"])
    async def reset_breaker(request: Request, body: ResetRequest) -> ResetResult:
        """Clear the halt latch so trading can resume (the reason is audited)."""
        return await control.reset(body.reason, actor(request))

    @app.get("/api/halt/symbols", response_model=list[SymbolHaltView], dependencies=reader,
             responses=READ, tags=["risk"])
    async def halted_symbols() -> list[SymbolHaltView]:
        """Symbols halted until a person resolves them (an order whose outcome stayed
        unknown, a position the venue holds differently)."""
        return await control.symbol_halts()

    @app.post("/api/halt/symbols/{symbol:path}/resolve", response_model=SymbolResolveResult,
              dependencies=writer, responses=_errors(400, 401, 404, 503), tags=["risk"])
    async def resolve_symbol(symbol: str, request: Request,
                             body: SymbolResolveRequest) -> SymbolResolveResult:
        """A person resolves a halted symbol (audited): orders confirmed not at the venue,
        or the venue's position adopted; execution clears the halt when nothing is left."""
        return await control.resolve_symbol(symbol, body, actor(request))

    @app.get("/api/risk", response_model=RiskFigures, dependencies=reader, responses=READ,
             tags=["risk"])
    async def risk() -> RiskFigures:
        """Exposure, VaR and CVaR (historical, parametric, Monte Carlo; 95% and 99%) of the
        equity curve, the portfolio and each position; portfolio metrics; the VaR limit
        and alert level; a Monte Carlo equity forecast band."""
        return await control.risk()

    @app.get("/api/report", response_model=EvaluationReport, dependencies=reader,
             responses=READ, tags=["risk"])
    async def report(
        since: Annotated[date | None, Query(description="First day (UTC), YYYY-MM-DD.")]
        = None,
    ) -> EvaluationReport:
        """Self-evaluation: win rate, P&L, drawdown, Sharpe, trade duration, best and worst
        symbols and strategies, regime breakdown, suggested parameter changes."""
        start = None if since is None else int(
            datetime(since.year, since.month, since.day, tzinfo=UTC).timestamp()) * 10**9
        return await control.report(start)

    # ------------------------------------------------ optimizer and strategies
    @app.get("/api/optimizer/runs", response_model=list[OptimizerRunView],
             dependencies=reader, responses=READ, tags=["optimizer"])
    async def optimizer_runs(limit: Limit = 100) -> list[OptimizerRunView]:
        """GA runs, oldest first (then those still queued): status, scores, proposal."""
        return await control.optimizer.runs(limit)

    @app.post("/api/optimizer/runs", response_model=OptimizerRunAccepted, status_code=202,
              dependencies=writer, responses=_errors(400, 401, 404, 503), tags=["optimizer"])
    async def start_optimizer_run(request: Request,
                                  body: OptimizerRunRequest) -> OptimizerRunAccepted:
        """Queue a GA run on the bars the mesh recorded (the optimizer agent runs it)."""
        return await control.optimizer.request_run(body, actor(request))

    @app.get("/api/optimizer/runs/{run_id}", response_model=OptimizerRunDetail,
             dependencies=reader, responses=_errors(401, 404, 503), tags=["optimizer"])
    async def optimizer_run(run_id: RunId) -> OptimizerRunDetail:
        """One run: every generation's best / mean / std per fold, folds, proposal."""
        return await control.optimizer.run(run_id)

    @app.post("/api/optimizer/runs/{run_id}/apply", response_model=ApplyResult,
              dependencies=writer, responses=_errors(400, 401, 404, 409, 503),
              tags=["optimizer"])
    async def apply_optimizer_run(
        request: Request, run_id: RunId,
        body: Annotated[ApplyRequest | None, Body()] = None,
    ) -> ApplyResult:
        """Apply a proposed run's parameters to its symbol's strategy agent (hot reload,
        audited; 409 if the run is not proposed or already applied)."""
        body = body or ApplyRequest()
        return await control.optimizer.apply(run_id, actor(request), body.reason)

    @app.get("/api/strategies", response_model=StrategiesView, dependencies=reader,
             responses=READ, tags=["optimizer"])
    async def strategies() -> StrategiesView:
        """The strategy registry and each strategy agent's active parameters."""
        return await control.optimizer.strategies()

    @app.get("/api/models", response_model=ModelsView, dependencies=reader,
             responses=READ, tags=["optimizer"])
    async def models() -> ModelsView:
        """ml_classifier model versions (metadata, CV scores) and each symbol's live model:
        active version, live hit rate, a pending retrained version."""
        return await models_view(control.settings, control.redis)

    # ------------------------------------------------ plumbing
    @app.get("/api/audit", response_model=list[AuditView], dependencies=reader,
             responses=READ, tags=["plumbing"])
    async def audit(
        limit: Limit = 200,
        action: Annotated[str | None, Query(max_length=64)] = None,
    ) -> list[AuditView]:
        """The audit log, newest last (optionally one action, e.g. ``emergency_stop``)."""
        return await control.audit(limit, action)

    @app.get("/api/channels", response_model=ChannelStats, dependencies=reader,
             responses=READ, tags=["plumbing"])
    async def channel_stats() -> ChannelStats:
        """Messages per channel, stream lengths, pending entries per consumer group."""
        return await control.channels()

    @app.get("/api/health", response_model=Health, responses=_errors(), tags=["plumbing"])
    async def health() -> Health:
        """Liveness (no token needed)."""
        return control.health()

    @app.get("/api/ready", response_model=Ready, dependencies=reader,
             responses={**_errors(401), 503: {"model": Ready}}, tags=["plumbing"])
    async def ready() -> Response:
        """Readiness: Redis reachable and every agent running (503 otherwise)."""
        r = await control.ready()
        return JSONResponse(r.model_dump(mode="json"), status_code=200 if r.ready else 503)

    @app.get("/metrics", dependencies=reader, include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus exposition format."""
        if metrics_text is None:
            return Response("metrics disabled\n", status_code=404, media_type="text/plain")
        body, content_type = await metrics_text()
        return Response(body, media_type=content_type)

    return app
