"""A stubbed REST API for the dashboard's pages under ``streamlit.testing.v1.AppTest``.

:class:`FakeApi` is the real :class:`dashboard.client.ApiClient` over an
``httpx.MockTransport`` answering every endpoint with bodies built from
:mod:`backend.rest.models`; ``start`` runs the app on a page with it, ``texts``, ``badges``,
``keyed`` and ``frames`` read what a page shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from streamlit.testing.v1 import AppTest

from backend.rest.models import (
    AgentAction,
    AgentInfo,
    AgentList,
    ApplyResult,
    BreakerState,
    ChannelStats,
    DecisionView,
    EmergencyStopResult,
    EquityPoint,
    FillView,
    GroupStats,
    OptimizerRunAccepted,
    OptimizerRunDetail,
    OrderView,
    PnL,
    Positions,
    PositionView,
    Ready,
    ResetResult,
    RiskFigures,
    SignalView,
    StrategiesView,
    StrategyAgentView,
    StreamStats,
    SymbolExposure,
    SymbolPnL,
    VaREstimate,
)
from dashboard.client import ApiClient
from dashboard.common import CLIENT_KEY

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
T0 = 1_516_000_000_000_000_000  # 2018-01-15 07:06:40 UTC, ns
AGENTS = ["market_data", "strategy:ETHBTC", "strategy:LTCBTC", "compliance", "risk",
          "execution"]
STALE = "risk"  # the agent whose heartbeat is old


class FakeApi:
    """An in-memory control plane: answers requests, records the actions it was asked."""

    def __init__(self) -> None:
        self.down = False
        self.status = 200  # e.g. 401 to refuse every call
        self.actions: list[tuple[str, str]] = []
        self.restarts = dict.fromkeys(AGENTS, 0)
        self.stopped: set[str] = set()
        self.halted = False
        self.channel_count = 100
        self.optimizer: list[OptimizerRunDetail] | None = None

    # ------------------------------------------------------------ bodies
    def agent(self, agent_id: str) -> AgentInfo:
        stopped = agent_id in self.stopped
        stale = agent_id == STALE
        return AgentInfo(
            agent_id=agent_id, role=agent_id.split(":")[0],
            symbol="ETH/BTC" if agent_id.endswith("ETHBTC") else None,
            state="stopped" if stopped else ("no_heartbeat" if stale else "running"),
            desired="stopped" if stopped else "running",
            pid=None if stopped else 1000 + AGENTS.index(agent_id),
            uptime_s=None if stopped else 75.0, restarts=self.restarts[agent_id],
            heartbeat_age_s=42.0 if stale else 0.4, stale=stale,
            messages_in=1000, messages_out=900,
            last_error="boom: simulated failure" if stale else "",
        )

    def routes(self) -> dict[tuple[str, str], Callable[[httpx.Request], Any]]:
        pos = PositionView(symbol="ETH/BTC", quantity=0.5, avg_price=0.09, mark=0.091,
                           notional=0.0455, unrealized_pnl=0.0005)
        sig = SignalView(
            id="sig-1", ts=T0, symbol="ETH/BTC", side="BUY", confidence=0.9,
            strategy="sma_cross", reason="fast above slow", bar_time=T0, outcome="rejected",
            rejected_by="risk",
            compliance=DecisionView(stage="compliance", approved=True, ts=T0),
            risk=DecisionView(stage="risk", approved=False, rule="max_exposure",
                              reason="exposure 30% > 25%", ts=T0),
        )
        ordered = sig.model_copy(update={
            "id": "sig-2", "outcome": "ordered", "rejected_by": None,
            "risk": DecisionView(stage="risk", approved=True, quantity=0.5, ts=T0),
            "client_order_id": "co-sig-2"})
        order = OrderView(client_order_id="co-sig-3", symbol="ETH/BTC", side="BUY",
                          quantity=0.5, reduce_only=False, status="ACCEPTED", created_ts=T0,
                          updated_ts=T0)
        fill = FillView(fill_id="f1", client_order_id="co-sig-2", symbol="ETH/BTC",
                        side="BUY", quantity=0.5, price=0.09, fee=0.00005, realized_pnl=0.0,
                        ts=T0, fill_time=T0)
        return {
            ("GET", "/api/agents"): lambda r: AgentList(
                ts=time.time_ns(), agents=[self.agent(a) for a in AGENTS]),
            ("GET", "/api/ready"): lambda r: Ready(
                ready=False, redis=True, agents_running=len(AGENTS) - 1,
                agents_expected=len(AGENTS), not_running=[STALE]),
            ("GET", "/api/positions"): lambda r: Positions(
                bar_seq=10, bar_time=T0, cash=0.95, equity=1.0005, exposure=0.0455,
                halted=self.halted, positions=[pos]),
            ("GET", "/api/pnl"): lambda r: PnL(
                initial_cash=1.0, equity=1.0005, total=0.0005, total_return=0.0005,
                realized=0.001, unrealized=0.0005, fees=0.0001,
                by_symbol={"ETH/BTC": SymbolPnL(realized=0.002, trades=2),
                           "LTC/BTC": SymbolPnL(realized=-0.001, trades=1)}),
            ("GET", "/api/equity"): lambda r: [
                EquityPoint(bar_seq=i, bar_time=T0 + i * 300_000_000_000,
                            equity=1.0 + 0.001 * (i % 3), cash=1.0, exposure=0.0,
                            drawdown=0.001 * (i % 2)) for i in range(20)],
            ("GET", "/api/orders"): lambda r: (
                [order] if r.url.params.get("status") == "ACCEPTED" else []),
            ("GET", "/api/fills"): lambda r: [fill],
            ("GET", "/api/signals"): lambda r: [sig, ordered],
            ("GET", "/api/circuit-breaker"): lambda r: BreakerState(
                halted=self.halted, kind="kill_switch" if self.halted else "none",
                reason="desk call" if self.halted else None, since=T0 if self.halted else None,
                by="api@127.0.0.1" if self.halted else None, daily_drawdown=0.005,
                limit=0.02, equity=1.0005, day_start_equity=1.0055),
            ("GET", "/api/risk"): lambda r: RiskFigures(
                equity=1.0005, exposure=0.0455, exposure_pct=0.0455,
                by_symbol={"ETH/BTC": SymbolExposure(quantity=0.5, notional=0.0455,
                                                     exposure_pct=0.0455)},
                observations=19, estimates=[
                    VaREstimate(method="historical", level=0.95, var=0.0021, cvar=0.003),
                    VaREstimate(method="parametric", level=0.99, var=0.0031, cvar=0.004)]),
            ("GET", "/api/channels"): self._channels,
            ("POST", "/api/emergency-stop"): self._estop,
            ("POST", "/api/circuit-breaker/reset"): self._reset,
            ("POST", "/api/agents/create"): self._create,
            **(self._optimizer_routes() if self.optimizer is not None else {}),
        }

    def _optimizer_routes(self) -> dict[tuple[str, str], Callable[[httpx.Request], Any]]:
        runs = self.optimizer or []
        routes: dict[tuple[str, str], Callable[[httpx.Request], Any]] = {
            ("GET", "/api/optimizer/runs"): lambda r: runs,
            ("POST", "/api/optimizer/runs"): self._start_run,
            ("GET", "/api/strategies"): lambda r: StrategiesView(registry=[], agents=[
                StrategyAgentView(agent_id="strategy:ETHBTC", symbol="ETH/BTC",
                                  strategy="sma_cross", params={"fast": 9, "slow": 42},
                                  source="optimizer", since_seq=301, run_id="ga-0",
                                  configured_strategy="sma_cross",
                                  configured_params={"fast": 10, "slow": 30})]),
        }
        for run in runs:
            routes[("GET", f"/api/optimizer/runs/{run.run_id}")] = lambda r, run=run: run
            routes[("POST", f"/api/optimizer/runs/{run.run_id}/apply")] = (
                lambda r, run=run: self._apply(run))
        return routes

    def _start_run(self, r: httpx.Request) -> OptimizerRunAccepted:
        import json

        self.actions.append(("start_optimizer", json.loads(r.content)))
        return OptimizerRunAccepted(run_id="ga-new", symbol="ETH/BTC", strategy="sma_cross",
                                    until_seq=500, message="queued for the optimizer agent")

    def _apply(self, run: OptimizerRunDetail) -> ApplyResult:
        self.actions.append(("apply", run.run_id))
        run.appliable, run.applied = False, True
        return ApplyResult(run_id=run.run_id, symbol="ETH/BTC", agent_id="strategy:ETHBTC",
                           strategy="sma_cross", params=run.best_params, old_strategy="sma_cross",
                           old_params={"fast": 10}, after_seq=500, command_id="c1",
                           actor="api@127.0.0.1",
                           message="strategy:ETHBTC switches on its first bar after seq 500")

    def _create(self, r: httpx.Request) -> AgentAction | httpx.Response:
        symbol = r.url.params["symbol"]
        if symbol != "ETH/BTC":
            return httpx.Response(404, json={
                "detail": f"unknown symbol {symbol!r}; known symbols: ETH/BTC"})
        self.actions.append(("create", symbol))
        return AgentAction(agent_id="strategy:ETHBTC", action="create", ok=True, pid=4243,
                           message="strategy:ETHBTC started")

    def _channels(self, _r: httpx.Request) -> ChannelStats:
        self.channel_count += 50
        return ChannelStats(
            ts=time.time_ns(), messages={"market_data": self.channel_count, "signals": 7},
            streams=[StreamStats(stream="orders", length=12, groups=[
                GroupStats(group="execution", consumers=1, pending=2, lag=0,
                           last_delivered_id="1-0")])])

    def _estop(self, r: httpx.Request) -> EmergencyStopResult:
        import json

        self.actions.append(("emergency_stop", json.loads(r.content)["reason"]))
        self.halted = True
        return EmergencyStopResult(
            halted=True, latched_at=T0, reason="x", command_id="c1", confirmed=True,
            cancelled_orders=[], flattened=[], open_orders_left=[], positions_left={},
            message="halted; 0 orders cancelled; 0 positions flattened")

    def _reset(self, r: httpx.Request) -> ResetResult:
        import json

        self.actions.append(("reset", json.loads(r.content)["reason"]))
        self.halted = False
        return ResetResult(was_halted=True, halted=False, message="halt cleared")

    def _agent_action(self, method: str, path: str) -> AgentAction | None:
        parts = path.split("/")  # /api/agents/<id>/<action>
        if method != "POST" or len(parts) != 5 or parts[4] not in ("start", "stop", "restart"):
            return None
        agent_id, action = parts[3], parts[4]
        self.actions.append((action, agent_id))
        if action == "restart":
            self.restarts[agent_id] += 1
        if action == "stop":
            self.stopped.add(agent_id)
        else:
            self.stopped.discard(agent_id)
        return AgentAction(agent_id=agent_id, action=action, ok=True, pid=4242,
                           restarts=self.restarts[agent_id], message=f"{agent_id} {action}ed")

    # ------------------------------------------------------------ transport
    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if self.status != 200:
            return httpx.Response(self.status, json={"detail": "missing or invalid bearer "
                                                               "token"})
        path = request.url.path
        action = self._agent_action(request.method, path)
        if action is not None:
            return httpx.Response(200, json=action.model_dump(mode="json"))
        route = self.routes().get((request.method, path))
        if route is None:
            return httpx.Response(404, json={"detail": f"Not Found: {path}"})
        body = route(request)
        if isinstance(body, httpx.Response):
            return body
        data = ([b.model_dump(mode="json") if hasattr(b, "model_dump") else b for b in body]
                if isinstance(body, list) else body.model_dump(mode="json"))
        return httpx.Response(200, json=data)

    def client(self) -> ApiClient:
        return ApiClient("http://api.test", "tok", transport=httpx.MockTransport(self.handler))


# ---------------------------------------------------------------- helpers


def start(api: FakeApi, page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state[CLIENT_KEY] = api.client()
    at.run()
    if page is not None:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    """Every markdown, caption, metric, alert and title of the page, as one string."""
    parts: list[str] = []
    for kind in ("markdown", "caption", "title", "subheader", "error", "warning", "info",
                 "success"):
        parts.extend(str(e.value) for e in getattr(at, kind))
    parts.extend(f"{m.label}={m.value}" for m in at.metric)
    return "\n".join(parts)


def badges(at: AppTest) -> list[str]:
    """Labels of the state badges (``:green-badge[running]`` -> ``running``)."""
    return [m.value.split("-badge[", 1)[1].rstrip("]") for m in at.markdown
            if "-badge[" in m.value]


def keyed(at: AppTest, key: str) -> str:
    """The text inside the container with ``key`` (e.g. ``restarts_strategy_ETHBTC``)."""
    def find(node: Any) -> Any:
        if getattr(node, "key", None) == key:
            return node
        for child in getattr(node, "children", {}).values():
            found = find(child)
            if found is not None:
                return found
        return None

    def collect(node: Any) -> list[str]:
        own = [str(node.value)] if getattr(node, "type", "") == "markdown" else []
        return own + [t for c in getattr(node, "children", {}).values() for t in collect(c)]

    node = find(at._tree)
    assert node is not None, f"no element with key {key!r}"
    return " ".join(collect(node))


def frames(at: AppTest) -> str:
    return "\n".join(df.value.to_string() for df in at.dataframe)
