"""The orchestrator process assembled in one place: mesh, supervisor, control plane, API
server and dashboard, for ``tradingmesh up`` and ``tradingmesh run``.

* :func:`up` -- start Redis, the database and every agent (:func:`orchestrator.mesh.start_mesh`),
  the optimizer's proposal pump, the REST API and the dashboard, then :func:`supervise`
  until Ctrl-C / SIGTERM; stop everything;
* :func:`watch_external` -- the same without spawning: the agents are run by someone else
  (docker compose), the supervisor only watches their heartbeats;
* :func:`run` -- bring a fresh mesh up, replay the data to its end, stop, print the report;
* :func:`control_plane` -- serve the API (:mod:`orchestrator.api.server`) and the dashboard
  (:mod:`orchestrator.dashboard_proc`) for a running mesh;
* :func:`supervise` -- the orchestrator's loop: restart failed agents, keep the halt
  latches in step with the database, trim the streams, print the agents' table.

The command line (:mod:`orchestrator.cli.up`) parses options into settings and calls these.
The API server, the dashboard and the supervisor are imported when first used, so the
other commands start without FastAPI or uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console

from backend.performance.report import print_report
from backend.redisctl.acl import ORCHESTRATOR
from backend.settings import Settings, strip_url_userinfo
from orchestrator.agents_table import status_table
from orchestrator.mesh import (
    MeshError,
    collect_report,
    install_stop_signals,
    new_run_dir,
    start_mesh,
    stop_mesh,
    wait_replay_done,
)
from orchestrator.optimizer_control import proposal_pump
from orchestrator.replay_progress import PRINT_EVERY_S, progress_line

__all__ = ["console", "control_plane", "err", "run", "supervise", "up", "watch_external"]

console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)


async def watch_external(s: Settings, token: str | None) -> int:
    """Watch agents run elsewhere (compose restarts them) and serve the control plane.

    The API reports their heartbeats, trades, risk and runs the kill switch; starting,
    stopping or restarting an agent is refused (409): that is compose's job here.

    Parameters
    ----------
    s
        Resolved settings (the mesh's Redis and database).
    token
        The API token (None: a read-only API on loopback).

    Returns
    -------
    int
        The exit code: 0 after Ctrl-C / SIGTERM, 1 when Redis or the API failed.
    """
    from backend.mesh.topology import agent_specs
    from backend.persistence import Store, make_engine
    from orchestrator.api.server import ApiError
    from orchestrator.killswitch import sync_halt_latch
    from orchestrator.mesh import MeshHandle
    from orchestrator.supervisor import Supervisor

    sup = Supervisor(s, agent_specs(s), {}, s.var_dir / "logs", external=True)
    s.var_dir.mkdir(parents=True, exist_ok=True)
    store = Store(make_engine(s.db_url()))
    try:
        await sync_halt_latch(sup.redis, store)
    except (ConnectionError, OSError) as exc:
        err.print(f"[red]error:[/] Redis at {s.redis_url.split('@')[-1]} is not reachable: {exc}")
        return 1
    finally:
        store.close()
    stop = asyncio.Event()
    install_stop_signals(stop)
    console.print(f"watching {len(sup.agents)} external agents on {s.redis_url.split('@')[-1]}")
    handle = MeshHandle(s, sup, None, s.var_dir)
    try:
        async with proposal_pump(s), control_plane(handle, token) as control:
            await supervise(stop, handle, control, restart_agents=False)
    except ApiError as exc:
        err.print(f"[red]error:[/] {exc}")
        return 1
    finally:
        await sup.redis.aclose()
    return 0


async def supervise(stop: asyncio.Event, handle, control, *,  # noqa: ANN001
                    restart_agents: bool) -> None:
    """Until ``stop``: restart failed agents (unless they are run externally), keep the
    halt latches in Redis in step with the database every 2 s (with or without the control
    plane), print the agents' table every 15 s.

    Parameters
    ----------
    stop
        Set by the stop signals (:func:`orchestrator.mesh.install_stop_signals`).
    handle
        The running mesh (:class:`orchestrator.mesh.MeshHandle`).
    control
        The control plane, or None when the API is off.
    restart_agents
        Restart failed agents (False: they are run externally).
    """
    sup = handle.supervisor
    last = last_sync = last_trim = 0.0
    while not stop.is_set():
        if restart_agents:
            await sup.check_once()
        if time.monotonic() - last_sync > 2:
            last_sync = time.monotonic()
            await sup.sync_halts()
        if time.monotonic() - last_trim > 10:
            last_trim = time.monotonic()
            await sup.trim_streams()
        if time.monotonic() - last > 15:
            last = time.monotonic()
            console.print(status_table(await sup.health(), handle if restart_agents else None))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


@contextlib.asynccontextmanager
async def control_plane(  # noqa: ANN202
    handle, token: str | None, dashboard: bool = False,  # noqa: ANN001
):
    """Serve the API for ``handle`` if enabled, and with ``dashboard`` the dashboard too
    (yields the control plane or None).

    Parameters
    ----------
    handle
        The running mesh (:class:`orchestrator.mesh.MeshHandle`).
    token
        The API token.
    dashboard
        Serve the dashboard too (if enabled in the settings).

    Raises
    ------
    orchestrator.api.server.ApiError
        The API could not start.
    """
    from orchestrator.api.server import serve_control_plane
    from orchestrator.dashboard_proc import serve_dashboard

    api = handle.settings.api
    if not api.enabled:
        if dashboard and handle.settings.dashboard.enabled:
            err.print("[yellow]warning:[/] no dashboard: it reads the REST API, which is off")
        yield None
        return
    async with serve_control_plane(handle, token, api.host, api.port) as (control, url):
        console.print(f"  API:       {url}/docs   (metrics {url}/metrics)")
        if token:
            console.print("  token:     TRADINGMESH_API_TOKEN / "
                          f"{handle.settings.var_dir / 'api_token'} (Authorization: Bearer)")
        _write_api_url(handle.settings, url)
        if not dashboard:
            yield control
            return
        async with serve_dashboard(handle.settings, url, token) as dash:
            if dash is not None:
                console.print(f"  dashboard: {dash.url}   (log {dash.log_path})")
            yield control


def _write_api_url(s: Settings, url: str) -> None:
    (s.var_dir / "api_url").write_text(url + "\n")


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (it may hold a password)."""
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


async def up(s: Settings, token: str | None) -> int:
    """Run the whole mesh in this process until Ctrl-C / SIGTERM (``tradingmesh up``).

    Starts Redis, the database and every agent in ``s.var_dir``, the proposal pump, the
    REST API and the dashboard; records the pid, the Redis URL and the API's URL in
    ``var/``; supervises; stops every agent.

    Parameters
    ----------
    s
        Resolved settings.
    token
        The API token (None: a read-only API on loopback).

    Returns
    -------
    int
        The exit code: 0 after a clean stop, 1 when the mesh or the API did not start.
    """
    from orchestrator.api.server import ApiError

    run_dir = s.var_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        handle = await start_mesh(s, run_dir, fresh=False)
    except MeshError as exc:
        err.print(f"[red]error:[/] {exc}")
        return 1
    url = handle.settings.redis_url
    shown = strip_url_userinfo(url)  # never a password on the console (redis_acl)
    auth = " --user dashboard --askpass" if urlsplit(url).username == ORCHESTRATOR else ""
    console.print(f"[green]mesh running[/]: {len(handle.supervisor.agents)} agents, "
                  f"Redis {shown}")
    console.print(f"  watch it:  redis-cli -u {shown}{auth} PSUBSCRIBE '*'")
    console.print(f"  history:   redis-cli -u {shown}{auth} XRANGE orders - +")
    console.print(f"  logs:      {run_dir / 'logs'}   (Ctrl-C stops everything)")
    stop = asyncio.Event()
    install_stop_signals(stop)
    _write_pid(s)
    _write_private(s.var_dir / "redis_url", url + "\n")
    try:
        async with (
            proposal_pump(handle.settings),
            control_plane(handle, token, dashboard=True) as control,
        ):
            await supervise(stop, handle, control, restart_agents=True)
    except (ApiError, OSError) as exc:  # e.g. a port taken since the command checked it
        err.print(f"[red]error:[/] {exc}")
        await stop_mesh(handle)
        return 1
    except Exception:
        await stop_mesh(handle)  # never leave Redis or an agent behind on a failed start
        raise
    finally:
        (s.var_dir / "orchestrator.pid").unlink(missing_ok=True)
    console.print("stopping agents ...")
    codes = await stop_mesh(handle)
    console.print(f"stopped: {codes}")
    return 0


def _write_pid(s: Settings) -> None:
    import os

    (s.var_dir / "orchestrator.pid").write_text(f"{os.getpid()}\n")


async def run(s: Settings, report_path: Path | None, reset: bool, token: str | None,
              total_bars: int | None = None) -> int:
    """Replay the data through a fresh mesh to its end and report (``tradingmesh run``).

    Parameters
    ----------
    s
        Resolved settings (``replay_speed``, ``replay_limit``, the API).
    report_path
        Where to write the report JSON (default: ``report.json`` in the run directory).
    reset
        FLUSHDB an external Redis before the run.
    token
        The API token, when the API is served during the run.
    total_bars
        Bars the replay will publish, for the progress lines' share and ETA (None:
        unknown).

    Returns
    -------
    int
        The exit code: 0 when the replay finished, 1 when it failed or was interrupted.
    """
    from orchestrator.api.server import ApiError

    run_dir = new_run_dir(s.var_dir)
    t0 = time.monotonic()
    try:
        handle = await start_mesh(s, run_dir, fresh=True, reset=reset)
    except MeshError as exc:
        err.print(f"[red]error:[/] {exc}")
        return 1
    try:
        async with proposal_pump(handle.settings), control_plane(handle, token):
            return await _replay(s, handle, run_dir, report_path, t0, total_bars)
    except ApiError as exc:
        err.print(f"[red]error:[/] {exc}")
        await stop_mesh(handle)
        return 1


async def _replay(s: Settings, handle, run_dir: Path, report_path: Path | None,  # noqa: ANN001
                  t0: float, total_bars: int | None) -> int:
    console.print(f"mesh up in {time.monotonic() - t0:.1f}s; replaying {s.data_dir} "
                  f"at speed {s.replay_speed} (run dir {run_dir})")
    t_replay = time.monotonic()

    last_print = t_replay

    async def progress(cursor: int) -> None:
        nonlocal last_print
        if time.monotonic() - last_print < PRINT_EVERY_S:
            return
        last_print = time.monotonic()
        console.print(progress_line(cursor, total_bars, last_print - t_replay),
                      highlight=False)

    stop = asyncio.Event()
    install_stop_signals(stop)
    waiter = asyncio.create_task(wait_replay_done(handle, progress))
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    failed = None
    if waiter in done:
        failed = waiter.exception()
    else:
        waiter.cancel()
        failed = MeshError("interrupted")
    wall = time.monotonic() - t_replay
    codes = await handle.supervisor.stop_all()  # Redis stays up: the report reads it
    try:
        rep = await collect_report(handle, wall)
    finally:
        if handle.redis_proc is not None:
            handle.redis_proc.stop()
    print_report(rep, console)
    out = report_path or run_dir / "report.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(rep.to_json(indent=True))
    console.print(f"report written to {out}; agent exit codes {codes}; wall time {wall:.1f}s")
    if failed is not None:
        err.print(f"[red]error:[/] {failed}")
        return 1
    return 0
