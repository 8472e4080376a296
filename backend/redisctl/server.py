"""Start and stop a private Redis for the mesh, its tests and its launch scripts.

* :class:`RedisServer` (:mod:`backend.redisctl.process`) runs the ``redis-server`` binary
  found on PATH on 127.0.0.1 and a free port, with its data (AOF) and log file in a
  directory of ours.
* :class:`EmbeddedRedis` is the fallback when there is no binary: fakeredis's TCP server in
  a background thread of this process.  It is a stand-in for development only.
* :func:`ensure_redis` picks one: ``REDIS_URL`` if set, else a server, else the fallback.

Command line (used by ``scripts/launch.sh`` and ``scripts/launch.ps1``)::

    python -m backend.redisctl.server serve --var var/redis [--port N] [--fresh] [--watch-pid PID]
                                      [--acl]
    python -m backend.redisctl.server stop --var var/redis

``serve`` prints ``REDIS_URL=redis://127.0.0.1:PORT/0`` as its first stdout line, writes
the URL to ``DIR/redis.url`` and redis-server's pid to ``DIR/redis.pid``, and stays in the
foreground until SIGTERM/SIGINT (or until ``--watch-pid``'s process is gone, or until
redis-server exits, e.g. after ``stop``), then stops redis and removes both files.

With ``--acl`` the server runs with the mesh's ACL (:mod:`backend.redisctl.acl`): one user per
role, ``default`` off, passwords generated on first use into ``DIR/credentials`` (mode
0600) and kept, hashed in ``DIR/users.acl``.  The URL printed (and in ``redis.url``) then has
no password; the second stdout line is ``REDIS_CREDENTIALS=DIR/credentials``.  No password
is ever printed or logged.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from backend.redisctl import acl as redis_acl
from backend.redisctl.process import LOG_FILE, RedisServer, RedisStartError, free_port

__all__ = [
    "EMBEDDED_WARNING",
    "LOG_FILE",
    "PID_FILE",
    "URL_FILE",
    "EmbeddedRedis",
    "RedisServer",
    "RedisStartError",
    "ensure_redis",
    "free_port",
    "main",
]

log = logging.getLogger(__name__)

URL_FILE = "redis.url"
PID_FILE = "redis.pid"


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log file)"
    return "\n".join(text.splitlines()[-lines:]) or "(log file is empty)"


EMBEDDED_WARNING = (
    "No redis-server found and REDIS_URL is not set: using an EMBEDDED in-process Redis "
    "stand-in (fakeredis) at %s. It is NOT for production: data lives in this process's "
    "memory only, it dies with this process, and Streams/consumer-group support may be "
    "partial. Install redis-server (e.g. `apt-get install redis-server`) or set REDIS_URL."
)


class EmbeddedRedis:
    """fakeredis's TCP server in a background thread: the fallback when there is no binary."""

    def __init__(
        self, port: int | None = None, *, host: str = "127.0.0.1", warn: bool = True
    ) -> None:
        try:
            from fakeredis import TcpFakeServer
        except ImportError as exc:  # pragma: no cover - fakeredis>=2.26 is a dependency
            raise RuntimeError("the embedded Redis needs fakeredis>=2.26 (TcpFakeServer)") from exc
        self.host = host
        self._server = TcpFakeServer((host, port or 0))
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            name=f"embedded-redis:{self.port}",
            daemon=True,
            kwargs={"poll_interval": 0.1},
        )
        self._thread.start()
        if warn:
            log.warning(EMBEDDED_WARNING, self.url)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int:
        return os.getpid()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        if not self._thread.is_alive():
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def ensure_redis(
    var_dir: Path, *, acl: bool = False
) -> tuple[str, RedisServer | EmbeddedRedis | None]:
    """Return ``(url, handle)``: the Redis the mesh should use.

    ``REDIS_URL`` (or ``TRADINGMESH_REDIS_URL``) if set, with ``None`` as handle; else a
    :class:`RedisServer` with its data in ``var_dir/redis``; else an :class:`EmbeddedRedis`
    (with a warning).  The caller owns the handle (``.stop()`` it) and should export the URL
    as ``REDIS_URL`` to the processes it spawns.

    With ``acl`` a server started here runs with the mesh's ACL (:meth:`RedisServer.with_acl`):
    the URL returned then has no password, and ``handle.credentials_path`` names the file
    with every user's password (:class:`backend.redisctl.acl.MeshAccess`).
    """
    url = os.environ.get("REDIS_URL") or os.environ.get("TRADINGMESH_REDIS_URL")
    if url:
        return url, None
    if shutil.which("redis-server"):
        data = Path(var_dir) / "redis"
        if acl:
            server = RedisServer.with_acl(data).start()
            return server.public_url, server
        server = RedisServer(data).start()
        return server.url, server
    embedded = EmbeddedRedis()
    return embedded.url, embedded


# ---------------------------------------------------------------------- command line
def _serve(args: argparse.Namespace) -> int:
    var = Path(args.var).resolve()
    var.mkdir(parents=True, exist_ok=True)
    if args.fresh:
        for name in ("appendonlydir", "appendonly.aof", "dump.rdb"):
            p = var / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping redis-server", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    # A background job of a non-interactive shell starts with SIGINT ignored: keep it so,
    # or a terminal Ctrl-C would stop Redis before the mesh has shut down.
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, on_signal)

    kw: dict[str, Any] = {"appendonly": not args.no_appendonly, "die_with_parent": True}
    try:
        if args.acl:
            server = RedisServer.with_acl(var, args.port, **kw)
        else:
            server = RedisServer(var, args.port, password=args.requirepass, **kw)
        server.start()
    except (RedisStartError, ValueError) as exc:  # SecretFileError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    url_file, pid_file = var / URL_FILE, var / PID_FILE
    try:
        url = server.public_url if args.acl else server.url
        print(f"REDIS_URL={url}", flush=True)
        if server.credentials_path is not None:
            print(f"REDIS_CREDENTIALS={server.credentials_path}", flush=True)
        url_file.write_text(url + "\n")
        pid_file.write_text(f"{server.pid}\n")
        code = 0
        while not stop.wait(0.25):
            if not server.running:
                rc = server.proc.returncode if server.proc else None
                if rc == 0:
                    log.info("redis-server shut down")
                else:
                    log.error(
                        "redis-server exited unexpectedly (code %s); log tail:\n%s",
                        rc,
                        _tail(server.log_path),
                    )
                    code = 1
                break
            if args.watch_pid and not _pid_alive(args.watch_pid):
                log.info("watched process %s is gone: stopping redis-server", args.watch_pid)
                break
        return code
    finally:
        server.stop()
        for p in (url_file, pid_file):
            with contextlib.suppress(OSError):
                p.unlink()


def _pid_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _stop(args: argparse.Namespace) -> int:
    var = Path(args.var).resolve()
    try:
        url = (var / URL_FILE).read_text().strip()
    except OSError:
        print(f"no {var / URL_FILE}: nothing to stop", file=sys.stderr)
        return 0
    auth: dict[str, Any] = {}
    if (var / redis_acl.CREDENTIALS_FILE).exists() and (var / redis_acl.ACL_FILE).exists():
        try:  # a server started with --acl: SHUTDOWN needs the admin user
            creds = redis_acl.read_credentials(var / redis_acl.CREDENTIALS_FILE)
            auth = {"username": redis_acl.ADMIN,
                    "password": creds[redis_acl.ADMIN].get_secret_value()}
        except ValueError as exc:
            print(f"warning: {exc}", file=sys.stderr)
    for kwargs in ([auth, {}] if auth else [{}]):
        try:
            with redis.Redis.from_url(
                url, socket_timeout=10, socket_connect_timeout=2,
                retry=Retry(NoBackoff(), 0), **kwargs,
            ) as c:
                c.shutdown(nosave=True)
        except redis.exceptions.AuthenticationError:
            continue  # started without --acl after all: try without credentials
        except redis.exceptions.ConnectionError:
            pass  # closed by the shutdown, or already gone
        break
    deadline = time.monotonic() + 15
    while (var / URL_FILE).exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # the serve process removes its files when redis is gone
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m backend.redisctl.server",
        description="Run a private redis-server for the mesh.",
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="start redis-server and stay in the foreground")
    serve.add_argument("--var", default="var/redis", help="data directory (default var/redis)")
    serve.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    serve.add_argument("--no-appendonly", action="store_true", help="no AOF (no persistence)")
    serve.add_argument("--fresh", action="store_true", help="delete old AOF/RDB data first")
    auth = serve.add_mutually_exclusive_group()
    auth.add_argument("--requirepass", default=None, help="password for AUTH")
    auth.add_argument(
        "--acl",
        action="store_true",
        help="one ACL user per mesh role, passwords in VAR/credentials (0600), default off",
    )
    serve.add_argument(
        "--watch-pid",
        type=int,
        default=None,
        help="stop when this process (e.g. the launch script) is gone",
    )
    stop = sub.add_parser("stop", help="shut down the server started by `serve --var DIR`")
    stop.add_argument("--var", default="var/redis")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s redisproc %(levelname)s %(message)s",
    )
    return _serve(args) if args.cmd == "serve" else _stop(args)


if __name__ == "__main__":
    sys.exit(main())
