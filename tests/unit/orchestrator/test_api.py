"""The REST control plane (orchestrator/api/) with FastAPI's TestClient: reads and auth.

The app runs around the real ControlPlane over a fake mesh (tests/support/api_fixtures.py):
fakeredis, dummy agent processes with heartbeats and a seeded SQLite store.  Operations on
agents, readiness, the kill switch and bad bodies: test_api_control.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend import channels
from backend.messages import OrderStatus
from backend.rest.models import (
    AgentInfo,
    AgentList,
    AuditView,
    EquityPoint,
    FillView,
    Health,
    OrderView,
    PnL,
    RiskFigures,
    SignalView,
    TradeList,
)
from tests.support.api_client import (
    BAD_CREDENTIALS,
    ETH_AGENT,
    READS,
    SYMBOL_FORMS,
    WRITES,
    Api,
    err,
    invalid,
    ok,
    ok_list,
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
