"""``tradingmesh panic``: halt, cancel and flatten without needing Redis or any agent
(:mod:`orchestrator.panic`)."""

from __future__ import annotations

import typer
from rich.console import Console

from orchestrator.cli.state import err, mesh_redis_url, settings

__all__ = ["register"]

console = Console()


def panic(
    reason: str = typer.Option(..., help="Why (audited)."),
    scope: str = typer.Option(
        "mesh", help="What to close when going to the venue directly: 'mesh' (what the "
        "mesh holds beyond the account's baseline) or 'account' (every position of the "
        "mesh's symbols)."),
    wait: float = typer.Option(10.0, min=0, max=120,
                               help="Seconds to wait for a running execution agent."),
) -> None:
    """Halt trading (database first), cancel the mesh's open orders and close its
    positions -- through the execution agent if it runs, else straight at the venue,
    even with Redis down.  Prints what is left.

    Exit code 0 flat, 3 something is left (see the report), 2 bad arguments.
    """
    import asyncio

    from orchestrator.panic import panic as run_panic

    if len(reason.strip()) < 3:
        err.print("[red]error:[/] --reason must say why (at least 3 characters)")
        raise typer.Exit(2)
    if scope not in ("mesh", "account"):
        err.print("[red]error:[/] --scope must be 'mesh' or 'account'")
        raise typer.Exit(2)
    s = settings()
    report = asyncio.run(run_panic(s, reason=reason, actor="cli", redis_url=mesh_redis_url(s),
                                   wait_s=wait, scope=scope))  # type: ignore[arg-type]
    colour = "green" if report.flat else "yellow"
    console.print(f"[{colour}]halted (database latch written); path: {report.path}; "
                  f"cancelled {len(report.cancelled)} orders, closed "
                  f"{len(report.flattened)} positions"
                  + ("" if report.flat else "; NOT flat: see the report") + "[/]")
    for note in report.notes:
        console.print(f"note: {note}")
    print(report.model_dump_json())
    raise typer.Exit(0 if report.flat else 3)


def register(app: typer.Typer) -> None:
    """Add ``panic`` to ``app``."""
    app.command()(panic)
