"""What the control plane's routes share: the auth dependencies, the control plane, the
request's actor, the documented error responses and the common parameter types.

:func:`~orchestrator.api.app.create_app` puts the control plane, the token and the metrics
renderer on ``app.state``; the dependencies here read them from the request's app, so the
routers (:mod:`orchestrator.api.routes`) are plain module-level ``APIRouter`` objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backend.rest.models import ErrorBody
from orchestrator.api.auth import AuthError, token_matches
from orchestrator.control import ControlPlane

__all__ = [
    "READ",
    "WRITE",
    "Control",
    "Creds",
    "Limit",
    "MetricsText",
    "RunId",
    "SymbolQ",
    "actor",
    "can_read",
    "can_write",
    "errors",
    "get_control",
    "get_metrics_text",
    "reader",
    "writer",
]

_bearer = HTTPBearer(auto_error=False, description="TRADINGMESH_API_TOKEN (or var/api_token)")
Creds = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error responses ``codes`` (and 422), each an :class:`ErrorBody`."""
    return {c: {"model": ErrorBody} for c in (*codes, 422)}


READ = errors(401, 503)
WRITE = errors(400, 401, 503)  # 400: a body FastAPI cannot decode (not UTF-8)
Limit = Annotated[int, Query(ge=1, le=10_000, description="Return the last N rows.")]
RunId = Annotated[str, Path(min_length=1, max_length=128)]
SymbolQ = Annotated[
    str | None,
    Query(min_length=1, max_length=32, description="ETH/BTC, ETHBTC, ETH-BTC or ETH_BTC."),
]


async def can_read(request: Request, creds: Creds) -> None:
    """Reads need the bearer token when one is configured.

    Raises
    ------
    AuthError
        A token is configured and the request does not present it.
    """
    token: str | None = request.app.state.token
    if token and not token_matches(creds.credentials if creds else None, token):
        raise AuthError("missing or invalid bearer token")


async def can_write(request: Request, creds: Creds) -> None:
    """Writes need the bearer token, and are refused when none is configured.

    Raises
    ------
    AuthError
        No token is configured, or the request does not present it.
    """
    token: str | None = request.app.state.token
    if not token:
        raise AuthError(
            "no API token is configured, so changes are refused: set "
            "TRADINGMESH_API_TOKEN or start through scripts/launch.sh (var/api_token)"
        )
    if not token_matches(creds.credentials if creds else None, token):
        raise AuthError("missing or invalid bearer token")


reader = [Depends(can_read)]
writer = [Depends(can_write)]


def get_control(request: Request) -> ControlPlane:
    """The running mesh's control plane (``app.state.control``)."""
    control: ControlPlane = request.app.state.control
    return control


Control = Annotated[ControlPlane, Depends(get_control)]


def get_metrics_text(request: Request) -> Callable[[], Any] | None:
    """The metrics renderer (``app.state.metrics_text``; None: metrics disabled)."""
    metrics_text: Callable[[], Any] | None = request.app.state.metrics_text
    return metrics_text


MetricsText = Annotated[Callable[[], Any] | None, Depends(get_metrics_text)]


def actor(request: Request) -> str:
    """Who made the request, for the audit trail (``api@<client host>``)."""
    host = request.client.host if request.client else "unknown"
    return f"api@{host}"
