"""Bearer-token authentication of the REST API and where the token comes from.

* The token is ``TRADINGMESH_API_TOKEN`` (or ``api_token`` in the config); else the
  file ``<var_dir>/api_token`` (mode 0600) that ``scripts/launch.sh`` /
  :func:`ensure_token_file` generate on first run.
* With a token, every endpoint except ``GET /api/health`` needs
  ``Authorization: Bearer <token>`` (compared in constant time).  Without one, read
  endpoints are open, mutating endpoints answer 401, and the API may only bind to a
  loopback address (:func:`check_bind`).
* The token never appears in logs, error messages or responses.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import stat
from pathlib import Path

from backend.settings import Settings

TOKEN_FILE = "api_token"


class BindRefused(ValueError):
    """The API would listen beyond loopback without a token."""


class AuthError(Exception):
    """401 with a message that never contains the token."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def token_path(settings: Settings) -> Path:
    """``<var_dir>/api_token``."""
    return settings.var_dir / TOKEN_FILE


def resolve_token(settings: Settings) -> str | None:
    """The API token in force: settings/env first, then the token file; None if neither."""
    if settings.api_token is not None and settings.api_token.get_secret_value():
        return settings.api_token.get_secret_value()
    p = token_path(settings)
    if p.is_file():
        value = p.read_text().strip()
        return value or None
    return None


def ensure_token_file(settings: Settings) -> tuple[Path, bool]:
    """Create ``<var_dir>/api_token`` (0600, 256 random bits) if missing.

    Returns ``(path, created)``.  Does nothing when the file exists.
    """
    p = token_path(settings)
    if p.is_file():
        return p, False
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
    return p, True


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IPv4/IPv6 addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve on a non-loopback address without a token.

    Raises
    ------
    BindRefused
        ``host`` is not loopback and ``token`` is empty.
    """
    if not token and not is_loopback(host):
        raise BindRefused(
            f"refusing to serve the control plane on {host}: no API token is configured; "
            "set TRADINGMESH_API_TOKEN (or create var/api_token) or bind to 127.0.0.1"
        )


def token_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented bearer token."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())
