"""The dashboard's API client: typed answers, clear errors, where it finds URL and token,
and that every path it calls exists in the real control plane's OpenAPI schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from backend.redisctl.server import free_port
from backend.rest.models import AgentInfo, AgentList, Ready
from dashboard.client import (
    ApiAuthError,
    ApiClient,
    ApiError,
    ApiUnavailable,
    NotFound,
    resolve_token,
    resolve_url,
)

TOKEN = "s3cret-token-value"


def _agent(agent_id: str = "risk") -> dict:
    return AgentInfo(agent_id=agent_id, role=agent_id, state="running",
                     desired="running").model_dump(mode="json")


def client_for(handler, token: str | None = TOKEN) -> ApiClient:  # noqa: ANN001
    return ApiClient("http://api.test", token, transport=httpx.MockTransport(handler))


def test_answers_are_parsed_into_the_api_models_and_the_token_is_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={"ts": 1, "agents": [_agent(), _agent("execution")]})

    listing = client_for(handler).agents()
    assert isinstance(listing, AgentList)
    assert [a.agent_id for a in listing.agents] == ["risk", "execution"]
    assert isinstance(listing.agents[0], AgentInfo)
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen[0].url.path == "/api/agents"


def test_401_is_a_clear_auth_error_without_the_token() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"detail": "missing or invalid bearer token"})

    with pytest.raises(ApiAuthError) as info:
        client_for(handler).agents()
    assert info.value.status == 401
    assert "refused the token (401): missing or invalid bearer token" in str(info.value)
    assert TOKEN not in str(info.value)
    with pytest.raises(ApiAuthError, match="no token: set TRADINGMESH_API_TOKEN"):
        client_for(handler, token=None).restart("risk")


def test_connection_refused_is_api_unavailable() -> None:
    port = free_port()  # nothing listens there
    client = ApiClient(f"http://127.0.0.1:{port}", TOKEN)
    with pytest.raises(ApiUnavailable, match=f"127.0.0.1:{port} is unreachable"):
        client.agents()
    with pytest.raises(ApiUnavailable):
        client.emergency_stop("x", wait_s=0)


def test_timeout_is_api_unavailable() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=req)

    with pytest.raises(ApiUnavailable, match="did not answer GET /api/positions in time"):
        client_for(handler).positions()


def test_503_is_unavailable_but_ready_still_reads_its_body() -> None:
    not_ready = Ready(ready=False, redis=False, agents_running=0, agents_expected=3,
                      not_running=["a", "b", "c"]).model_dump(mode="json")

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/api/ready":
            return httpx.Response(503, json=not_ready)
        return httpx.Response(503, json={"detail": "Redis is unreachable: ConnectionError"})

    c = client_for(handler)
    with pytest.raises(ApiUnavailable, match="Redis is unreachable") as info:
        c.channels()
    assert info.value.status == 503
    ready = c.ready()
    assert ready.ready is False and ready.not_running == ["a", "b", "c"]


def test_404_409_and_bad_bodies() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/api/agents/nope":
            return httpx.Response(404, json={"detail": "unknown agent 'nope'; agents: risk"})
        if req.url.path.endswith("/start"):
            return httpx.Response(409, json={"detail": "agent risk is already running"})
        if req.url.path == "/api/optimizer/runs":
            return httpx.Response(404, json={"detail": "Not Found"})
        return httpx.Response(200, json={"ts": "not a number", "agents": []})

    c = client_for(handler)
    with pytest.raises(NotFound, match="unknown agent 'nope'"):
        c.agent("nope")
    with pytest.raises(ApiError, match=r"failed \(409\): agent risk is already running") as info:
        c.start("risk")
    assert info.value.status == 409 and not isinstance(info.value, ApiUnavailable)
    assert c.optimizer_runs() is None  # no optimizer API yet: "no runs yet"
    with pytest.raises(ApiError, match="unexpected answer .* first at ts"):
        c.agents()


def test_actions_paths_and_bodies() -> None:
    seen: list[tuple[str, str, str, bytes]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append((req.method, req.url.path, str(req.url.params), req.content))
        if req.url.path == "/api/emergency-stop":
            return httpx.Response(200, json={
                "halted": True, "latched_at": 1, "reason": "r", "command_id": "c",
                "confirmed": True, "cancelled_orders": [], "flattened": [],
                "open_orders_left": [], "positions_left": {}, "message": "ok"})
        if req.url.path == "/api/circuit-breaker/reset":
            return httpx.Response(200, json={"was_halted": True, "halted": False,
                                             "message": "cleared"})
        return httpx.Response(200, json={"agent_id": "strategy:ETHBTC", "action": "restart",
                                         "ok": True, "restarts": 3, "message": "done"})

    c = client_for(handler)
    assert c.restart("strategy:ETHBTC").restarts == 3
    c.create_strategy("ETH/BTC")
    assert c.emergency_stop("desk call", wait_s=5).confirmed is True
    assert c.reset_breaker("reviewed").halted is False
    assert seen[0][:2] == ("POST", "/api/agents/strategy:ETHBTC/restart")
    assert seen[1][:3] == ("POST", "/api/agents/create", "symbol=ETH%2FBTC")
    assert json.loads(seen[2][3]) == {"reason": "desk call", "wait_s": 5}
    assert json.loads(seen[3][3]) == {"reason": "reviewed"}


def test_optimizer_calls_send_only_what_is_set() -> None:
    seen: list[tuple[str, str, bytes]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append((req.method, req.url.raw_path.decode(), req.content))
        if req.url.path.endswith("/apply"):
            return httpx.Response(200, json={
                "run_id": "r/1", "symbol": "ETH/BTC", "agent_id": "strategy:ETHBTC",
                "strategy": "sma_cross", "params": {"fast": 9}, "old_strategy": "sma_cross",
                "old_params": {"fast": 10}, "after_seq": 5, "command_id": "c",
                "actor": "api@x", "message": "switches", "future": 1})
        return httpx.Response(202, json={"run_id": "r2", "status": "queued",
                                         "symbol": "ETH/BTC", "strategy": "sma_cross",
                                         "until_seq": 5, "message": "queued"})

    c = client_for(handler)
    assert c.start_optimizer("ETH/BTC", generations=3, seed=None).run_id == "r2"
    assert c.apply_optimizer("r/1").after_seq == 5
    assert seen[0][:2] == ("POST", "/api/optimizer/runs")
    assert json.loads(seen[0][2]) == {"symbol": "ETH/BTC", "generations": 3}
    assert seen[1][:2] == ("POST", "/api/optimizer/runs/r%2F1/apply")


def test_open_orders_asks_every_working_status() -> None:
    statuses: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        statuses.append(req.url.params["status"])
        return httpx.Response(200, json=[])

    assert client_for(handler).open_orders() == []
    assert statuses == ["NEW", "ACCEPTED", "PARTIALLY_FILLED", "UNKNOWN"]


def test_url_and_token_from_env_then_var_files(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setenv("TRADINGMESH_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("TRADINGMESH_API_URL", raising=False)
    monkeypatch.delenv("TRADINGMESH_API_TOKEN", raising=False)
    assert resolve_url() == "http://127.0.0.1:8000" and resolve_token() is None
    (tmp_path / "api_url").write_text("http://127.0.0.1:8123\n")
    (tmp_path / "api_token").write_text("from-file\n")
    assert resolve_url() == "http://127.0.0.1:8123" and resolve_token() == "from-file"
    monkeypatch.setenv("TRADINGMESH_API_URL", "http://10.0.0.5:9000/")
    monkeypatch.setenv("TRADINGMESH_API_TOKEN", "from-env")
    assert resolve_url() == "http://10.0.0.5:9000" and resolve_token() == "from-env"
    assert ApiClient.from_env().base_url == "http://10.0.0.5:9000"


def test_every_path_the_client_calls_exists_in_the_control_plane() -> None:
    """Guards against drift between the dashboard and ``orchestrator/api/``."""
    from orchestrator.api.app import create_app

    schema = create_app(control=None, token="x").openapi()  # type: ignore[arg-type]
    routes = [(m.upper(), re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", p) + "$"))
              for p, ops in schema["paths"].items() for m in ops]
    called: list[tuple[str, str]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        called.append((req.method, req.url.path))
        return httpx.Response(404, json={"detail": "recorded"})

    c = client_for(handler)
    calls = [c.health, c.ready, c.agents, lambda: c.agent("risk"), c.positions, c.orders,
             c.fills, c.trades, c.signals, c.equity, c.pnl, c.breaker, c.risk, c.audit,
             c.channels, lambda: c.start("risk"), lambda: c.stop("strategy:ETHBTC"),
             lambda: c.restart("risk"), lambda: c.create_strategy("ETHBTC"),
             lambda: c.emergency_stop("x"), lambda: c.reset_breaker("xyz"),
             lambda: c.optimizer_run("r1"), c.strategies,
             lambda: c.start_optimizer("ETHBTC", generations=3),
             lambda: c.apply_optimizer("r1")]
    for call in calls:
        with pytest.raises(NotFound):
            call()
    assert c.optimizer_runs() is None  # 404 from a server without the optimizer API
    assert len(called) == len(calls) + 1
    missing = [(m, p) for m, p in called if not any(m == rm and rx.match(p)
                                                    for rm, rx in routes)]
    assert missing == []
