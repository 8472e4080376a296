"""A TestClient wrapper and assertions for the REST API tests (tests/unit/orchestrator/).

:class:`Api` sends the token unless told otherwise and checks, at the end, that no response
echoed it; ``ok``/``err``/``invalid`` validate a response against its documented body.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
from fastapi.testclient import TestClient
from pydantic import BaseModel

from backend.rest.models import (
    ErrorBody,
)
from tests.support.api_fixtures import (
    TOKEN,
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
