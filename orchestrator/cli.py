"""``tradingmesh`` command line (typer).

``tradingmesh up``      start the orchestrator and every agent; run until Ctrl-C/SIGTERM.
``tradingmesh run``     replay the data through the live mesh to its end, print a report.
``tradingmesh status``  show the agents' heartbeats from Redis.
``tradingmesh agent``   run one agent in the foreground.
``tradingmesh backtest`` backtest a strategy on OHLCV CSV files (same code as the agents).
``tradingmesh optimize`` genetic-algorithm search (DEAP) with walk-forward validation.
``tradingmesh report``  self-evaluation report (Markdown/HTML with charts) from the database.
``tradingmesh tail``    follow every channel's pub/sub traffic live (read-only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import typer
from redis import Redis
from redis.exceptions import RedisError
from rich.console import Console
from rich.table import Table

from backend import channels
from backend.marketdata.candles import DataError
from backend.messages import AgentHeartbeat, decode, now_ns
from backend.performance.report import print_report
from backend.redisctl.acl import ORCHESTRATOR
from backend.settings import Settings, strip_url_userinfo
from orchestrator.cli_backtest import register as register_backtest
from orchestrator.cli_drill import register as register_drill
from orchestrator.cli_exchange_sim import register as register_exchange_sim
from orchestrator.cli_models import register as register_models
from orchestrator.cli_optimize import register as register_optimize
from orchestrator.cli_panic import register as register_panic
from orchestrator.cli_report import register as register_report
from orchestrator.cli_resolve import register as register_resolve
from orchestrator.cli_state import Unreachable, err, mesh_state, settings
from orchestrator.cli_tail import register as register_tail
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

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
register_backtest(app)
register_drill(app)
register_exchange_sim(app)
register_optimize(app)
register_panic(app)
register_report(app)
register_models(app)
register_resolve(app)
register_tail(app)
console = Console(width=None if sys.stdout.isatty() else 120)


def _speed(value: str) -> str | float:
    if value == "max":
        return "max"
    try:
        v = float(value)
    except ValueError:
        raise typer.BadParameter("must be 'max' or a positive number (x real time)") from None
    if v <= 0:
        raise typer.BadParameter("must be 'max' or a positive number (x real time)")
    return v


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s [%(name)s] %(message)s"
    )


def _check_data(settings: Settings) -> None:
    from backend.marketdata.candles import load_dir

    try:
        load_dir(settings.data_dir, settings.symbols, settings.timeframe)
    except (DataError, FileNotFoundError, ValueError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


@app.command()
def up(
    speed: str = typer.Option("300", help="Replay speed: 'max' or N x real time."),
    data: Path | None = typer.Option(None, help="Directory of BASE_QUOTE-5m.csv files."),
    external_agents: bool = typer.Option(
        False, help="Agents are started by someone else (docker compose): only watch them."
    ),
    api_host: str | None = typer.Option(None, help="Control plane address [127.0.0.1]."),
    api_port: int | None = typer.Option(None, help="Control plane port [8000]; 0 = any free."),
    api: bool = typer.Option(True, help="Serve the REST control plane."),
    dashboard_port: int | None = typer.Option(
        None, help="Dashboard port [8502]; 0 = any free."),
    dashboard: bool = typer.Option(True, help="Serve the Streamlit dashboard (needs the API)."),
) -> None:
    """Start the orchestrator, every agent, the REST API and the dashboard; run until
    Ctrl-C / SIGTERM."""
    overrides: dict[str, object] = {"replay_speed": _speed(speed)}
    if data is not None:
        overrides["data_dir"] = data
    s = _api_overrides(settings(**overrides), api, api_host, api_port)
    s = s.model_copy(update={"dashboard": s.dashboard.model_copy(update={
        "enabled": dashboard and s.dashboard.enabled,
        **({"port": dashboard_port} if dashboard_port is not None else {}),
    })})
    _logging(s.log_level)
    token = _token_or_exit(s)
    if external_agents:
        raise typer.Exit(asyncio.run(_watch_external(s, token)))
    _check_data(s)
    code = asyncio.run(_up(s, token))
    raise typer.Exit(code)


def _api_overrides(s: Settings, enabled: bool, host: str | None, port: int | None) -> Settings:
    api = s.api.model_copy(update={
        "enabled": enabled and s.api.enabled,
        **({"host": host} if host is not None else {}),
        **({"port": port} if port is not None else {}),
    })
    return s.model_copy(update={"api": api})


def _token_or_exit(s: Settings) -> str | None:
    """The API token; exit 2 if the API would listen beyond loopback without one."""
    from orchestrator.auth import BindRefused, check_bind, resolve_token, token_path

    token = resolve_token(s)
    if s.api.enabled:
        try:
            check_bind(s.api.host, token)
        except BindRefused as exc:
            err.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from None
        if token is None:
            err.print("[yellow]warning:[/] no API token (TRADINGMESH_API_TOKEN or "
                      f"{token_path(s)}): the API is read-only, on loopback only")
    return token


async def _watch_external(s: Settings, token: str | None) -> int:
    """Watch agents run elsewhere (compose restarts them) and serve the control plane.

    The API reports their heartbeats, trades, risk and runs the kill switch; starting,
    stopping or restarting an agent is refused (409): that is compose's job here.
    """
    from backend.mesh.topology import agent_specs
    from backend.persistence import Store, make_engine
    from orchestrator.killswitch import sync_halt_latch
    from orchestrator.mesh import MeshHandle
    from orchestrator.server import ApiError
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
        async with proposal_pump(s), _control_plane(handle, token) as control:
            await _supervise(stop, handle, control, restart_agents=False)
    except ApiError as exc:
        err.print(f"[red]error:[/] {exc}")
        return 1
    finally:
        await sup.redis.aclose()
    return 0


async def _supervise(stop: asyncio.Event, handle, control, *,  # noqa: ANN001
                     restart_agents: bool) -> None:
    """Until ``stop``: restart failed agents (unless they are run externally), keep the
    halt latches in Redis in step with the database every 2 s (with or without the control
    plane), print the agents' table every 15 s."""
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
            console.print(_status_table(await sup.health(), handle if restart_agents else None))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


@contextlib.asynccontextmanager
async def _control_plane(  # noqa: ANN202
    handle, token: str | None, dashboard: bool = False,  # noqa: ANN001
):
    """Serve the API for ``handle`` if enabled, and with ``dashboard`` the dashboard too
    (yields the control plane or None)."""
    from orchestrator.dashboard_proc import serve_dashboard
    from orchestrator.server import serve_control_plane

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


async def _up(s: Settings, token: str | None) -> int:
    from orchestrator.server import ApiError

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
            _control_plane(handle, token, dashboard=True) as control,
        ):
            await _supervise(stop, handle, control, restart_agents=True)
    except ApiError as exc:
        err.print(f"[red]error:[/] {exc}")
        await stop_mesh(handle)
        return 1
    finally:
        (s.var_dir / "orchestrator.pid").unlink(missing_ok=True)
    console.print("stopping agents ...")
    codes = await stop_mesh(handle)
    console.print(f"stopped: {codes}")
    return 0


def _write_pid(s: Settings) -> None:
    import os

    (s.var_dir / "orchestrator.pid").write_text(f"{os.getpid()}\n")


@app.command()
def run(
    data: Path | None = typer.Option(None, help="Directory of BASE_QUOTE-5m.csv files."),
    speed: str = typer.Option("max", help="'max' (as fast as the mesh takes it) or N x real time."),
    report: Path | None = typer.Option(None, help="Write the report JSON here."),
    limit: int = typer.Option(0, help="Replay at most this many bars per symbol (0 = all)."),
    reset: bool = typer.Option(False, help="FLUSHDB an external REDIS_URL before the run."),
    api_port: int | None = typer.Option(
        None, help="Also serve the REST API on this port (0 = any free port)."),
) -> None:
    """Replay the data through the live multi-process mesh to its end and report."""
    overrides: dict[str, object] = {"replay_speed": _speed(speed), "replay_limit": limit}
    if data is not None:
        overrides["data_dir"] = data
    s = _api_overrides(settings(**overrides), api_port is not None, None, api_port)
    _logging(s.log_level)
    _check_data(s)
    token = _token_or_exit(s)
    code = asyncio.run(_run(s, report, reset, token))
    raise typer.Exit(code)


async def _run(s: Settings, report_path: Path | None, reset: bool, token: str | None) -> int:
    from orchestrator.server import ApiError

    run_dir = new_run_dir(s.var_dir)
    t0 = time.monotonic()
    try:
        handle = await start_mesh(s, run_dir, fresh=True, reset=reset)
    except MeshError as exc:
        err.print(f"[red]error:[/] {exc}")
        return 1
    try:
        async with proposal_pump(handle.settings), _control_plane(handle, token):
            return await _replay(s, handle, run_dir, report_path, t0)
    except ApiError as exc:
        err.print(f"[red]error:[/] {exc}")
        await stop_mesh(handle)
        return 1


async def _replay(s: Settings, handle, run_dir: Path, report_path: Path | None,  # noqa: ANN001
                  t0: float) -> int:
    console.print(f"mesh up in {time.monotonic() - t0:.1f}s; replaying {s.data_dir} "
                  f"at speed {s.replay_speed} (run dir {run_dir})")
    t_replay = time.monotonic()

    async def progress(cursor: int) -> None:
        console.print(f"  bars published: {cursor}  ({time.monotonic() - t_replay:.0f}s)")

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


def _status_table(beats: dict[str, AgentHeartbeat | None], handle=None) -> Table:  # noqa: ANN001
    t = Table(title="agents")
    for col in ("agent", "state", "pid", "restarts", "in", "out", "errors", "dead letters",
                "heartbeat age"):
        t.add_column(col)
    now = now_ns()
    for agent_id, hb in beats.items():
        restarts = handle.supervisor.agents[agent_id].total_restarts if handle else 0
        if hb is None:
            t.add_row(agent_id, "[red]no heartbeat[/]", "-", str(restarts), "", "", "", "", "")
            continue
        colour = {"running": "green", "degraded": "yellow"}.get(hb.state.value, "red")
        t.add_row(
            agent_id, f"[{colour}]{hb.state.value}[/]", str(hb.pid), str(restarts),
            str(hb.messages_in), str(hb.messages_out), str(hb.errors), str(hb.dead_letters),
            f"{(now - hb.ts) / 1e9:.1f}s",
        )
    return t


@app.command()
def status() -> None:
    """Show every agent's last heartbeat (reads ``agent:health:*`` from Redis)."""
    s = settings()
    r = Redis.from_url(s.redis_url)
    try:
        keys = sorted(r.scan_iter(match=channels.HEALTH_KEY_PREFIX + "*"))
        beats: dict[str, AgentHeartbeat | None] = {}
        for k in keys:
            raw = r.get(k)
            if raw:
                msg = decode(raw)
                if isinstance(msg, AgentHeartbeat):
                    beats[msg.agent_id] = msg
    except (RedisError, OSError) as exc:  # never the password: no URL userinfo, no traceback
        err.print(f"[red]error:[/] Redis not reachable at {strip_url_userinfo(s.redis_url)} "
                  f"({type(exc).__name__}: {exc})")
        raise typer.Exit(1) from None
    if not beats:
        console.print("no agent heartbeats (is the mesh running? is REDIS_URL right?)")
        raise typer.Exit(1)
    console.print(_status_table(beats))


@app.command()
def stop(
    emergency: bool = typer.Option(
        False, "--emergency",
        help="Kill switch: latch HALTED, cancel all orders, flatten all positions."),
    reason: str = typer.Option("emergency stop from the command line", help="Audited reason."),
    wait: float = typer.Option(10.0, min=0, max=60, help="Seconds to wait for confirmation."),
) -> None:
    """Stop the running mesh (SIGTERM to ``up``), or with --emergency trip the kill switch.

    The kill switch talks to Redis and the database directly, so it works even when the
    orchestrator or its API is not answering.
    """
    s = settings()
    if not emergency:
        import os
        import signal as sig

        pid_file = s.var_dir / "orchestrator.pid"
        if not pid_file.is_file():
            err.print(f"no running orchestrator ({pid_file} not found)")
            raise typer.Exit(1)
        pid = int(pid_file.read_text().strip())
        try:
            os.kill(pid, sig.SIGTERM)
        except ProcessLookupError:
            err.print(f"orchestrator pid {pid} is not running (stale {pid_file})")
            raise typer.Exit(1) from None
        console.print(f"sent SIGTERM to the orchestrator (pid {pid}); it stops every agent")
        return
    raise typer.Exit(asyncio.run(_emergency(s, reason, wait)))


async def _emergency(s: Settings, reason: str, wait: float) -> int:
    from orchestrator.killswitch import emergency_stop

    try:
        async with mesh_state(s) as (r, store):
            res = await emergency_stop(r, store, reason=reason, actor="cli", wait_s=wait)
    except Unreachable as exc:
        from backend.mesh.halt import HALT_STATE
        from backend.persistence import Store, make_engine

        store = Store(make_engine(s.db_url()))
        try:
            latched = store.get_state(HALT_STATE) is not None
        finally:
            store.close()
        if latched:
            err.print(f"[red]error:[/] {exc}: the halt is latched and audited in the "
                      "database (Redis gets it back when it returns), but no command reached "
                      "the execution agent; to cancel and flatten at the venue now, run "
                      "`tradingmesh panic --reason ...`")
        else:
            err.print(f"[red]error:[/] {exc}: nothing was latched")
        return 1
    colour = "green" if res.confirmed and not res.positions_left else "yellow"
    console.print(f"[{colour}]{res.message}[/]")
    console.print_json(res.model_dump_json())
    return 0 if res.confirmed else 3


@app.command()
def reset(
    reason: str = typer.Option(..., help="Why trading may resume (audited)."),
) -> None:
    """Clear the halt latch (kill switch / circuit breaker) so trading resumes."""
    s = settings()
    raise typer.Exit(asyncio.run(_reset(s, reason)))


async def _reset(s: Settings, reason: str) -> int:
    from orchestrator.killswitch import reset_halt

    if len(reason.strip()) < 3:
        err.print("[red]error:[/] --reason must say why (at least 3 characters)")
        return 2
    try:
        async with mesh_state(s) as (r, store):
            res = await reset_halt(r, store, reason=reason, actor="cli")
    except Unreachable as exc:
        err.print(f"[red]error:[/] {exc}")
        return 1
    console.print(res.message)
    return 0


@app.command()
def token() -> None:
    """Create the API token file (var/api_token, mode 0600) if missing; print its path."""
    from orchestrator.auth import ensure_token_file

    s = settings()
    if s.api_token is not None:
        console.print("TRADINGMESH_API_TOKEN is set; it takes precedence over the file")
    path, created = ensure_token_file(s)
    console.print(f"{'created' if created else 'exists'}: {path}")


@app.command()
def strategies(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the registered strategies and their declared, tunable parameters."""
    from backend.strategies import STRATEGIES, strategies_json

    if as_json:
        typer.echo(strategies_json())
        return

    t = Table(title="strategies")
    for col in ("name", "parameter", "kind", "range", "default", "meaning"):
        t.add_column(col)
    for name, cls in STRATEGIES.items():
        for i, p in enumerate(cls.params):
            t.add_row(name if i == 0 else "", p.name, p.kind, f"{p.low} .. {p.high}",
                      str(p.default), p.doc)
    console.print(t)


@app.command()
def agent(role: str, symbol: str | None = typer.Option(None)) -> None:
    """Run one agent in the foreground (``python -m agents.run`` does the same)."""
    from agents.run import main

    argv = [role] + (["--symbol", symbol] if symbol else [])
    raise typer.Exit(main(argv))


def main() -> None:  # pragma: no cover - console script
    """Entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
