"""Start and stop a private Redis for the mesh, its tests and its launch scripts.

* :class:`RedisServer` runs the ``redis-server`` binary found on PATH on 127.0.0.1 and a
  free port, with its data (AOF) and log file in a directory of ours.
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
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from backend.redisctl import acl as redis_acl
from backend.runtime.process import die_with_parent_preexec

log = logging.getLogger(__name__)

LOG_FILE = "redis.log"
URL_FILE = "redis.url"
PID_FILE = "redis.pid"


class RedisStartError(RuntimeError):
    """redis-server did not start (the message carries the tail of its log)."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on ``host`` a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log file)"
    return "\n".join(text.splitlines()[-lines:]) or "(log file is empty)"


class RedisServer:
    """A private ``redis-server`` process (context manager).

    Parameters
    ----------
    data_dir:
        Working directory of the server: AOF files and ``redis.log`` live here.
    port:
        Fixed port; default a free one (retried if another process grabs it first).
    appendonly:
        Keep an append-only file so data survives :meth:`restart` (RDB snapshots are off).
    password:
        Sets ``--requirepass``; the URL then carries it.  With ``acl_file``: the password of
        ``username`` instead (no ``--requirepass``).
    username:
        ACL user this object's own client authenticates as (PING, SHUTDOWN).
    acl_file:
        Start with ``--aclfile``; see :meth:`with_acl`.
    credentials_path:
        The credentials file that goes with ``acl_file`` (for the caller; not read here).
    die_with_parent:
        Linux: have the kernel SIGTERM redis-server if the starting thread dies (no orphans
        when the parent is SIGKILLed).  Only use it from a long-lived (e.g. main) thread.
    """

    def __init__(
        self,
        data_dir: Path | str,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        appendonly: bool = True,
        password: str | None = None,
        binary: str | None = None,
        start_timeout: float = 15.0,
        extra_args: Sequence[str] = (),
        die_with_parent: bool = False,
        username: str | None = None,
        acl_file: Path | str | None = None,
        credentials_path: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port(host)
        self.appendonly = appendonly
        self.password = password
        self.binary = binary or shutil.which("redis-server")
        self.start_timeout = start_timeout
        self.extra_args = list(extra_args)
        self.die_with_parent = die_with_parent
        self.username = username
        self.acl_file = Path(acl_file).resolve() if acl_file is not None else None
        self.credentials_path = credentials_path
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def with_acl(cls, data_dir: Path | str, port: int | None = None, **kwargs: Any) -> Self:
        """A server with the mesh's ACL (:func:`backend.redisctl.acl.ensure_acl`): this object
        connects as ``admin``; :attr:`credentials_path` holds every user's password.

        Raises
        ------
        backend.runtime.secretfiles.SecretFileError
            ``data_dir/credentials`` exists but is readable by others or malformed.
        """
        files = redis_acl.ensure_acl(Path(data_dir))
        admin = files.credentials[redis_acl.ADMIN].get_secret_value()
        return cls(data_dir, port, username=redis_acl.ADMIN, password=admin,
                   acl_file=files.acl_path, credentials_path=files.credentials_path, **kwargs)

    # ------------------------------------------------------------------ properties
    @property
    def url(self) -> str:
        """URL with this object's credentials (``admin``'s with an ACL)."""
        user = quote(self.username, safe="") if self.username else ""
        auth = f"{user}:{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def public_url(self) -> str:
        """URL without user and password (for logs and files)."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, **kwargs: Any) -> redis.Redis:
        """A synchronous client for this server (caller closes it); no retries by default."""
        kwargs.setdefault("retry", Retry(NoBackoff(), 0))
        return redis.Redis(host=self.host, port=self.port, username=self.username,
                           password=self.password, **kwargs)

    # ------------------------------------------------------------------ life cycle
    def command(self) -> list[str]:
        if not self.binary:
            raise RedisStartError("redis-server not found on PATH (install it, or set REDIS_URL)")
        cmd = [
            self.binary,
            "--bind", self.host,
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--logfile", str(self.log_path),
        ]  # fmt: skip
        if self.acl_file is not None:
            cmd += ["--aclfile", str(self.acl_file)]
        elif self.password:
            cmd += ["--requirepass", self.password]
        return cmd + self.extra_args

    def start(self) -> Self:
        """Start the server and wait until it answers PING; return ``self``."""
        if self.running:
            return self
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            try:
                self._start_once()
                return self
            except RedisStartError as exc:
                if attempt + 1 < attempts and "Address already in use" in str(exc):
                    self.port = free_port(self.host)  # lost the race for the port: retry
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_once(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        popen_kw: dict[str, Any] = {}
        if os.name == "nt":
            popen_kw["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        else:
            popen_kw["start_new_session"] = True  # a terminal Ctrl-C does not reach it
            if self.die_with_parent and sys.platform.startswith("linux"):
                popen_kw["preexec_fn"] = die_with_parent_preexec()
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.data_dir,
            **popen_kw,
        )
        deadline = time.monotonic() + self.start_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RedisStartError(
                    self._failure(f"exited with code {self.proc.returncode}", log_offset)
                )
            try:
                with self.client(socket_timeout=1.0, socket_connect_timeout=1.0) as c:
                    c.ping()
                    served_by = int(c.info("server")["process_id"])
                if served_by != self.proc.pid:  # someone else answers on our port
                    self._kill()
                    raise RedisStartError(
                        f"redis-server on port {self.port}: Address already in use "
                        f"(pid {served_by} answers there)"
                    )
                log.info("redis-server pid %s listening on %s%s", self.proc.pid,
                         self.public_url, " (ACL)" if self.acl_file else "")
                return
            except redis.exceptions.BusyLoadingError as exc:  # loading the AOF
                last_error = exc
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                last_error = exc
            time.sleep(0.02)
        self._kill()
        raise RedisStartError(
            self._failure(
                f"did not answer PING within {self.start_timeout:.0f}s ({last_error})", log_offset
            )
        )

    def _failure(self, what: str, log_offset: int) -> str:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(log_offset)
                text = fh.read().decode(errors="replace")
            tail = "\n".join(text.splitlines()[-20:]) or "(nothing logged)"
        except OSError:
            tail = "(no log file)"
        cmd = ["***" if self.password and a == self.password else a for a in self.command()]
        return (
            f"redis-server on {self.host}:{self.port} {what}\n"
            f"command: {' '.join(cmd)}\n--- {self.log_path} (tail) ---\n{tail}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SHUTDOWN NOSAVE (the AOF is still flushed), else SIGTERM, else SIGKILL; wait."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                with self.client(socket_timeout=timeout, socket_connect_timeout=1.0) as c:
                    c.shutdown(nosave=True)
            except redis.exceptions.ConnectionError:
                pass  # the expected outcome: the server closed the connection and exited
            except redis.exceptions.RedisError as exc:
                log.debug("SHUTDOWN failed (%s); terminating", exc)
                proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._kill()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the server (a crash, for fault drills); data already written stays."""
        self._kill()
        self.proc = None

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self, timeout: float = 10.0) -> Self:
        """Stop and start again on the same port and data directory."""
        self.stop(timeout)
        self._fixed_port = True  # the URL clients hold must stay valid
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"RedisServer(url={self.public_url!r}, pid={self.pid}, "
                f"data_dir={str(self.data_dir)!r})")


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
