"""Exchange simulator admin API (``/_sim/...``) through :class:`SimAdmin`: state, faults
(armed, hit, cleared), the market clock, orders by hand, the request log, the token and
the loopback-only rule."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from unittest import mock

import httpx
import pytest
from aiohttp.test_utils import make_mocked_request

from backend.exchange_sim import ExchangeSim, SimAdmin, SimAdminError
from backend.exchange_sim.admin_api import AdminApi

SYMBOL = "ETH/BTC"


@pytest.fixture
def sim() -> Iterator[ExchangeSim]:
    with ExchangeSim(symbols=[SYMBOL], admin_token="tok-123") as s:
        yield s


@pytest.fixture
def admin(sim: ExchangeSim) -> Iterator[SimAdmin]:
    with SimAdmin(sim.base_url, token="tok-123") as a:
        yield a


def test_state_orders_by_hand_and_clock(sim: ExchangeSim, admin: SimAdmin) -> None:
    first = admin.state()
    assert first.clock_ms == sim.book.clock_ms()
    assert first.balances["BTC"].free == 1 and first.orders == [] and first.trades == []

    resting = admin.add_order(SYMBOL, "BUY", "1.000", "0.050000", "web_limit1")
    traded = admin.manual_trade(SYMBOL, "BUY", "0.500")
    assert resting.status == "NEW" and resting.type == "LIMIT"
    assert resting.price == Decimal("0.05") and resting.client_order_id == "web_limit1"
    assert traded.status == "FILLED" and traded.client_order_id.startswith("web_")
    with pytest.raises(SimAdminError, match="insufficient balance") as err:
        admin.manual_trade(SYMBOL, "BUY", "100.000")
    assert err.value.code == -2010 and err.value.status == 400

    assert admin.advance(3) == first.clock_ms + 3 * 300_000
    now = admin.state()
    assert now.clock_ms == sim.book.clock_ms() == first.clock_ms + 900_000
    assert [o.order_id for o in now.orders] == [o.order_id for o in sim.orders()]
    assert now.order("web_limit1") == resting
    (trade,) = now.trades
    assert trade.order_id == traded.order_id and trade.qty == Decimal("0.5")
    assert now.balances["ETH"].free == Decimal("0.5")
    assert now.balances["BTC"].locked == Decimal("0.05")


def test_faults_through_the_admin_api_and_the_request_log(sim: ExchangeSim,
                                                          admin: SimAdmin) -> None:
    fault = admin.inject("503", "GET", "/api/v3/time", count=2)
    assert fault.kind == "503" and fault.count == 2 and fault.fault_id >= 1
    rate = admin.inject("500", "*", "/api/v3/ping", rate=1.0)
    assert [f.fault_id for f in admin.state().faults] == [fault.fault_id, rate.fault_id]

    codes = [httpx.get(f"{sim.base_url}/api/v3/time").status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    assert httpx.get(f"{sim.base_url}/api/v3/ping").status_code == 500
    assert admin.clear_faults() == 1  # the counted one is used up
    assert httpx.get(f"{sim.base_url}/api/v3/ping").status_code == 200

    log = admin.requests()
    assert [(r.path, r.outcome, r.fault, r.status) for r in log] == [
        ("/api/v3/time", "faulted", "503", 503), ("/api/v3/time", "faulted", "503", 503),
        ("/api/v3/time", "applied", None, 200), ("/api/v3/ping", "faulted", "500", 500),
        ("/api/v3/ping", "applied", None, 200)]
    assert [r.path for r in admin.requests(since=3)] == ["/api/v3/ping", "/api/v3/ping"]

    with pytest.raises(SimAdminError, match="unknown fault") as err:
        admin.inject("teapot")
    assert err.value.status == 400


def test_signed_request_is_logged_without_its_signature(sim: ExchangeSim,
                                                        admin: SimAdmin) -> None:
    r = httpx.get(f"{sim.base_url}/api/v3/account",
                  params={"timestamp": "1", "signature": "00"},
                  headers={"X-MBX-APIKEY": sim.api_key})
    assert r.status_code == 400 and r.json()["code"] == -1022
    (req,) = admin.requests()
    assert req.params == {"timestamp": "1"} and req.error == -1022
    assert req.outcome == "rejected"


def test_token_is_required_when_set(sim: ExchangeSim) -> None:
    for token in (None, "wrong"):
        with SimAdmin(sim.base_url, token=token) as a, pytest.raises(SimAdminError) as err:
            a.state()
        assert err.value.status == 401
    r = httpx.post(f"{sim.base_url}/_sim/clock", json={"advance_bars": "x"},
                   headers={"X-Sim-Token": "tok-123"})
    assert r.status_code == 400 and "advance_bars" in r.json()["error"]


def test_admin_api_refuses_clients_off_loopback(sim: ExchangeSim) -> None:
    api = AdminApi(sim.book, sim.faults, sim.requests, None)

    async def status_for(host: str) -> int:
        transport = mock.Mock()
        transport.get_extra_info.side_effect = lambda key: (host, 5555) if key == "peername" \
            else None
        request = make_mocked_request("GET", "/_sim/state", transport=transport)
        return (await api.handle(request)).status

    assert asyncio.run(status_for("10.1.2.3")) == 403
    assert asyncio.run(status_for("127.0.0.1")) == 200
