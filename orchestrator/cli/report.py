"""``tradingmesh report``: the self-evaluation report of the mesh's database.

Hooked into the main CLI by ``register(app)`` (``orchestrator/cli/main.py``).  Reads fills,
signals, equity marks and optimizer runs from the database (``--db`` or the configured
one; no Redis needed), prints a summary, and writes the report as Markdown (with SVG
charts beside it) and/or one self-contained HTML page; ``--json`` prints the report as
JSON instead of the summary.  Definitions: :mod:`backend.evaluation.build`.

Bad input (a date that does not parse, an unreachable database) prints one line
``error: ...`` on stderr and exits with code 2.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console

__all__ = ["parse_since", "register", "report"]


def parse_since(text: str | None) -> int | None:
    """``YYYY-MM-DD`` or an ISO date-time (UTC unless it has an offset) as ns UTC.

    Raises
    ------
    ValueError
        The text is not a date.
    """
    if text is None or not text.strip():
        return None
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since {text!r} is not a date (use YYYY-MM-DD)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 10**9 + dt.microsecond * 1000


def _fail(msg: str) -> typer.Exit:
    Console(stderr=True).print(f"error: {msg}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def report(
    since: str | None = typer.Option(None, help="First day (UTC), YYYY-MM-DD."),
    fmt: str = typer.Option("both", "--format", help="md, html or both."),
    out: Path | None = typer.Option(
        None, help="Output path stem (default var/reports/report-<UTC time>)."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the report as JSON (files only with --out)."),
    db: str | None = typer.Option(None, help="Database URL (default: the configured one)."),
) -> None:
    """Write the self-evaluation report: win rate, P&L, drawdown, Sharpe, trade duration,
    best/worst symbols and strategies, regime breakdown, suggested parameter changes."""
    import sqlalchemy as sa

    from backend.evaluation.build import evaluate
    from backend.evaluation.render import write_report
    from backend.persistence import Store
    from backend.settings import ConfigError, load_settings

    if fmt not in ("md", "html", "both"):
        raise _fail(f"unknown --format {fmt!r} (use md, html or both)")
    try:
        start = parse_since(since)
        settings = load_settings()
        url = db or settings.db_url()
        store = Store(url)
        try:
            rep = evaluate(store, settings, start)
        finally:
            store.close()
    except (ValueError, ConfigError) as exc:
        raise _fail(str(exc)) from None
    except sa.exc.SQLAlchemyError as exc:
        raise _fail(f"database {db or '(configured)'}: {exc.__class__.__name__}: "
                    f"{str(exc).splitlines()[0]}") from None
    if as_json:
        sys.stdout.write(rep.model_dump_json(indent=2) + "\n")
        if out is None:
            return
    stem = out or settings.var_dir / "reports" / (
        "report-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    try:
        files = write_report(rep, stem, fmt)
    except OSError as exc:
        raise _fail(f"cannot write the report {stem}: {exc.strerror or exc}") from None
    if as_json:
        return
    console = Console(width=None if sys.stdout.isatty() else 120)
    wr = "-" if rep.win_rate is None else f"{rep.win_rate:.1%}"
    dd = "-" if rep.max_drawdown is None else f"{rep.max_drawdown:.2%}"
    sh = "-" if rep.sharpe is None else f"{rep.sharpe:.2f}"
    console.print(
        f"{rep.trades} closed trades, win rate {wr}, net P&L {rep.net_pnl:.6g}, max drawdown "
        f"{dd}, Sharpe {sh}; best symbol {rep.best_symbol or '-'}, worst "
        f"{rep.worst_symbol or '-'}; {sum(s.suggested for s in rep.suggestions)} suggested "
        f"parameter change(s)", highlight=False, soft_wrap=True)
    console.print("report written to " + ", ".join(str(f) for f in files), highlight=False,
                  soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to ``app``."""
    app.command("report")(report)
