"""``tradingmesh up`` and ``tradingmesh run``: options to settings, then the orchestrator
process (:mod:`orchestrator.node`).

Hooked into the main CLI by ``register(app)`` (``orchestrator/cli/main.py``).  Bad
options, a bad configuration, missing data or an API that would listen beyond loopback
without a token exit 2 before anything starts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from orchestrator.cli.state import err, settings

if TYPE_CHECKING:  # annotations only: the mesh's modules load when a command runs
    from backend.settings import Settings

__all__ = ["register"]


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


def _check_data(settings: Settings) -> int:
    """Exit 2 with the reason if the data cannot be replayed; else the bars it holds
    (per symbol at most ``replay_limit``), for the progress lines."""
    from backend.marketdata.candles import DataError, load_dir

    try:
        candles = load_dir(settings.data_dir, settings.symbols, settings.timeframe)
    except (DataError, FileNotFoundError, ValueError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    limit = settings.replay_limit
    return sum(min(len(c), limit) if limit else len(c) for c in candles.values())


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
    import asyncio

    from orchestrator import node

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
    _check_ports(s, dashboard=True)
    if external_agents:
        raise typer.Exit(asyncio.run(node.watch_external(s, token)))
    _check_data(s)
    code = asyncio.run(node.up(s, token))
    raise typer.Exit(code)


def _symbols_with_files(s: Settings, overrides: dict[str, object]) -> Settings:
    """``run --data DIR``: replay the configured symbols that have a file in DIR (say which
    are left out); all of them missing stays an error (:func:`_check_data` names the
    file)."""
    from backend.marketdata.candles import symbol_file

    have = [sym for sym in s.symbols if symbol_file(s.data_dir, sym, s.timeframe).is_file()]
    if not have or len(have) == len(s.symbols):
        return s
    left = [sym for sym in s.symbols if sym not in have]
    err.print(f"note: replaying {', '.join(have)} only: no {s.timeframe} file for "
              f"{', '.join(left)} in {s.data_dir}", highlight=False)
    return settings(**overrides, symbols=have)


def _port_in_use(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (in use, no such address), or None."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"{host} is not an address of this machine ({exc.strerror or exc})"
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(addr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use"
            return f"cannot listen on {host}:{port} ({exc.strerror or exc})"
    return None


def _check_ports(s: Settings, dashboard: bool) -> None:
    """Exit 2 before anything starts if the API's or the dashboard's port is taken."""
    wanted = []
    if s.api.enabled and s.api.port:
        wanted.append(("the API", s.api.host, s.api.port, "--api-port"))
    if dashboard and s.api.enabled and s.dashboard.enabled and s.dashboard.port:
        wanted.append(("the dashboard", s.dashboard.host, s.dashboard.port, "--dashboard-port"))
    problems = [f"{what}: {why} (pass {opt} N, or {opt} 0 for any free port)"
                for what, host, port, opt in wanted
                if (why := _port_in_use(host, port)) is not None]
    if problems:
        for line in problems:
            err.print(f"[red]error:[/] {line}", highlight=False)
        err.print("nothing was started")
        raise typer.Exit(2)


def _api_overrides(s: Settings, enabled: bool, host: str | None, port: int | None) -> Settings:
    api = s.api.model_copy(update={
        "enabled": enabled and s.api.enabled,
        **({"host": host} if host is not None else {}),
        **({"port": port} if port is not None else {}),
    })
    return s.model_copy(update={"api": api})


def _token_or_exit(s: Settings) -> str | None:
    """The API token; exit 2 if the API would listen beyond loopback without one."""
    from orchestrator.api.auth import BindRefused, check_bind, resolve_token, token_path

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
    import asyncio

    from orchestrator import node

    overrides: dict[str, object] = {"replay_speed": _speed(speed), "replay_limit": limit}
    if data is not None:
        overrides["data_dir"] = data
    s = settings(**overrides)
    if data is not None:
        s = _symbols_with_files(s, overrides)
    s = _api_overrides(s, api_port is not None, None, api_port)
    _logging(s.log_level)
    total = _check_data(s)
    token = _token_or_exit(s)
    _check_ports(s, dashboard=False)
    code = asyncio.run(node.run(s, report, reset, token, total))
    raise typer.Exit(code)



def register(app: typer.Typer) -> None:
    """Add ``up`` and ``run`` to ``app``."""
    app.command()(up)
    app.command()(run)
