"""Plumbing the command line's sub-commands share: settings with a clear error, and the
running mesh's Redis and database for commands that act on them directly (kill switch,
reset, resolve)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:  # annotations only: the command line starts without them (issue 17)
    from backend.persistence import Store
    from backend.settings import Settings

__all__ = ["Unreachable", "credentials_file", "err", "mesh_redis_url", "mesh_state",
           "redis_error_line", "settings"]

err = Console(stderr=True)


def settings(**overrides: object) -> Settings:
    """The mesh settings; a bad configuration prints the reason and exits 2."""
    from backend.settings import ConfigError, load_settings

    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


def mesh_redis_url(s: Settings) -> str:
    """REDIS_URL if set, else the URL the running ``up`` recorded in var/, else the default.

    With REDIS_URL and the launcher's ACL the URL has no password: the command connects as
    the orchestrator with the password from ``TRADINGMESH_REDIS_CREDENTIALS``, or from the
    launcher's ``var/redis/credentials`` when that variable is not set.
    """
    from backend.redisctl.acl import ORCHESTRATOR, url_for_role

    if os.environ.get("REDIS_URL") or os.environ.get("TRADINGMESH_REDIS_URL"):
        return url_for_role(ORCHESTRATOR, s.redis_url, credentials_path=credentials_file(s))
    f = s.var_dir / "redis_url"
    return f.read_text().strip() if f.is_file() else s.redis_url


def credentials_file(s: Settings) -> str | None:
    """The Redis ACL credentials file: ``TRADINGMESH_REDIS_CREDENTIALS``, else the
    launcher's ``var/redis/credentials`` if it exists, else None (a Redis without ACL)."""
    from backend.redisctl.acl import CREDENTIALS_ENV

    env = os.environ.get(CREDENTIALS_ENV)
    if env:
        return env
    launcher = s.var_dir / "redis" / "credentials"
    return str(launcher) if launcher.is_file() else None


def redis_error_line(url: str, exc: BaseException) -> str:
    """One line for a Redis that did not answer or refused us (never the password)."""
    from redis.exceptions import AuthenticationError

    from backend.settings import strip_url_userinfo

    where = strip_url_userinfo(url)
    text = str(exc)
    if "WRONGPASS" in text or "invalid username-password" in text:
        return (f"Redis not reachable at {where}: it refused the credentials (wrong password "
                "in REDIS_URL or the credentials file?)")
    if isinstance(exc, AuthenticationError) or "NOAUTH" in text or "HELLO" in text:
        return (f"Redis not reachable at {where} without credentials: it runs the launcher's "
                "ACL; set TRADINGMESH_REDIS_CREDENTIALS to its credentials file "
                "(var/redis/credentials for scripts/launch.sh), or run the command in the "
                "directory whose var/ the mesh uses")
    return f"Redis not reachable at {where} ({type(exc).__name__}: {exc})"


@contextlib.asynccontextmanager
async def mesh_state(s: Settings) -> AsyncIterator[tuple[object, Store]]:
    """The running mesh's Redis and database, for commands that act on them directly.

    Yields ``(redis, store)``; a Redis error inside the block is printed and re-raised
    as :class:`Unreachable`.
    """
    from redis.asyncio import Redis as AsyncRedis
    from redis.exceptions import RedisError

    from backend.persistence import Store, make_engine

    url = mesh_redis_url(s)
    r = AsyncRedis.from_url(url, socket_timeout=10, socket_connect_timeout=3)
    store = Store(make_engine(s.db_url()))
    try:
        yield r, store
    except (RedisError, OSError) as exc:
        raise Unreachable(f"Redis at {url.split('@')[-1]} is not reachable "
                           f"({type(exc).__name__})") from None
    finally:
        await r.aclose()
        store.close()


class Unreachable(Exception):
    """The mesh's Redis did not answer (message printable)."""
