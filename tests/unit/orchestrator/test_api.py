"""The REST control plane (orchestrator/api/) with FastAPI's TestClient.

The app runs around the real ControlPlane over a fake mesh (tests/support/api_fixtures.py):
fakeredis, dummy agent processes with heartbeats and a seeded SQLite store.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from backend import channels
from backend.bus import DATA_FIELD
from backend.mesh.halt import HALT_STATE
from backend.messages import AgentState, CancelAllOrders, OrderStatus, decode
from backend.rest.models import (
    AgentAction,
    AgentInfo,
    AgentList,
    AuditView,
    BreakerState,
    ChannelStats,
    EmergencyStopResult,
    EquityPoint,
    ErrorBody,
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
from tests.support.api_fixtures import (
    AGENT_IDS,
    INITIAL_CASH,
    N_MARKS,
    STALE_AGENT,
    SYMBOLS,
    TOKEN,
    Harness,
    mesh,
)

ACTOR = "api@testclient"  # TestClient's client host
SYMBOL_FORMS = ["ETH%2FBTC", "ETH/BTC", "ETHBTC", "ETH-BTC", "eth_btc"]
ETH_AGENT = "strategy:ETHBTC"

READS = [
    "/api/agents", "/api/agents/status", "/api/agents/risk", "/api/agents/ETHBTC/status",
    "/api/orders", "/api/fills", "/api/trades", "/api/signals", "/api/equity", "/api/pnl",
    "/api/positions", "/api/circuit-breaker", "/api/risk", "/api/audit", "/api/channels",
    "/api/ready", "/metrics",
]
WRITES: list[tuple[str, dict[str, Any] | None]] = [
    ("/api/agents/create?symbol=ETHBTC", None),
    ("/api/agents/stop/ETHBTC", None),
    ("/api/agents/restart/ETHBTC", None),
    ("/api/agents/risk/start", None),
    ("/api/agents/risk/stop", None),
    ("/api/agents/risk/restart", None),
    ("/api/emergency-stop", {"reason": "test", "wait_s": 0}),
    ("/api/circuit-breaker/reset", {"reason": "test reset"}),
]
# A wrong token that *contains* the real one: an echo of it would leak the real token.
BAD_CREDENTIALS: list[dict[str, str]] = [
    {},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": "Bearer "},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},
]


class Api:
    """TestClient wrapper: sends the token unless told otherwise; keeps every response."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.responses: list[httpx.Response] = []

    def _headers(self, auth: str | None, headers: dict[str, str] | None) -> dict[str, str]:
        if headers is not None:
            return headers
        return {} if auth is None else {"Authorization": f"Bearer {auth}"}

    def get(self, path: str, *, auth: str | None = TOKEN, headers: dict[str, str] | None = None,
            **kw: Any) -> httpx.Response:
        r = self.client.get(path, headers=self._headers(auth, headers), **kw)
        self.responses.append(r)
        return r

    def post(self, path: str, *, auth: str | None = TOKEN,
             headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        r = self.client.post(path, headers=self._headers(auth, headers), **kw)
        self.responses.append(r)
        return r

    def assert_no_secret(self) -> None:
        assert self.responses, "no responses collected"
        for r in self.responses:
            assert TOKEN not in r.text, f"token leaked by {r.request.method} {r.request.url}"
            assert all(TOKEN not in v for v in r.headers.values())


def ok(r: httpx.Response, model: type[BaseModel], status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return model.model_validate(r.json())


def ok_list(r: httpx.Response, model: type[BaseModel]) -> list[Any]:
    assert r.status_code == 200, r.text
    return [model.model_validate(x) for x in r.json()]


def err(r: httpx.Response, status: int) -> ErrorBody:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    return ErrorBody.model_validate(r.json())


def invalid(r: httpx.Response, field: str) -> ErrorBody:
    body = err(r, 422)
    assert body.detail.startswith("invalid request: ")
    assert body.errors, body
    assert field in [e.field for e in body.errors], body
    assert field in body.detail
    return body


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    with mesh(tmp_path) as harness:
        yield harness


@pytest.fixture
def api(h: Harness) -> Iterator[Api]:
    with TestClient(h.app()) as client:
        a = Api(client)
        yield a
    a.assert_no_secret()


@pytest.fixture
def open_api(h: Harness) -> Iterator[Api]:
    """The app with no token configured."""
    with TestClient(h.app(token=None)) as client:
        a = Api(client)
        yield a
    a.assert_no_secret()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Harness, Api]]:
    """One mesh and client for the tests that change nothing (:class:`TestReadOnly`)."""
    with mesh(tmp_path_factory.mktemp("shared")) as harness, \
            TestClient(harness.app()) as client:
        a = Api(client)
        yield harness, a
    a.assert_no_secret()


# ====================================================================== read only
class TestReadOnly:
    """Tests that change nothing share one mesh and one client."""

    @pytest.fixture
    def h(self, shared: tuple[Harness, Api]) -> Harness:
        return shared[0]

    @pytest.fixture
    def api(self, shared: tuple[Harness, Api]) -> Api:
        return shared[1]

    def test_health_is_open(self, api: Api) -> None:
        health = ok(api.get("/api/health", auth=None), Health)
        assert health.status == "ok"
        assert health.uptime_s >= 0
        assert ok(api.get("/api/health", auth="wrong"), Health).status == "ok"

    @pytest.mark.parametrize("path", READS)
    def test_reads_need_the_token(self, api: Api, path: str) -> None:
        for headers in BAD_CREDENTIALS:
            r = api.get(path, headers=headers)
            body = err(r, 401)
            assert "bearer token" in body.detail
            assert r.headers["www-authenticate"] == "Bearer"
        assert api.get(path).status_code == 200

    def test_the_token_never_appears_in_responses(self, api: Api) -> None:
        """Error paths that could echo the configured or the presented token (401/404/409/422).

        (A token the client itself puts in a path or query may be echoed in a 404/422 like
        any other input: that is not a leak, so the requests here carry it only in headers.)
        """
        start = len(api.responses)
        api.get("/api/agents", auth=TOKEN + "x")
        api.post("/api/agents/stop/NOPE", auth=TOKEN + "x")
        api.post("/api/agents/stop/NOPE")
        api.get("/api/agents/nope")
        api.post("/api/agents/create", params={"symbol": "ETHBTC"})
        api.get("/api/orders", params={"status": "BOGUS"})
        api.post("/api/circuit-breaker/reset", json={"reason": "x", "extra": 1})
        api.post("/api/emergency-stop", json={"reason": "x", "wait_s": "soon"})
        api.get("/openapi.json")
        codes = sorted({r.status_code for r in api.responses[start:]})
        assert codes == [200, 401, 404, 409, 422]
        api.assert_no_secret()

    def test_list_agents(self, h: Harness, api: Api) -> None:
        h.beat_all()  # fresh heartbeats: the shared mesh may be older than the TTL by now
        listing = ok(api.get("/api/agents"), AgentList)
        assert [a.agent_id for a in listing.agents] == AGENT_IDS
        for a in listing.agents:
            assert a.state == "running"
            assert a.desired == "running"
            assert a.pid == h.pid(a.agent_id) and a.pid is not None
            assert a.uptime_s is not None and a.uptime_s >= 0
            assert a.messages_in == 7 and a.messages_out == 3 and a.errors == 1
            assert a.stale is (a.agent_id == STALE_AGENT)
        by_id = {a.agent_id: a for a in listing.agents}
        assert by_id[STALE_AGENT].heartbeat_age_s > h.settings.orchestrator.heartbeat_ttl_s
        assert by_id["risk"].heartbeat_age_s < h.settings.orchestrator.heartbeat_ttl_s
        assert by_id[ETH_AGENT].role == "strategy" and by_id[ETH_AGENT].symbol == "ETH/BTC"
        fixed = ok(api.get("/api/agents/status"), AgentList)
        assert [(a.agent_id, a.pid) for a in fixed.agents] == \
            [(a.agent_id, a.pid) for a in listing.agents]

    def test_get_agent_by_id(self, h: Harness, api: Api) -> None:
        info = ok(api.get("/api/agents/risk"), AgentInfo)
        assert (info.agent_id, info.role, info.pid) == ("risk", "risk", h.pid("risk"))
        info = ok(api.get("/api/agents/strategy:LTCBTC"), AgentInfo)
        assert (info.symbol, info.pid) == ("LTC/BTC", h.pid("strategy:LTCBTC"))

    def test_unknown_agent_is_404(self, api: Api) -> None:
        for r in (api.get("/api/agents/nope"), api.post("/api/agents/nope/stop"),
                  api.post("/api/agents/nope/start"), api.post("/api/agents/nope/restart")):
            detail = err(r, 404).detail
            assert "unknown agent 'nope'" in detail
            assert "market_data" in detail and "execution" in detail

    @pytest.mark.parametrize("form", SYMBOL_FORMS)
    def test_symbol_status_accepts_every_form(self, h: Harness, api: Api, form: str) -> None:
        info = ok(api.get(f"/api/agents/{form}/status"), AgentInfo)
        assert (info.agent_id, info.symbol, info.pid) == (ETH_AGENT, "ETH/BTC", h.pid(ETH_AGENT))

    def test_unknown_symbol_is_404_naming_the_known_ones(self, api: Api) -> None:
        for r in (api.get("/api/agents/XRP%2FBTC/status"), api.post("/api/agents/stop/XRPBTC"),
                  api.post("/api/agents/restart/XRP-BTC"),
                  api.post("/api/agents/create", params={"symbol": "XRP/BTC"}),
                  api.get("/api/orders", params={"symbol": "XRPBTC"}),
                  api.get("/api/fills", params={"symbol": "XRPBTC"}),
                  api.get("/api/trades", params={"symbol": "XRPBTC"}),
                  api.get("/api/signals", params={"symbol": "XRPBTC"})):
            detail = err(r, 404).detail
            assert "unknown symbol" in detail and "XRP" in detail
            assert all(s in detail for s in SYMBOLS), detail

    def test_orders(self, h: Harness, api: Api) -> None:
        orders = ok_list(api.get("/api/orders"), OrderView)
        assert [o.client_order_id for o in orders] == list(h.seed.orders.values())
        by_coid = {o.client_order_id: o for o in orders}
        eth = by_coid[h.seed.orders["eth_buy"]]
        sig = h.seed.signals["eth_buy"]
        assert (eth.symbol, eth.side, eth.quantity, eth.status, eth.signal_id) == \
            ("ETH/BTC", "BUY", 1.0, "FILLED", sig.id)
        assert by_coid[h.seed.orders["ada_buy"]].status == "ACCEPTED"

        filled = ok_list(api.get("/api/orders", params={"status": "FILLED"}), OrderView)
        assert {o.client_order_id for o in filled} == \
            {h.seed.orders[k] for k in ("eth_buy", "eth_sell", "ltc_buy")}
        for form in ("ETH/BTC", "ETHBTC", "ETH-BTC", "eth_btc"):
            eth_orders = ok_list(api.get("/api/orders", params={"symbol": form}), OrderView)
            assert [o.client_order_id for o in eth_orders] == \
                [h.seed.orders["eth_buy"], h.seed.orders["eth_sell"]]
        both = ok_list(api.get("/api/orders", params={"status": "REJECTED", "symbol": "DASHBTC"}),
                       OrderView)
        assert [o.client_order_id for o in both] == [h.seed.orders["dash_rej"]]
        assert ok_list(api.get("/api/orders", params={"status": "CANCELLED"}), OrderView) == []
        last = ok_list(api.get("/api/orders", params={"limit": 2}), OrderView)
        assert [o.client_order_id for o in last] == list(h.seed.orders.values())[-2:]

    @pytest.mark.parametrize(("path", "params", "field"), [
        ("/api/orders", {"limit": 0}, "query.limit"),
        ("/api/orders", {"limit": 10_001}, "query.limit"),
        ("/api/orders", {"limit": "many"}, "query.limit"),
        ("/api/orders", {"status": "BOGUS"}, "query.status"),
        ("/api/orders", {"symbol": ""}, "query.symbol"),
        ("/api/fills", {"limit": 0}, "query.limit"),
        ("/api/signals", {"limit": -1}, "query.limit"),
        ("/api/equity", {"limit": 0}, "query.limit"),
        ("/api/audit", {"limit": 0}, "query.limit"),
        ("/api/audit", {"action": "x" * 65}, "query.action"),
        ("/api/trades", {"symbol": "X" * 33}, "query.symbol"),
    ])
    def test_bad_query_is_422(self, api: Api, path: str, params: dict[str, Any],
                              field: str) -> None:
        invalid(api.get(path, params=params), field)

    def test_bad_status_names_the_allowed_values(self, api: Api) -> None:
        body = invalid(api.get("/api/orders", params={"status": "BOGUS"}), "query.status")
        assert all(s.value in body.detail for s in (OrderStatus.FILLED, OrderStatus.ACCEPTED))

    def test_fills(self, h: Harness, api: Api) -> None:
        fills = ok_list(api.get("/api/fills"), FillView)
        assert [f.fill_id for f in fills] == h.seed.fills
        assert fills[1].realized_pnl == pytest.approx(0.005)
        assert fills[1].exit_reason == "signal"
        ltc = ok_list(api.get("/api/fills", params={"symbol": "ltc-btc"}), FillView)
        assert [(f.symbol, f.quantity) for f in ltc] == [("LTC/BTC", 2.0)]
        assert [f.fill_id for f in ok_list(api.get("/api/fills?limit=1"), FillView)] == \
            h.seed.fills[-1:]

    def test_trades(self, api: Api) -> None:
        trades = ok(api.get("/api/trades"), TradeList)
        assert [(t.symbol, t.side, t.exit_price) for t in trades.closed] == \
            [("ETH/BTC", "long", 0.055)]
        assert trades.closed[0].gross_pnl == pytest.approx(0.005)
        assert [(t.symbol, t.exit_price) for t in trades.open] == [("LTC/BTC", None)]
        eth = ok(api.get("/api/trades", params={"symbol": "ETH/BTC"}), TradeList)
        assert (len(eth.closed), eth.open) == (1, [])
        ada = ok(api.get("/api/trades", params={"symbol": "ADABTC"}), TradeList)
        assert (ada.closed, ada.open) == ([], [])

    def test_signals_with_decisions(self, h: Harness, api: Api) -> None:
        sigs = {s.id: s for s in ok_list(api.get("/api/signals"), SignalView)}
        assert set(sigs) == {s.id for s in h.seed.signals.values()}
        ordered = sigs[h.seed.signals["eth_buy"].id]
        assert (ordered.outcome, ordered.client_order_id) == ("ordered", h.seed.orders["eth_buy"])
        assert ordered.compliance is not None and ordered.compliance.approved
        assert ordered.risk is not None and ordered.risk.quantity == 1.0
        by_risk = sigs[h.seed.signals["dash_low"].id]
        assert (by_risk.outcome, by_risk.rejected_by) == ("rejected", "risk")
        assert by_risk.risk is not None
        assert (by_risk.risk.rule, by_risk.risk.reason) == \
            ("min_confidence", "confidence 0.50 < 0.85")
        by_comp = sigs[h.seed.signals["ltc_comp"].id]
        assert (by_comp.outcome, by_comp.rejected_by, by_comp.risk) == \
            ("rejected", "compliance", None)
        assert by_comp.compliance is not None and by_comp.compliance.rule == "max_trades_per_day"
        dash = ok_list(api.get("/api/signals", params={"symbol": "DASH_BTC"}), SignalView)
        assert {s.symbol for s in dash} == {"DASH/BTC"} and len(dash) == 2
        assert len(ok_list(api.get("/api/signals?limit=3"), SignalView)) == 3

    def test_equity(self, h: Harness, api: Api) -> None:
        points = ok_list(api.get("/api/equity"), EquityPoint)
        assert len(points) == N_MARKS
        assert points[-1].equity == pytest.approx(h.seed.mark.equity)
        assert points[0].drawdown == 0.0
        assert max(p.drawdown for p in points) > 0
        peak = max(p.equity for p in points)
        assert points[-1].drawdown == pytest.approx((peak - points[-1].equity) / peak)
        tail = ok_list(api.get("/api/equity", params={"limit": 5}), EquityPoint)
        assert [p.bar_seq for p in tail] == [p.bar_seq for p in points[-5:]]

    def test_pnl(self, h: Harness, api: Api) -> None:
        pnl = ok(api.get("/api/pnl"), PnL)
        mark = h.seed.mark
        assert pnl.initial_cash == INITIAL_CASH
        assert pnl.equity == pytest.approx(mark.equity)
        assert pnl.total == pytest.approx(mark.equity - INITIAL_CASH)
        fees = 0.05e-3 + 0.055e-3 + 0.004e-3
        assert pnl.fees == pytest.approx(fees)
        assert pnl.by_symbol["ETH/BTC"].trades == 1
        assert pnl.by_symbol["ETH/BTC"].realized == pytest.approx(0.005 - 0.05e-3 - 0.055e-3)
        assert pnl.by_symbol["LTC/BTC"].unrealized == pytest.approx(2.0 * (0.0021 - 0.002))
        assert pnl.unrealized == pytest.approx(2.0 * 0.0001)

    def test_risk(self, api: Api) -> None:
        risk = ok(api.get("/api/risk"), RiskFigures)
        assert risk.observations == N_MARKS - 1
        assert risk.exposure == pytest.approx(0.0042)
        assert risk.by_symbol["LTC/BTC"].quantity == 2.0
        assert {(e.method, e.level) for e in risk.estimates} >= {("historical", 0.95),
                                                                  ("parametric", 0.99)}
        hist95 = next(e for e in risk.estimates if (e.method, e.level) == ("historical", 0.95))
        assert hist95.var == pytest.approx(0.004, rel=0.05)  # the curve's losing bars: -0.4%
        assert hist95.cvar is not None and hist95.cvar >= hist95.var

    def test_audit(self, h: Harness, api: Api) -> None:
        rows = ok_list(api.get("/api/audit"), AuditView)
        assert [r.id for r in rows] == [h.seed.audit_id]
        assert (rows[0].actor, rows[0].action, rows[0].decision) == ("risk", "reject", "rejected")
        assert ok_list(api.get("/api/audit", params={"action": "emergency_stop"}), AuditView) == []


# ====================================================================== auth (writes)
@pytest.mark.parametrize(("path", "body"), WRITES)
def test_writes_need_the_token(h: Harness, api: Api, path: str,
                               body: dict[str, Any] | None) -> None:
    pids = {a: h.pid(a) for a in AGENT_IDS}
    h.sync.set(channels.HALT_KEY, b'{"kind": "kill_switch", "reason": "keep me"}')
    for headers in BAD_CREDENTIALS:
        r = api.post(path, headers=headers, json=body)
        assert "bearer token" in err(r, 401).detail
        assert r.headers["www-authenticate"] == "Bearer"
    # nothing happened
    assert {a: h.pid(a) for a in AGENT_IDS} == pids
    assert h.sync.get(channels.HALT_KEY) == b'{"kind": "kill_switch", "reason": "keep me"}'
    assert h.sync.xlen(channels.ORDERS) == 0
    assert h.store.audit(action="emergency_stop") == []
    assert h.store.audit(action="halt_reset") == []


def test_without_a_token_reads_are_open_and_writes_refused(h: Harness, open_api: Api) -> None:
    listing = ok(open_api.get("/api/agents", auth=None), AgentList)
    assert len(listing.agents) == len(AGENT_IDS)
    assert ok_list(open_api.get("/api/orders", auth=None), OrderView)
    assert open_api.get("/metrics", auth=None).status_code == 200
    pid = h.pid(ETH_AGENT)
    for path, body in WRITES:
        for auth in (None, TOKEN):  # a presented token does not help: none is configured
            detail = err(open_api.post(path, auth=auth, json=body), 401).detail
            assert "TRADINGMESH_API_TOKEN" in detail
    assert h.pid(ETH_AGENT) == pid
    assert h.sync.get(channels.HALT_KEY) is None
    assert h.sync.xlen(channels.ORDERS) == 0


# ====================================================================== agents
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
