"""``tradingmesh resolve``: a person resolves a halted symbol, and ``tradingmesh halts``
lists them (see :mod:`backend.mesh.symbol_halt`, :mod:`orchestrator.symbol_halts`).

Both talk to the mesh's Redis and database directly (like the kill switch), so they work
while the orchestrator or its API is not answering; the resolution itself is carried out
by the execution agent, which owns the venue's books.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.cli.state import Unreachable, err, mesh_state, settings

__all__ = ["register"]

console = Console()


def halts() -> None:
    """List the symbols halted until a person resolves them."""
    import asyncio

    from orchestrator.symbol_halts import list_symbol_halts

    s = settings()

    async def go() -> int:
        try:
            async with mesh_state(s) as (r, store):
                rows = await list_symbol_halts(r, store)  # type: ignore[arg-type]
        except Unreachable as exc:
            err.print(f"[red]error:[/] {exc}")
            return 1
        if not rows:
            console.print("no symbol is halted")
            return 0
        t = Table("symbol", "kind", "order", "since (UTC ns)", "reason")
        for h in rows:
            t.add_row(h.symbol, h.kind, h.client_order_id or "-", str(h.ts), h.reason)
        console.print(t)
        return 0

    raise typer.Exit(asyncio.run(go()))


def resolve(
    symbol: str = typer.Argument(..., help="The halted symbol, e.g. ETH/BTC."),
    reason: str = typer.Option(..., help="What you checked at the venue (audited)."),
    not_placed: list[str] = typer.Option(
        [], "--not-placed", help="A client order id left UNKNOWN that is not at the venue "
        "(repeatable); it is looked up once more, then rejected."),
    adopt_venue_position: bool = typer.Option(
        False, "--adopt-venue-position",
        help="Set the books' position of the symbol to what the venue holds."),
    wait: float = typer.Option(10.0, min=0, max=120, help="Seconds to wait for execution."),
) -> None:
    """Resolve a halted symbol; execution clears the halt when nothing is left unresolved.

    Exit code 0 resumed, 3 still halted or not confirmed (the command stays queued), 1
    Redis unreachable, 2 bad arguments.
    """
    import asyncio

    from orchestrator.symbol_halts import resolve_symbol

    s = settings()
    if len(reason.strip()) < 3:
        err.print("[red]error:[/] --reason must say what you checked (at least 3 characters)")
        raise typer.Exit(2)
    if symbol not in s.symbols:
        known = ", ".join(s.symbols)
        err.print(f"[red]error:[/] {symbol} is not one of the mesh's symbols ({known})")
        raise typer.Exit(2)

    async def go() -> int:
        try:
            async with mesh_state(s) as (r, store):
                res = await resolve_symbol(
                    r, store, symbol=symbol, reason=reason, actor="cli",  # type: ignore[arg-type]
                    adopt_venue_position=adopt_venue_position, not_placed=not_placed,
                    wait_s=wait)
        except Unreachable as exc:
            err.print(f"[red]error:[/] {exc}")
            return 1
        colour = "green" if res.resumed else "yellow"
        console.print(f"[{colour}]{symbol}: {'resumed' if res.resumed else 'still halted'}[/]"
                      f" -- {res.message}")
        return 0 if res.resumed else 3

    raise typer.Exit(asyncio.run(go()))


def register(app: typer.Typer) -> None:
    """Add ``halts`` and ``resolve`` to the CLI."""
    app.command()(halts)
    app.command()(resolve)
