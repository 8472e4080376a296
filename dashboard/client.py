"""A small typed client of the orchestrator's REST API, for the dashboard.

Every call returns a model of :mod:`backend.rest.models` (the same models the server
validates its answers with) or raises:

* :class:`ApiUnavailable` — the API cannot be reached (connection refused, timeout) or
  answers 503 (Redis unreachable);
* :class:`ApiAuthError` — 401, the token is missing or wrong;
* :class:`ApiError` — any other error status, or an answer that does not parse.

Where the client finds the API (first match wins):

* base URL: ``TRADINGMESH_API_URL``, else the file ``<var>/api_url`` that
  ``tradingmesh up`` writes, else ``http://127.0.0.1:8000``;
* token: ``TRADINGMESH_API_TOKEN``, else the file ``<var>/api_token``;

where ``<var>`` is ``TRADINGMESH_VAR_DIR`` or the checkout's ``var/``.  The token is only
ever sent as ``Authorization: Bearer``; it never appears in an error message.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter, ValidationError

from backend.rest.models import (
    AgentAction,
    AgentInfo,
    AgentList,
    ApplyResult,
    AuditView,
    BreakerState,
    ChannelStats,
    EmergencyStopResult,
    EquityPoint,
    FillView,
    Health,
    OptimizerRunAccepted,
    OptimizerRunDetail,
    OptimizerRunView,
    OrderView,
    PnL,
    Positions,
    Ready,
    ResetResult,
    RiskFigures,
    SignalView,
    StrategiesView,
    TradeList,
)

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "http://127.0.0.1:8000"
#: Seconds to connect / to wait for an answer (the dashboard refreshes every 1-2 s).
CONNECT_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 4.0
#: Statuses of orders that are still working at the venue.
OPEN_ORDER_STATUSES = ("NEW", "ACCEPTED", "PARTIALLY_FILLED", "UNKNOWN")


class ApiError(Exception):
    """The API answered with an error (or with something that does not parse).

    Attributes
    ----------
    status
        The HTTP status (None when the answer did not parse).
    detail
        The server's ``detail`` message, or what went wrong.
    """

    def __init__(self, message: str, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail or message


class ApiAuthError(ApiError):
    """401: the bearer token is missing or wrong."""


class ApiUnavailable(ApiError):
    """The API cannot be reached, timed out, or answered 503 (Redis down)."""


class NotFound(ApiError):
    """404: no such agent / symbol (or an endpoint this server does not have)."""


# ---------------------------------------------------------------- configuration
def var_dir() -> Path:
    """``TRADINGMESH_VAR_DIR`` or the checkout's ``var/``."""
    env = os.environ.get("TRADINGMESH_VAR_DIR")
    return Path(env).expanduser() if env else ROOT / "var"


def _read(path: Path) -> str | None:
    try:
        value = path.read_text().strip()
    except OSError:
        return None
    return value or None


def resolve_url() -> str:
    """The API base URL (env, then ``var/api_url``, then the default)."""
    url = os.environ.get("TRADINGMESH_API_URL") or _read(var_dir() / "api_url") or DEFAULT_URL
    return url.rstrip("/")


def resolve_token() -> str | None:
    """The API token (env, then ``var/api_token``), or None."""
    return os.environ.get("TRADINGMESH_API_TOKEN") or _read(var_dir() / "api_token")


# ---------------------------------------------------------------- the client
class ApiClient:
    """Typed calls to the control plane.

    Parameters
    ----------
    base_url
        e.g. ``http://127.0.0.1:8000``.
    token
        Bearer token (None: reads only work if the API has no token).
    transport
        An httpx transport (tests pass an ``httpx.MockTransport``).
    timeout
        httpx timeout; short by default so a refresh never hangs.
    """

    def __init__(
        self, base_url: str, token: str | None = None, *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.has_token = bool(token)
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, transport=transport,
            timeout=timeout or httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        )

    @classmethod
    def from_env(cls) -> ApiClient:
        """A client for :func:`resolve_url` with :func:`resolve_token`."""
        return cls(resolve_url(), resolve_token())

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # ------------------------------------------------------------ plumbing
    def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                 json: Any = None, timeout: float | None = None,
                 accept: tuple[int, ...] = ()) -> Any:
        what = f"{method} {path}"
        params = {k: v for k, v in (params or {}).items() if v is not None}
        kwargs: dict[str, Any] = {"params": params}
        if json is not None:
            kwargs["json"] = json
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S)
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ApiUnavailable(
                f"the API at {self.base_url} did not answer {what} in time "
                f"({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise ApiUnavailable(
                f"the API at {self.base_url} is unreachable ({type(exc).__name__}: {exc})"
            ) from None
        if resp.status_code < 400 or resp.status_code in accept:
            try:
                return resp.json()
            except ValueError:
                raise ApiError(f"{what}: the answer is not JSON", resp.status_code) from None
        detail = _detail(resp)
        code = resp.status_code
        if code == 401:
            hint = ("" if self.has_token else
                    " (no token: set TRADINGMESH_API_TOKEN or create var/api_token)")
            raise ApiAuthError(f"the API refused the token (401): {detail}{hint}", code, detail)
        if code == 503:
            raise ApiUnavailable(f"the API is up but unavailable (503): {detail}", code, detail)
        if code == 404:
            raise NotFound(f"{what}: not found (404): {detail}", code, detail)
        raise ApiError(f"{what} failed ({code}): {detail}", code, detail)

    def _get(self, model: type[T] | Any, path: str, **kw: Any) -> T:
        return _parse(model, self._request("GET", path, **kw), f"GET {path}")

    def _post(self, model: type[T] | Any, path: str, **kw: Any) -> T:
        return _parse(model, self._request("POST", path, **kw), f"POST {path}")

    # ------------------------------------------------------------ reads
    def health(self) -> Health:
        """``GET /api/health`` (no token needed)."""
        return self._get(Health, "/api/health")

    def ready(self) -> Ready:
        """``GET /api/ready``: readiness, also when the server answers 503 with a body."""
        return _parse(Ready, self._request("GET", "/api/ready", accept=(503,)), "GET /api/ready")

    def agents(self) -> AgentList:
        """Every agent."""
        return self._get(AgentList, "/api/agents")

    def agent(self, agent_id: str) -> AgentInfo:
        """One agent by id."""
        return self._get(AgentInfo, f"/api/agents/{_seg(agent_id)}")

    def positions(self) -> Positions:
        """Open positions and account state at the last mark."""
        return self._get(Positions, "/api/positions")

    def orders(self, status: str | None = None, symbol: str | None = None,
               limit: int = 200) -> list[OrderView]:
        """Orders, newest last."""
        return self._get(list[OrderView], "/api/orders",
                         params={"status": status, "symbol": symbol, "limit": limit})

    def open_orders(self, limit: int = 200) -> list[OrderView]:
        """Orders still working (NEW, ACCEPTED, PARTIALLY_FILLED, UNKNOWN), oldest first."""
        out: list[OrderView] = []
        for status in OPEN_ORDER_STATUSES:
            out.extend(self.orders(status=status, limit=limit))
        return sorted(out, key=lambda o: o.created_ts)

    def fills(self, symbol: str | None = None, limit: int = 200) -> list[FillView]:
        """Fills, newest last."""
        return self._get(list[FillView], "/api/fills", params={"symbol": symbol, "limit": limit})

    def trades(self, symbol: str | None = None) -> TradeList:
        """Closed and open round trips."""
        return self._get(TradeList, "/api/trades", params={"symbol": symbol})

    def signals(self, symbol: str | None = None, limit: int = 100) -> list[SignalView]:
        """Signals with their compliance and risk decisions."""
        return self._get(list[SignalView], "/api/signals",
                         params={"symbol": symbol, "limit": limit})

    def equity(self, limit: int = 2000) -> list[EquityPoint]:
        """The equity curve with drawdown."""
        return self._get(list[EquityPoint], "/api/equity", params={"limit": limit})

    def pnl(self) -> PnL:
        """Realised / unrealised P&L."""
        return self._get(PnL, "/api/pnl")

    def breaker(self) -> BreakerState:
        """The halt latch and the daily drawdown against its limit."""
        return self._get(BreakerState, "/api/circuit-breaker")

    def risk(self) -> RiskFigures:
        """Exposure, VaR and CVaR."""
        return self._get(RiskFigures, "/api/risk")

    def audit(self, limit: int = 200, action: str | None = None) -> list[AuditView]:
        """The audit log, newest last."""
        return self._get(list[AuditView], "/api/audit", params={"limit": limit, "action": action})

    def channels(self) -> ChannelStats:
        """Messages per channel, stream lengths, consumer groups."""
        return self._get(ChannelStats, "/api/channels")

    def optimizer_runs(self, limit: int = 100) -> list[OptimizerRunView] | None:
        """Optimizer runs (oldest first), or None from a server without an optimizer API."""
        try:
            return self._get(list[OptimizerRunView], "/api/optimizer/runs",
                             params={"limit": limit})
        except NotFound:
            return None

    def optimizer_run(self, run_id: str) -> OptimizerRunDetail:
        """One run with its folds and every generation's best / mean / std."""
        return self._get(OptimizerRunDetail, f"/api/optimizer/runs/{_seg(run_id)}")

    def strategies(self) -> StrategiesView:
        """The strategy registry and each strategy agent's active parameters."""
        return self._get(StrategiesView, "/api/strategies")

    # ------------------------------------------------------------ actions
    def start(self, agent_id: str) -> AgentAction:
        """Start a stopped agent."""
        return self._post(AgentAction, f"/api/agents/{_seg(agent_id)}/start")

    def stop(self, agent_id: str) -> AgentAction:
        """Stop an agent (it stays stopped)."""
        return self._post(AgentAction, f"/api/agents/{_seg(agent_id)}/stop", timeout=30)

    def restart(self, agent_id: str) -> AgentAction:
        """Restart an agent now."""
        return self._post(AgentAction, f"/api/agents/{_seg(agent_id)}/restart", timeout=30)

    def create_strategy(self, symbol: str) -> AgentAction:
        """Start the strategy agent of ``symbol``."""
        return self._post(AgentAction, "/api/agents/create", params={"symbol": symbol},
                          timeout=30)

    def emergency_stop(self, reason: str, wait_s: float = 10.0) -> EmergencyStopResult:
        """The kill switch: latch HALTED, cancel all orders, flatten all positions."""
        return self._post(EmergencyStopResult, "/api/emergency-stop",
                          json={"reason": reason, "wait_s": wait_s}, timeout=wait_s + 10)

    def reset_breaker(self, reason: str) -> ResetResult:
        """Clear the halt latch (audited reason, at least 3 characters)."""
        return self._post(ResetResult, "/api/circuit-breaker/reset", json={"reason": reason})

    def start_optimizer(self, symbol: str, **fields: Any) -> OptimizerRunAccepted:
        """Queue an optimizer run (``population``, ``generations``, ``walk_forward``,
        ``seed`` ...; omitted or None: the server's configuration)."""
        body = {"symbol": symbol, **{k: v for k, v in fields.items() if v is not None}}
        return self._post(OptimizerRunAccepted, "/api/optimizer/runs", json=body)

    def apply_optimizer(self, run_id: str) -> ApplyResult:
        """Apply a proposed run's parameters to its strategy agent (hot reload, audited)."""
        return self._post(ApplyResult, f"/api/optimizer/runs/{_seg(run_id)}/apply",
                          timeout=30)


def _seg(value: str) -> str:
    return quote(value, safe=":")


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200] or resp.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return str(body)[:200]


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _parse(model: Any, data: Any, what: str) -> Any:
    adapter = _ADAPTERS.get(model)
    if adapter is None:
        adapter = _ADAPTERS[model] = TypeAdapter(model)
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ApiError(
            f"{what}: unexpected answer ({exc.error_count()} problem(s); first at "
            f"{where or 'top'}: {first.get('msg')}); is the dashboard older than the API?"
        ) from None
