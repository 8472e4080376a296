"""``tradingmesh drill``: fault drills on the sample data (see :mod:`orchestrator.drills.run`).

Hooked into the main CLI by ``register(app)``.  Prints one line per scenario run as it
finishes, then the drill table (faults, restarts, orders, lost, duplicated, recovery
median and max, the worst exposure / equity of any mark against the cap), and writes
everything as JSON.  Exit code 0 when every run passed (the
books balanced and every fault recovered as it must), 1 otherwise, 2 on bad arguments.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import typer
from rich.console import Console
from rich.table import Table

__all__ = ["drill_table", "register"]

console = Console(width=130)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def drill_table(summary: list) -> Table:  # noqa: ANN001 - list[DrillSummary]
    """The drill table (one row per scenario)."""
    t = Table(title="fault drill")
    for col in ("scenario", "ok", "faults", "restarts", "orders", "lost", "dup",
                "rec p50 s", "rec max s", "max expo/eq"):
        t.add_column(col, justify="left" if col == "scenario" else "right")
    for s in summary:
        expo = "-" if s.worst_exposure is None else \
            f"{s.worst_exposure:.1%} (cap {s.exposure_cap:.0%})"
        t.add_row(s.scenario, f"{s.passed}/{s.runs}", str(s.faults), str(s.restarts),
                  str(s.orders), str(s.lost), str(s.duplicated), _fmt(s.recovery_median_s),
                  _fmt(s.recovery_max_s), expo)
    return t


def drill(
    faults: str = typer.Option("all", help="Comma-separated scenarios, or 'all' "
                               "(see --list)."),
    runs: int = typer.Option(1, min=1, help="Runs of each scenario (each a fresh mesh)."),
    injections: int = typer.Option(3, min=1, help="Faults injected per run."),
    seed: int = typer.Option(7, help="Seed of the fault moments and targets."),
    limit: int = typer.Option(300, min=20, help="Bars per symbol replayed in each run."),
    out: Path | None = typer.Option(None, help="JSON report [var/drills/<stamp>/drill.json]."),
    keep: bool = typer.Option(False, help="Keep the work directories of passing runs."),
    list_: bool = typer.Option(False, "--list", help="List the scenarios and exit."),
    venue: str = typer.Option(
        "paper", help="paper (the paper venue) or exchange-sim (real ccxt against the "
        "exchange simulator, faults at the exchange, books checked against its records)."),
) -> None:
    """Run fault drills on the sample data and check the books after each."""
    import asyncio

    from backend.settings import load_settings
    from orchestrator.drills.run import run_drill, scenarios, summarize

    if venue not in ("paper", "exchange-sim"):
        print(f"error: --venue {venue!r}: expected paper or exchange-sim", file=sys.stderr)
        raise typer.Exit(2)
    known = scenarios(venue)
    if list_:
        for name, (_, what) in known.items():
            console.print(f"{name:22} {what}")
        raise typer.Exit(0)
    names = [n for n in known if n != "gauntlet"] if faults.strip() == "all" else [
        n.strip() for n in faults.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        print(f"error: unknown scenario(s) {unknown} for --venue {venue}; known: "
              f"{', '.join(known)}", file=sys.stderr)
        raise typer.Exit(2)
    settings = load_settings()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = (out.parent if out else settings.var_dir / "drills" / stamp).resolve()
    base.mkdir(parents=True, exist_ok=True)
    out = out or base / "drill.json"
    console.print(f"drill on the {venue} venue: {len(names)} scenarios x {runs} runs, "
                  f"{injections} faults each, {limit} bars per symbol, seed {seed}; "
                  f"work dir {base}")

    def progress(r) -> None:  # noqa: ANN001 - ScenarioRun
        status = "[green]ok[/]" if r.ok else "[red]FAILED[/]"
        books = r.books
        console.print(
            f"  {r.scenario:20} run {r.run}: {status}  faults {len(r.events)}  "
            f"restarts {sum(r.restarts.values())}  orders {books.orders if books else '-'}  "
            f"lost {books.lost if books else '-'}  dup {books.duplicated if books else '-'}  "
            f"({r.wall_s:.0f}s)")
        if books is not None and books.lost_with_data:
            console.print(f"      {books.lost_with_data} signals were in flight when Redis "
                          "lost its data (went with the streams; the mesh halted)")
        for e in r.events:
            if not e.ok:
                console.print(f"      [red]{e.fault} {e.target}[/]: {e.detail}")
        if r.error:
            console.print(f"      [red]error[/]: {r.error}  (logs in {r.work_dir})")
        if books is not None and not books.ok:
            for line in books.failures():
                console.print(f"      [red]books[/]: {line}")

    results = asyncio.run(run_drill(names, base, runs=runs, injections=injections, seed=seed,
                                    limit=limit, keep=keep, venue=venue, on_result=progress))
    summary = summarize(results)
    console.print(drill_table(summary))
    ok = all(r.ok for r in results)
    out.write_bytes(orjson.dumps({
        "ok": ok, "venue": venue, "seed": seed, "runs_per_scenario": runs, "injections": injections,
        "bars_per_symbol": limit, "summary": [s.to_dict() for s in summary],
        "runs": [r.to_dict() for r in results],
    }, option=orjson.OPT_INDENT_2))
    console.print(f"{'all runs passed' if ok else 'SOME RUNS FAILED'}; report written to {out}")
    raise typer.Exit(0 if ok else 1)


def register(app: typer.Typer) -> None:
    """Add ``drill`` to the ``tradingmesh`` CLI."""
    app.command("drill")(drill)
