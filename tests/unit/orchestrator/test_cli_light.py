"""The command line starts light (issue 17: fast start): loading it, or printing its help,
imports no numeric library, no database layer, no exchange client, no web framework and
none of the mesh's modules; each command imports what it needs when it runs."""

import subprocess
import sys

from tests.support.imports import ROOT, modules_after

#: Top-level packages a command imports only when it runs.
HEAVY = {"numpy", "pandas", "scipy", "sklearn", "talib", "empyrical", "sqlalchemy", "ccxt",
         "streamlit", "fastapi", "uvicorn", "deap", "plotly", "redis", "asyncio", "pydantic",
         "pydantic_settings"}


def test_loading_the_command_line_imports_nothing_heavy():
    mods = modules_after("from orchestrator.cli import app")
    heavy = sorted(m for m in mods if m.split(".")[0] in HEAVY)
    ours = sorted(m for m in mods if m.split(".")[0] in {"backend", "agents"}
                  and m not in {"backend", "backend.optimizer", "backend.optimizer.names"})
    assert not heavy, heavy[:10]
    assert not ours, ours[:10]


def test_help_imports_nothing_heavy_and_lists_every_command():
    code = ("import contextlib, io\nfrom orchestrator.cli import app\n"
            "buf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):\n"
            "    app(['--help'], prog_name='tradingmesh')\n"
            "assert 'backtest' in buf.getvalue() and 'status' in buf.getvalue(), buf.getvalue()")
    mods = modules_after(code)
    heavy = sorted(m for m in mods if m.split(".")[0] in HEAVY)
    assert not heavy, heavy[:10]


def test_a_command_still_loads_what_it_needs():
    """``strategies --json`` runs through the lazy imports to the registry."""
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli", "strategies", "--json"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    assert '"sma_cross"' in out.stdout
