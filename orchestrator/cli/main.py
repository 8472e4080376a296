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

import sys
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from orchestrator.cli.backtest import register as register_backtest
from orchestrator.cli.drill import register as register_drill
from orchestrator.cli.exchange_sim import register as register_exchange_sim
from orchestrator.cli.models import register as register_models
from orchestrator.cli.optimize import register as register_optimize
from orchestrator.cli.panic import register as register_panic
from orchestrator.cli.report import register as register_report
from orchestrator.cli.resolve import register as register_resolve
from orchestrator.cli.state import (
    Unreachable,
    err,
    mesh_redis_url,
    mesh_state,
    redis_error_line,
    settings,
)
from orchestrator.cli.tail import register as register_tail
from orchestrator.cli.up import register as register_up

if TYPE_CHECKING:  # annotations only: every command imports what it needs when it runs
    from backend.messages import AgentHeartbeat
    from backend.settings import Settings

__all__ = ["app", "main"]

console = Console(width=None if sys.stdout.isatty() else 120)

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
register_up(app)


@app.command()
def status() -> None:
    """Show every agent's last heartbeat (reads ``agent:health:*`` from Redis)."""
    from redis import Redis
    from redis.exceptions import RedisError

    from backend import channels
    from backend.messages import AgentHeartbeat, decode
    from backend.runtime.secretfiles import SecretFileError
    from orchestrator.agents_table import status_table

    s = settings()
    try:
        url = mesh_redis_url(s)  # the running mesh's Redis, with its ACL credentials
    except SecretFileError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    r = Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
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
        err.print(f"[red]error:[/] {redis_error_line(url, exc)}", highlight=False)
        raise typer.Exit(1) from None
    if not beats:
        console.print("no agent heartbeats (is the mesh running? is REDIS_URL right?)")
        raise typer.Exit(1)
    console.print(status_table(beats))


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
    import asyncio

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
    import asyncio

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
    from orchestrator.api.auth import ensure_token_file

    s = settings()
    if s.api_token is not None:
        console.print("TRADINGMESH_API_TOKEN is set; it takes precedence over the file")
    path, created = ensure_token_file(s)
    console.print(f"{'created' if created else 'exists'}: {path}")


@app.command()
def strategies(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the registered strategies and their declared, tunable parameters."""
    from rich.table import Table

    from backend.strategies.registry import STRATEGIES, strategies_json

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
