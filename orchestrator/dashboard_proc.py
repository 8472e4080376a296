"""Serve the Streamlit dashboard as a child process of the orchestrator.

``tradingmesh up`` starts it once the REST API listens::

    python -m streamlit run dashboard/app.py --server.address 127.0.0.1 --server.port 8502
        --server.headless true --browser.gatherUsageStats false ...

with ``TRADINGMESH_API_URL`` and ``TRADINGMESH_API_TOKEN`` in its environment (never on
its command line, where ``ps`` would show the token), restarts it with backoff if it dies,
and stops it with the mesh.  Its output goes to ``<var>/logs/dashboard.log``.

The orchestrator does not import the dashboard (``dashboard`` depends on ``backend``
only); it only runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from backend.redisctl.server import free_port
from backend.settings import ROOT, Settings

log = logging.getLogger("orchestrator.dashboard")


def app_path() -> Path:
    """``dashboard/app.py`` of the installed (or checked-out) dashboard package."""
    spec = importlib.util.find_spec("dashboard")  # locates it without importing it
    if spec is not None and spec.origin:
        candidate = Path(spec.origin).resolve().parent / "app.py"
        if candidate.is_file():
            return candidate
    return ROOT / "dashboard" / "app.py"


def client_url(api_url: str) -> str:
    """The API URL as a client on this machine reaches it (``0.0.0.0`` -> loopback)."""
    for wildcard, loopback in (("//0.0.0.0:", "//127.0.0.1:"), ("//[::]:", "//[::1]:")):
        api_url = api_url.replace(wildcard, loopback)
    return api_url


def streamlit_available() -> bool:
    """True when this interpreter can run ``python -m streamlit``."""
    return importlib.util.find_spec("streamlit") is not None


def port_free(host: str, port: int) -> bool:
    """True if a server could listen on ``host:port`` now (bound as Tornado binds)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        if os.name != "nt":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _popen_kwargs() -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if os.name == "nt":  # pragma: no cover - Windows
        kw["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        return kw
    kw["start_new_session"] = True  # a terminal's Ctrl-C reaches the orchestrator only
    if sys.platform.startswith("linux"):
        from backend.runtime.process import die_with_parent_preexec

        preexec = die_with_parent_preexec()  # dies with the orchestrator, even on SIGKILL
        if preexec is not None:
            kw["preexec_fn"] = preexec
    return kw


class DashboardProcess:
    """One supervised Streamlit server.

    Parameters
    ----------
    api_url, token
        Where the dashboard finds the REST API, and its bearer token (env only).
    host, port
        Where the dashboard listens.
    log_path
        Its stdout and stderr are appended there.
    refresh_s
        Seconds between the pages' refreshes.
    backoff_base_s, backoff_max_s
        Restart delay after a death: doubles per consecutive failure up to the maximum;
        back to the base once it has run ``stable_s`` seconds.
    command
        Replaces the Streamlit command line (tests).
    """

    def __init__(
        self, api_url: str, token: str | None, host: str, port: int, log_path: Path, *,
        refresh_s: float = 1.5, backoff_base_s: float = 1.0, backoff_max_s: float = 30.0,
        stable_s: float = 60.0, command: list[str] | None = None,
    ) -> None:
        self.api_url = client_url(api_url)
        self._token = token
        self.host = host
        self.port = port
        self.log_path = log_path
        self.refresh_s = refresh_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.stable_s = stable_s
        self._command = command
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.failures = 0  # consecutive short-lived runs
        self.started_mono = 0.0
        self.next_start_mono: float | None = None
        self.last_exit: int | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` as a browser on this machine opens it."""
        return client_url(f"http://{self.host if ':' not in self.host else f'[{self.host}]'}"
                          f":{self.port}")

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The running process's pid."""
        return self.proc.pid if self.alive and self.proc is not None else None

    def command(self) -> list[str]:
        """The command line (no secret on it)."""
        if self._command is not None:
            return list(self._command)
        return [
            sys.executable, "-m", "streamlit", "run", str(app_path()),
            "--server.address", self.host, "--server.port", str(self.port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--server.runOnSave", "false",
            "--client.toolbarMode", "viewer",
        ]

    def env(self) -> dict[str, str]:
        """The environment: ours plus the API URL and token and the refresh period."""
        env = dict(os.environ)
        env.pop("TRADINGMESH_API_TOKEN", None)
        env.pop("TRADINGMESH_SETTINGS_FILE", None)
        env.pop("TRADINGMESH_REDIS_CREDENTIALS", None)  # it talks to the API, not to Redis
        env["TRADINGMESH_API_URL"] = self.api_url
        if self._token:
            env["TRADINGMESH_API_TOKEN"] = self._token
        env["TRADINGMESH_DASHBOARD_REFRESH_S"] = f"{self.refresh_s:g}"
        env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
        root = str(app_path().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (root, env.get("PYTHONPATH", "")) if p)
        return env

    def start(self) -> None:
        """Start the server (its output appended to the log file)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
                self.command(), env=self.env(), cwd=str(app_path().parent.parent),
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                **_popen_kwargs(),
            )
        self.started_mono = time.monotonic()
        self.next_start_mono = None
        log.info("dashboard started (pid %d) on %s", self.proc.pid, self.url)

    def check(self, now: float | None = None) -> bool:
        """Restart the server if it died (after its backoff); True if it was started."""
        now = time.monotonic() if now is None else now
        if self.proc is None or self.alive:
            return False
        if self.next_start_mono is None:  # just noticed the death
            self.last_exit = self.proc.returncode
            ran = now - self.started_mono
            self.failures = 0 if ran >= self.stable_s else self.failures + 1
            delay = min(self.backoff_max_s,
                        self.backoff_base_s * 2 ** max(0, self.failures - 1))
            self.next_start_mono = now + delay
            log.warning("dashboard exited with code %s after %.1fs; restarting in %.1fs "
                        "(log %s)", self.last_exit, ran, delay, self.log_path)
            return False
        if now < self.next_start_mono:
            return False
        self.restarts += 1
        self.start()
        return True

    async def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; the exit code."""
        self.next_start_mono = None
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if proc.poll() is None:
                log.warning("dashboard did not stop within %.1fs: SIGKILL", grace)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await asyncio.to_thread(proc.wait, 5)
        self.proc = None
        return proc.returncode


async def _watch(proc: DashboardProcess, stop: asyncio.Event, interval: float) -> None:
    while not stop.is_set():
        try:
            proc.check()
        except OSError as exc:  # could not even spawn: keep trying with the backoff
            log.error("dashboard could not be started: %s", exc)
            proc.next_start_mono = time.monotonic() + proc.backoff_max_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


@contextlib.asynccontextmanager
async def serve_dashboard(
    settings: Settings, api_url: str, token: str | None, *, interval: float = 0.5,
    command: list[str] | None = None,
) -> AsyncIterator[DashboardProcess | None]:
    """Run the dashboard for the API at ``api_url`` until the block exits.

    Yields the :class:`DashboardProcess`, or None when the dashboard is disabled or
    Streamlit is not installed (a warning says so).
    """
    cfg = settings.dashboard
    if not cfg.enabled:
        yield None
        return
    if command is None and not streamlit_available():
        log.warning("streamlit is not installed: no dashboard (pip install streamlit)")
        yield None
        return
    if cfg.port and not port_free(cfg.host, cfg.port):
        log.warning("port %d on %s is in use (another mesh's dashboard?): no dashboard; "
                    "choose another with --dashboard-port (0 = any free port)",
                    cfg.port, cfg.host)
        yield None
        return
    port = cfg.port or free_port(cfg.host if cfg.host not in ("0.0.0.0", "::") else
                                 "127.0.0.1")
    proc = DashboardProcess(
        api_url, token, cfg.host, port, settings.var_dir / "logs" / "dashboard.log",
        refresh_s=cfg.refresh_s, command=command,
    )
    if cfg.host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("the dashboard listens on %s and has no login of its own: anyone who "
                    "reaches it can stop agents and trip the kill switch", cfg.host)
    proc.start()
    (settings.var_dir / "dashboard_url").write_text(proc.url + "\n")
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch(proc, stop, interval))
    try:
        yield proc
    finally:
        stop.set()
        await asyncio.gather(watcher, return_exceptions=True)
        await proc.stop()
        (settings.var_dir / "dashboard_url").unlink(missing_ok=True)
