"""``tradingmesh`` command line (typer).

``tradingmesh up``      start the orchestrator and every agent; run until Ctrl-C/SIGTERM.
``tradingmesh run``     replay the data through the live mesh to its end, print a report.
``tradingmesh status``  show the agents' heartbeats from Redis.
``tradingmesh agent``   run one agent in the foreground.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from pathlib import Path

import typer
from redis import Redis
from rich.console import Console
from rich.table import Table

from backend import channels
from backend.marketdata import DataError
from backend.messages import AgentHeartbeat, decode, now_ns
from backend.report import print_report
from backend.settings import ConfigError, Settings, load_settings
from orchestrator.mesh import (
    MeshError,
    collect_report,
    install_stop_signals,
    new_run_dir,
    start_mesh,
    stop_mesh,
    wait_replay_done,
)

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


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
    from backend.marketdata import load_dir

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
) -> None:
    """Start the orchestrator and every agent; keep them running until Ctrl-C / SIGTERM."""
    overrides: dict[str, object] = {"replay_speed": _speed(speed)}
    if data is not None:
        overrides["data_dir"] = data
    s = _settings(**overrides)
    _logging(s.log_level)
    if external_agents:
        raise typer.Exit(asyncio.run(_watch_external(s)))
    _check_data(s)
    code = asyncio.run(_up(s))
    raise typer.Exit(code)


async def _watch_external(s: Settings) -> int:
    """Report the heartbeats of agents run elsewhere (compose restarts them) until stopped."""
    from backend.topology import agent_specs
    from orchestrator.supervisor import Supervisor

    sup = Supervisor(s, agent_specs(s), {}, s.var_dir / "logs")  # never spawns here
    stop = asyncio.Event()
    install_stop_signals(stop)
    console.print(f"watching {len(sup.agents)} external agents on {s.redis_url.split('@')[-1]}")
    while not stop.is_set():
        console.print(_status_table(await sup.health()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 15)
    await sup.redis.aclose()
    return 0


async def _up(s: Settings) -> int:
    run_dir = s.var_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        handle = await start_mesh(s, run_dir, fresh=False)
    except MeshError as exc:
        err.print(f"[red]error:[/] {exc}")
        return 1
    url = handle.settings.redis_url
    console.print(f"[green]mesh running[/]: {len(handle.supervisor.agents)} agents, Redis {url}")
    console.print(f"  watch it:  redis-cli -u {url} PSUBSCRIBE '*'")
    console.print(f"  history:   redis-cli -u {url} XRANGE orders - +")
    console.print(f"  logs:      {run_dir / 'logs'}   (Ctrl-C stops everything)")
    stop = asyncio.Event()
    install_stop_signals(stop)
    last = 0.0
    while not stop.is_set():
        await handle.supervisor.check_once()
        if time.monotonic() - last > 15:
            last = time.monotonic()
            console.print(_status_table(await handle.supervisor.health(), handle))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)
    console.print("stopping agents ...")
    codes = await stop_mesh(handle)
    console.print(f"stopped: {codes}")
    return 0


@app.command()
def run(
    data: Path | None = typer.Option(None, help="Directory of BASE_QUOTE-5m.csv files."),
    speed: str = typer.Option("max", help="'max' (as fast as the mesh takes it) or N x real time."),
    report: Path | None = typer.Option(None, help="Write the report JSON here."),
    limit: int = typer.Option(0, help="Replay at most this many bars per symbol (0 = all)."),
    reset: bool = typer.Option(False, help="FLUSHDB an external REDIS_URL before the run."),
) -> None:
    """Replay the data through the live multi-process mesh to its end and report."""
    overrides: dict[str, object] = {"replay_speed": _speed(speed), "replay_limit": limit}
    if data is not None:
        overrides["data_dir"] = data
    s = _settings(**overrides)
    _logging(s.log_level)
    _check_data(s)
    code = asyncio.run(_run(s, report, reset))
    raise typer.Exit(code)


async def _run(s: Settings, report_path: Path | None, reset: bool) -> int:
    run_dir = new_run_dir(s.var_dir)
    t0 = time.monotonic()
    try:
        handle = await start_mesh(s, run_dir, fresh=True, reset=reset)
    except MeshError as exc:
        err.print(f"[red]error:[/] {exc}")
        return 1
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
    s = _settings()
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
    except (ConnectionError, OSError) as exc:
        err.print(f"[red]error:[/] Redis not reachable at {s.redis_url}: {exc}")
        raise typer.Exit(1) from None
    if not beats:
        console.print("no agent heartbeats (is the mesh running? is REDIS_URL right?)")
        raise typer.Exit(1)
    console.print(_status_table(beats))


@app.command()
def strategies() -> None:
    """List the registered strategies and their declared, tunable parameters."""
    from backend.strategies import STRATEGIES

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
