"""Drive a running mesh to make it show whatever it knows: every API route, error
answers, CLI error paths, the dashboard's pages.  Test-only code for
``tests/e2e/test_secret_leaks.py``; what comes back is scanned by :mod:`secretscan`.

Every answer is kept as an :class:`Exchange` (request, status, headers, body).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parents[2]
PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
UNKNOWN = {"agent_id": "no-such-agent", "symbol": "NOPE/XXX", "run_id": "no-such-run"}
#: Extra query strings per GET route: filters, bad values (422), unknown symbols (404).
QUERIES: dict[str, list[dict[str, Any]]] = {
    "/api/orders": [{"status": "FILLED", "symbol": "ETH/BTC", "limit": 5}, {"limit": 0},
                    {"symbol": "NOPE/XXX"}, {"status": "BOGUS"}],
    "/api/fills": [{"symbol": "ETHBTC", "limit": 3}, {"limit": "x"}],
    "/api/signals": [{"symbol": "ETH-BTC", "limit": 3}],
    "/api/trades": [{"symbol": "ETH_BTC"}],
    "/api/equity": [{"limit": 10}],
    "/api/audit": [{"action": "emergency_stop"}, {"limit": 100_000}],
    "/api/report": [{"since": "2000-01-01"}, {"since": "not-a-date"}],
    "/api/optimizer/runs": [{"limit": 5}],
}


@dataclass
class Exchange:
    """One HTTP request and its answer (``status`` None: no answer, ``error`` says why)."""

    label: str
    method: str
    url: str
    status: int | None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    error: str = ""

    def raw(self) -> bytes:
        """Status line, headers and body as bytes (what a scanner should look at)."""
        head = "\n".join(f"{k}: {v}" for k, v in self.headers)
        return f"{self.status} {self.error}\n{head}\n\n".encode() + self.body


@dataclass
class Sweep:
    """What :func:`sweep_api` did: every exchange and the GET routes it covered."""

    exchanges: list[Exchange] = field(default_factory=list)
    get_routes: set[str] = field(default_factory=set)  # from /openapi.json
    post_routes: set[str] = field(default_factory=set)
    covered: dict[str, set[int | None]] = field(default_factory=dict)  # route -> statuses


class Api:
    """A recording HTTP client of the control plane (token sent unless told not to)."""

    def __init__(self, base: str, token: str, record: Sweep) -> None:
        self.base = base.rstrip("/")
        self.token = token
        self.record = record
        self.http = httpx.Client(timeout=30.0)

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def call(self, label: str, method: str, path: str, *, token: str | None | bool = True,
             route: str | None = None, **kw: Any) -> Exchange:
        """Send one request; ``token=True``: the right token, ``None``/``False``: none,
        a string: that token.  ``route``: the schema path it exercises."""
        headers = dict(kw.pop("headers", {}))
        bearer = self.token if token is True else (token or None)
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        url = self.base + path
        try:
            resp = self.http.request(method, url, headers=headers, **kw)
            ex = Exchange(label, method, url, resp.status_code,
                          list(resp.headers.multi_items()), resp.content)
        except httpx.HTTPError as exc:
            ex = Exchange(label, method, url, None, error=type(exc).__name__)
        self.record.exchanges.append(ex)
        if route is not None and token is True:
            self.record.covered.setdefault(route, set()).add(ex.status)
        return ex

    def json(self, path: str) -> Any:
        """GET ``path`` with the token; the decoded JSON (asserts 200)."""
        ex = self.call(f"GET {path}", "GET", path)
        assert ex.status == 200, (path, ex.status, ex.body[:300])
        return httpx.Response(200, content=ex.body).json()


def _fill(route: str, values: dict[str, list[str]]) -> list[str]:
    """Every concrete path of ``route``: each path parameter takes each of its values."""
    paths = [route]
    for name in PARAM.findall(route):
        if name not in values:
            raise AssertionError(f"the sweep does not know how to fill {{{name}}} of {route}; "
                                 "add real and unknown values for it to the test")
        one = re.compile(r"\{" + re.escape(name) + r"(?::[^}]*)?\}")
        paths = [one.sub(lambda _m, v=v: quote(v, safe=""), p, count=1)
                 for p in paths for v in values[name]]
    return paths


def sweep_api(api: Api, symbols: list[str], *, full: bool = True) -> None:
    """Call every GET route of ``/openapi.json`` with real ids and unknown ids, with the
    token, without it and with a wrong one; with ``full`` also every POST route with a
    wrong token, no token, bad bodies (422/400) and unknown ids (404)."""
    rec = api.record
    schema_ex = api.call("openapi", "GET", "/openapi.json", token=False)
    assert schema_ex.status == 200, schema_ex.status
    schema = httpx.Response(200, content=schema_ex.body).json()
    for path, ops in schema["paths"].items():
        if "get" in ops:
            rec.get_routes.add(path)
        if "post" in ops:
            rec.post_routes.add(path)
    for extra in ("/docs", "/redoc", "/metrics"):
        api.call(f"GET {extra}", "GET", extra)
        api.call(f"GET {extra} no token", "GET", extra, token=False)
    agents = [a["agent_id"] for a in api.json("/api/agents")["agents"]]
    runs = [r["run_id"] for r in api.json("/api/optimizer/runs")]
    values = {
        "agent_id": [*agents, UNKNOWN["agent_id"]],
        "symbol": [*symbols, *(s.replace("/", "") for s in symbols), UNKNOWN["symbol"]],
        "run_id": [*runs, UNKNOWN["run_id"]],
    }
    for route in sorted(rec.get_routes):
        for path in _fill(route, values):
            api.call(f"GET {route}", "GET", path, route=route)
            if full:
                api.call(f"GET {route} no token", "GET", path, token=False)
                api.call(f"GET {route} wrong token", "GET", path, token="wrong-token-123456")
        for query in QUERIES.get(route, []):
            api.call(f"GET {route} {query}", "GET", route, params=query, route=route)
    if full:
        _post_errors(api, values)


def _post_errors(api: Api, values: dict[str, list[str]]) -> None:
    unknown = {k: [v] for k, v in UNKNOWN.items()}
    for route in sorted(api.record.post_routes):
        (path,) = _fill(route, unknown)
        api.call(f"POST {route} no token", "POST", path, token=False, json={})
        api.call(f"POST {route} wrong token", "POST", path, token="wrong-token-123456",
                 json={})
        # bad bodies are refused before the route acts (422; 400 for non-UTF-8)
        for label, body in (("invalid json", b"{"), ("wrong types", b'{"reason": 5, '
                            b'"wait_s": "x", "symbol": [], "unexpected": true}'),
                            ("not utf-8", b'{"reason": "\xff\xfe"}')):
            api.call(f"POST {route} {label}", "POST", path, content=body,
                     headers={"Content-Type": "application/json"})
        if PARAM.search(route):  # an unknown agent / symbol / run: 404
            api.call(f"POST {route} unknown id", "POST", path)
    api.call("POST create unknown symbol", "POST", "/api/agents/create",
             params={"symbol": UNKNOWN["symbol"]})
    api.call("POST optimizer unknown symbol", "POST", "/api/optimizer/runs",
             json={"symbol": UNKNOWN["symbol"]})


# ---------------------------------------------------------------------- command line
@dataclass
class CliRun:
    """A ``tradingmesh`` command's exit code and output."""

    label: str
    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes


def run_cli(label: str, argv: list[str], env: dict[str, str], timeout: float = 90) -> CliRun:
    """Run ``python -m orchestrator.cli ARGV`` with ``env``; capture everything."""
    proc = subprocess.run(  # noqa: S603 - our interpreter and module
        [sys.executable, "-m", "orchestrator.cli", *argv], cwd=ROOT, env=env,
        capture_output=True, timeout=timeout, check=False,
    )
    return CliRun(label, argv, proc.returncode, proc.stdout, proc.stderr)


def command_lines(pid: int) -> list[tuple[str, bytes]]:
    """``(description, argv bytes)`` of ``pid`` and every descendant process."""
    import psutil

    out: list[tuple[str, bytes]] = []
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return out
    for p in procs:
        try:
            argv = p.cmdline()
        except psutil.Error:
            continue
        out.append((f"cmdline of pid {p.pid} ({' '.join(argv[:4])[:80]})",
                    "\0".join(argv).encode()))
    return out


# ---------------------------------------------------------------------- dashboard
DASHBOARD_PAGES = ["", "trading", "pipeline", "risk", "optimizer", "channels"]
CHROMIUM = Path("/usr/bin/chromium")


def dashboard_http(base: str, api: Api) -> None:
    """The dashboard server's own HTTP answers (recorded in ``api.record``)."""
    for path in ("/", "/_stcore/health", "/_stcore/host-config", "/_stcore/metrics"):
        url = base.rstrip("/") + path
        try:
            resp = api.http.get(url)
            ex = Exchange(f"dashboard {path}", "GET", url, resp.status_code,
                          list(resp.headers.multi_items()), resp.content)
        except httpx.HTTPError as exc:
            ex = Exchange(f"dashboard {path}", "GET", url, None, error=type(exc).__name__)
        api.record.exchanges.append(ex)


def browser_unavailable() -> str | None:
    """Why the dashboard pages cannot be rendered here (None: they can)."""
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return None


def dashboard_pages(base: str, pages: Iterable[str] = DASHBOARD_PAGES) -> dict[str, bytes]:
    """Render every page in headless Chromium once its data is in; page -> HTML + text."""
    from playwright.sync_api import expect, sync_playwright

    out: dict[str, bytes] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM),
                                     args=["--no-sandbox", "--headless"])
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            for name in pages:
                page.goto(f"{base.rstrip('/')}/{name}")
                status = page.locator(".st-key-status_bar")
                expect(status).to_contain_text("updated", timeout=60_000)
                expect(status).not_to_have_text(status.inner_text(), timeout=30_000)
                out[name or "agents"] = (page.content() + "\n" + page.inner_text("body")
                                         ).encode()
        finally:
            browser.close()
    return out


def base_env(**extra: str) -> dict[str, str]:
    """Our environment without anything that would point a mesh elsewhere, plus
    ``extra``."""
    env = dict(os.environ)
    for k in ("REDIS_URL", "TRADINGMESH_REDIS_URL", "DATABASE_URL", "TRADINGMESH_DATABASE_URL",
              "TRADINGMESH_SETTINGS_FILE", "TRADINGMESH_CONFIG", "TRADINGMESH_FAILPOINTS",
              "TRADINGMESH_API_TOKEN", "TRADINGMESH_API_URL", "TRADINGMESH_TEST_BROKER",
              "TRADINGMESH_CCXT_API_KEY", "TRADINGMESH_CCXT_SECRET",
              "TRADINGMESH_CCXT_PASSWORD", "TRADINGMESH_MT5_PASSWORD",
              "TRADINGMESH_REDIS_CREDENTIALS"):
        env.pop(k, None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env
