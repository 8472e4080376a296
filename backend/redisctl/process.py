"""A private ``redis-server`` process: its command line, start, stop, kill and restart.

:class:`RedisServer` runs the ``redis-server`` binary found on PATH on 127.0.0.1 and a free
port (:func:`free_port`), with its data (AOF) and log file in a directory of ours; it has
started once it answers PING.  :meth:`RedisServer.with_acl` starts it with the mesh's ACL
(:mod:`backend.redisctl.acl`).  The fallback without a binary, the choice between the two
and the command line are :mod:`backend.redisctl.server`'s.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
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

__all__ = ["LOG_FILE", "RedisServer", "RedisStartError", "free_port"]

# The logger these records had before this module was split off backend.redisctl.server.
log = logging.getLogger("backend.redisctl.server")

LOG_FILE = "redis.log"


class RedisStartError(RuntimeError):
    """redis-server did not start (the message carries the tail of its log)."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on ``host`` a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


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
