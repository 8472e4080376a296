"""The REST control plane (orchestrator/api/) with FastAPI's TestClient: operations.

Agents stopped, started and restarted by symbol or role, readiness, Redis down, the emergency
stop and its reset, and bad request bodies (reads and auth: test_api.py).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend import channels
from backend.bus import DATA_FIELD
from backend.mesh.halt import HALT_STATE
from backend.messages import AgentState, CancelAllOrders, OrderStatus, decode
from backend.rest.models import (
    AgentAction,
    AgentInfo,
    AuditView,
    BreakerState,
    ChannelStats,
    EmergencyStopResult,
    Health,
    Positions,
    Ready,
    ResetResult,
)
from tests.support.api_client import (
    ACTOR,
    ETH_AGENT,
    SYMBOL_FORMS,
    Api,
    err,
    invalid,
    ok,
    ok_list,
    pid_gone,
)
from tests.support.api_fixtures import (
    AGENT_IDS,
    INITIAL_CASH,
    TOKEN,
    Harness,
    mesh,
)


def test_agent_state_comes_from_its_heartbeat(h: Harness, api: Api) -> None:
    h.beat("risk", state=AgentState.DEGRADED, last_error="boom")
    info = ok(api.get("/api/agents/risk"), AgentInfo)
    assert (info.state, info.last_error) == ("degraded", "boom")
    h.beat("execution", pid=999_999_999)  # a heartbeat of an older process does not count
    info = ok(api.get("/api/agents/execution"), AgentInfo)
    assert info.state == "no_heartbeat"
    assert info.messages_in == 0


@pytest.mark.parametrize("form", SYMBOL_FORMS)
def test_stop_then_create_by_symbol(h: Harness, api: Api, form: str) -> None:
    old = h.pid(ETH_AGENT)
    assert old is not None
    act = ok(api.post(f"/api/agents/stop/{form}"), AgentAction)
    assert (act.agent_id, act.action, act.ok, act.pid) == (ETH_AGENT, "stop", True, None)
    assert h.pid(ETH_AGENT) is None and pid_gone(old)
    assert ETH_AGENT.encode() in h.sync.smembers(channels.PARKED_AGENTS_KEY)
    info = ok(api.get(f"/api/agents/{form}/status"), AgentInfo)
    assert (info.state, info.desired, info.pid, info.stale) == ("stopped", "stopped", None, False)
    assert "already stopped" in err(api.post(f"/api/agents/stop/{form}"), 409).detail

    act = ok(api.post("/api/agents/create", params={"symbol": form.replace("%2F", "/")}),
             AgentAction)
    assert (act.agent_id, act.action, act.ok) == (ETH_AGENT, "create", True)
    assert act.pid is not None and act.pid != old and act.pid == h.pid(ETH_AGENT)
    assert ETH_AGENT.encode() not in h.sync.smembers(channels.PARKED_AGENTS_KEY)
    info = ok(api.get(f"/api/agents/{form}/status"), AgentInfo)
    assert (info.desired, info.pid, info.state) == ("running", act.pid, "no_heartbeat")
    h.beat(ETH_AGENT)
    assert ok(api.get(f"/api/agents/{form}/status"), AgentInfo).state == "running"


def test_create_on_a_running_symbol_is_409(h: Harness, api: Api) -> None:
    pid = h.pid(ETH_AGENT)
    detail = err(api.post("/api/agents/create?symbol=ETH%2FBTC"), 409).detail
    assert "already has a running strategy agent" in detail and ETH_AGENT in detail
    assert h.pid(ETH_AGENT) == pid


@pytest.mark.parametrize("form", SYMBOL_FORMS)
def test_restart_by_symbol(h: Harness, api: Api, form: str) -> None:
    old = h.pid(ETH_AGENT)
    before = ok(api.get("/api/agents/ETHBTC/status"), AgentInfo).restarts
    act = ok(api.post(f"/api/agents/restart/{form}"), AgentAction)
    assert (act.agent_id, act.action, act.restarts) == (ETH_AGENT, "restart", before + 1)
    assert act.pid == h.pid(ETH_AGENT) and act.pid != old and pid_gone(old)
    assert ok(api.get("/api/agents/ETHBTC/status"), AgentInfo).restarts == before + 1


def test_resource_style_stop_start_restart(h: Harness, api: Api) -> None:
    assert "already running" in err(api.post("/api/agents/risk/start"), 409).detail
    old = h.pid("risk")
    act = ok(api.post("/api/agents/risk/stop"), AgentAction)
    assert (act.action, act.pid) == ("stop", None) and pid_gone(old)
    assert "exit code" in act.message
    assert err(api.post("/api/agents/risk/stop"), 409).detail == "agent risk is already stopped"
    act = ok(api.post("/api/agents/risk/start"), AgentAction)
    assert act.action == "start" and act.pid == h.pid("risk") and act.pid is not None
    started = act.pid
    act = ok(api.post("/api/agents/risk/restart"), AgentAction)
    assert (act.action, act.restarts) == ("restart", 1)
    assert act.pid not in (None, started) and pid_gone(started)
    # a restart also brings back a stopped agent
    ok(api.post("/api/agents/market_data/stop"), AgentAction)
    act = ok(api.post("/api/agents/market_data/restart"), AgentAction)
    assert act.pid == h.pid("market_data") and act.pid is not None
    assert ok(api.get("/api/agents/market_data"), AgentInfo).desired == "running"


# ====================================================================== readiness
def test_ready_when_every_agent_runs_and_not_after_a_restart(h: Harness, api: Api) -> None:
    r = ok(api.get("/api/ready"), Ready)
    assert (r.ready, r.redis, r.agents_running, r.agents_expected, r.not_running) == \
        (True, True, len(AGENT_IDS), len(AGENT_IDS), [])
    ok(api.post("/api/agents/restart/LTCBTC"), AgentAction)  # new pid, no heartbeat yet
    r = ok(api.get("/api/ready"), Ready, status=503)
    assert (r.ready, r.redis, r.not_running) == (False, True, ["strategy:LTCBTC"])
    assert r.agents_running == len(AGENT_IDS) - 1
    h.beat("strategy:LTCBTC")
    assert ok(api.get("/api/ready"), Ready).ready is True


def test_not_ready_when_an_agent_died(h: Harness, api: Api) -> None:
    proc = h.supervisor.get("execution").proc
    assert proc is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait(5)
    r = ok(api.get("/api/ready"), Ready, status=503)
    assert r.not_running == ["execution"]
    info = ok(api.get("/api/agents/execution"), AgentInfo)
    assert (info.pid, info.state, info.desired) == (None, "restarting", "running")


def test_an_operator_stop_does_not_make_the_mesh_unready(api: Api) -> None:
    """Readiness counts the agents that *should* run: an operator-stopped one is excluded."""
    ok(api.post("/api/agents/stop/DASHBTC"), AgentAction)
    r = ok(api.get("/api/ready"), Ready)
    assert (r.ready, r.agents_expected, r.not_running) == (True, len(AGENT_IDS) - 1, [])


def test_redis_down_is_503(h: Harness, api: Api) -> None:
    h.server.connected = False
    try:
        for path in ("/api/positions", "/api/circuit-breaker", "/api/channels", "/api/pnl"):
            assert "Redis is unreachable" in err(api.get(path), 503).detail
        assert "Redis is unreachable" in err(
            api.post("/api/emergency-stop", json={"wait_s": 0}), 503).detail
        r = ok(api.get("/api/ready"), Ready, status=503)
        assert (r.ready, r.redis, r.agents_running) == (False, False, 0)
        assert r.not_running == AGENT_IDS
        assert ok(api.get("/api/health"), Health).status == "ok"
    finally:
        h.server.connected = True
    assert ok(api.get("/api/positions"), Positions).halted is False


# ====================================================================== trading records
def test_positions(h: Harness, api: Api) -> None:
    pos = ok(api.get("/api/positions"), Positions)
    assert (pos.bar_seq, pos.halted) == (h.seed.mark.bar_seq, False)
    assert [(p.symbol, p.quantity, p.avg_price, p.mark) for p in pos.positions] == \
        [("LTC/BTC", 2.0, 0.002, 0.0021)]
    assert pos.positions[0].notional == pytest.approx(0.0042)
    h.sync.delete(channels.PORTFOLIO_KEY)
    empty = ok(api.get("/api/positions"), Positions)
    assert (empty.positions, empty.equity, empty.bar_seq) == ([], None, None)


def test_circuit_breaker_state(h: Harness, api: Api) -> None:
    b = ok(api.get("/api/circuit-breaker"), BreakerState)
    assert (b.halted, b.kind, b.by, b.reason) == (False, "none", None, None)
    assert b.limit == h.settings.risk.daily_drawdown_limit
    assert b.equity == pytest.approx(h.seed.mark.equity)
    assert b.day_start_equity == INITIAL_CASH
    assert h.seed.mark.equity < INITIAL_CASH  # the seeded day lost a little
    assert b.daily_drawdown == pytest.approx(1 - h.seed.mark.equity / INITIAL_CASH)
    h.sync.set(channels.HALT_KEY, b"garbage")  # unreadable latch: fail closed
    b = ok(api.get("/api/circuit-breaker"), BreakerState)
    assert (b.halted, b.kind) == (True, "restored")


def test_channels(h: Harness, api: Api) -> None:
    h.sync.hset("stats:messages", mapping={"signals": 5, "orders": 3})
    h.sync.xadd(channels.ORDERS, {DATA_FIELD: b"{}"})
    h.sync.xgroup_create(channels.ORDERS, "execution", id="0")
    stats = ok(api.get("/api/channels"), ChannelStats)
    assert stats.messages == {"orders": 3, "signals": 5}
    by_name = {s.stream: s for s in stats.streams}
    assert set(by_name) == set(channels.STREAMS)
    assert by_name[channels.ORDERS].length == 1
    assert [(g.group, g.pending) for g in by_name[channels.ORDERS].groups] == [("execution", 0)]
    assert by_name[channels.SIGNALS].length == 0


def test_metrics(h: Harness, api: Api) -> None:
    r = api.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'tradingmesh_agent_up{agent_id="risk",role="risk"} 1.0' in text
    assert f'tradingmesh_orders{{status="{OrderStatus.FILLED.value}"}} 3.0' in text
    assert f'tradingmesh_orders{{status="{OrderStatus.ACCEPTED.value}"}} 1.0' in text
    assert "tradingmesh_breaker_halted 0.0" in text
    ok(api.post("/api/agents/risk/stop"), AgentAction)
    assert 'tradingmesh_agent_up{agent_id="risk",role="risk"} 0.0' in api.get("/metrics").text


def test_metrics_disabled_is_404(h: Harness) -> None:
    with TestClient(h.app(with_metrics=False)) as client:
        r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 404 and "metrics disabled" in r.text


# ====================================================================== kill switch
def test_emergency_stop_then_reset(h: Harness, api: Api) -> None:
    res = ok(api.post("/api/emergency-stop", json={"reason": "drill", "wait_s": 0}),
             EmergencyStopResult)
    assert (res.halted, res.confirmed, res.reason) == (True, False, "drill")
    assert (res.cancelled_orders, res.flattened) == ([], [])
    assert res.open_orders_left == [h.seed.orders["ada_buy"]]
    assert res.positions_left == {"LTC/BTC": 2.0}
    assert "not confirmed" in res.message

    b = ok(api.get("/api/circuit-breaker"), BreakerState)
    assert (b.halted, b.kind, b.by, b.reason, b.since) == \
        (True, "kill_switch", ACTOR, "drill", res.latched_at)
    assert ok(api.get("/api/positions"), Positions).halted is True
    assert h.store.get_state(HALT_STATE)["kind"] == "kill_switch"
    assert "tradingmesh_breaker_halted 1.0" in api.get("/metrics").text

    entries = h.sync.xrange(channels.ORDERS)
    assert len(entries) == 1
    cmd = decode(entries[0][1][DATA_FIELD])
    assert isinstance(cmd, CancelAllOrders)
    assert (cmd.id, cmd.flatten) == (res.command_id, True)
    assert "drill" in cmd.reason

    audit = ok_list(api.get("/api/audit", params={"action": "emergency_stop"}), AuditView)
    assert [(a.actor, a.decision, a.reason, a.subject_id) for a in audit] == \
        [(ACTOR, "halted", "drill", res.command_id)]

    # a second stop keeps the first latch and queues another command
    res2 = ok(api.post("/api/emergency-stop", json={"reason": "again", "wait_s": 0}),
              EmergencyStopResult)
    assert res2.latched_at == res.latched_at and res2.command_id != res.command_id
    assert h.sync.xlen(channels.ORDERS) == 2

    reset = ok(api.post("/api/circuit-breaker/reset", json={"reason": "drill over"}),
               ResetResult)
    assert (reset.was_halted, reset.halted) == (True, False)
    assert reset.previous_reason == "kill_switch: drill"
    b = ok(api.get("/api/circuit-breaker"), BreakerState)
    assert (b.halted, b.kind) == (False, "none")
    assert h.sync.get(channels.HALT_KEY) is None
    assert h.store.get_state(HALT_STATE) is None
    audit = ok_list(api.get("/api/audit", params={"action": "halt_reset"}), AuditView)
    assert [(a.actor, a.decision) for a in audit] == [(ACTOR, "resumed")]
    assert audit[0].reason.startswith("drill over (was: kill_switch: drill)")


def test_emergency_stop_without_body_uses_the_configured_wait(h: Harness, api: Api) -> None:
    assert h.settings.api.emergency_wait_s == 0
    res = ok(api.post("/api/emergency-stop"), EmergencyStopResult)
    assert (res.halted, res.confirmed, res.reason) == (True, False, "emergency stop")
    assert "within 0s" in res.message
    assert h.sync.get(channels.HALT_KEY) is not None


@pytest.mark.parametrize("path", ["/api/emergency-stop", "/api/circuit-breaker/reset"])
def test_undecodable_body_is_a_documented_400(h: Harness, api: Api, path: str) -> None:
    """A JSON body that is not UTF-8 is refused by FastAPI itself with 400 (documented)."""
    r = api.post(path, content=b"\xc3%\xa2", headers={"Authorization": f"Bearer {TOKEN}",
                                                      "Content-Type": "application/json"})
    assert err(r, 400).detail == "There was an error parsing the body"
    assert "400" in api.get("/openapi.json").json()["paths"][path]["post"]["responses"]
    assert h.sync.get(channels.HALT_KEY) is None and h.sync.xlen(channels.ORDERS) == 0


def test_reset_when_not_halted(h: Harness, api: Api) -> None:
    reset = ok(api.post("/api/circuit-breaker/reset", json={"reason": "just in case"}),
               ResetResult)
    assert (reset.was_halted, reset.halted, reset.previous_reason) == (False, False, None)
    audit = ok_list(api.get("/api/audit", params={"action": "halt_reset"}), AuditView)
    assert [a.decision for a in audit] == ["noop"]


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/emergency-stop", {"wait_s": 999}, "body.wait_s"),
    ("/api/emergency-stop", {"wait_s": -1}, "body.wait_s"),
    ("/api/emergency-stop", {"reason": ""}, "body.reason"),
    ("/api/emergency-stop", {"reason": "x", "flatten": False}, "body.flatten"),
    ("/api/circuit-breaker/reset", {"reason": "no"}, "body.reason"),
    ("/api/circuit-breaker/reset", {}, "body.reason"),
    ("/api/circuit-breaker/reset", None, "body"),
])
def test_bad_body_is_422(h: Harness, api: Api, path: str, body: dict[str, Any] | None,
                         field: str) -> None:
    h.sync.set(channels.HALT_KEY, b'{"kind": "kill_switch"}')
    invalid(api.post(path, json=body), field)
    assert h.sync.get(channels.HALT_KEY) == b'{"kind": "kill_switch"}'  # not reset
    assert h.sync.xlen(channels.ORDERS) == 0  # no kill-switch command


def test_external_agents_are_watched_not_operated(tmp_path: Path) -> None:
    """``up --external-agents`` (docker compose): heartbeats only, no process control."""
    with mesh(tmp_path) as h, TestClient(h.app()) as client:
        h.supervisor.external = True
        api = Api(client)
        r = api.get(f"/api/agents/{ETH_AGENT}")
        assert r.status_code == 200
        info = r.json()
        assert info["state"] == "running" and info["pid"] == h.pid(ETH_AGENT)
        for path in (f"/api/agents/{ETH_AGENT}/restart", "/api/agents/stop/ETHBTC",
                     "/api/agents/create?symbol=ETHBTC"):
            r = api.post(path)
            assert r.status_code == 409 and "docker compose" in r.json()["detail"], path
        assert h.supervisor.get(ETH_AGENT).total_restarts == 0
        api.assert_no_secret()
