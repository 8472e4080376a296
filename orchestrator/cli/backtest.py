"""``tradingmesh backtest``: backtest a strategy over OHLCV CSV files.

Hooked into the main CLI by ``register(app)`` (``orchestrator/cli/main.py``).  Bad input
(missing or invalid file, bad ``--params``, unknown strategy or sizing, invalid setting)
prints one line ``error: ...`` on stderr and exits with code 2.

``--strategy`` takes a registered name, or ``configured``: the strategy the
configuration gives the backtested symbol(s) (``[strategies.<SYM>]`` or
``[default_strategy]``: a ``combined`` portfolio, a regime gate ...), built with
:func:`backend.strategies.build.build_strategy` as the mesh builds it.  ``--regimes`` gates a
registered strategy by market regime (``backend.marketdata.regime``).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # annotations only: the backtester loads when the command runs
    from backend.backtest.models import BacktestResult, BacktestStats
    from backend.marketdata.candles import Candles
    from backend.settings import Settings
    from backend.strategies.config import StrategyConfig

__all__ = ["CONFIGURED", "backtest", "parse_params", "register", "strategy_config"]

#: ``--strategy`` value meaning "the strategy configured for the symbol(s)".
CONFIGURED = "configured"

#: Trades listed on the terminal (all of them go to the JSON report).
SHOW_TRADES = 10


class InputError(ValueError):
    """Bad command-line input: reported as one line, exit code 2."""


def parse_params(text: str | None) -> dict[str, str]:
    """``"fast=10,slow=30"`` -> ``{"fast": "10", "slow": "30"}`` (values are cast and
    validated later, against the strategy's declared parameters).

    Raises
    ------
    InputError
        An item without ``=``, an empty name, or a name given twice.
    """
    out: dict[str, str] = {}
    if not text or not text.strip():
        return out
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, val = item.partition("=")
        key, val = key.strip(), val.strip()
        if not sep or not key or not val:
            raise InputError(f"bad --params item {item.strip()!r}: expected name=value "
                             "(e.g. --params fast=10,slow=30)")
        if key in out:
            raise InputError(f"--params: {key!r} is given twice")
        out[key] = val
    return out


def strategy_config(settings: Settings, strategy: str, symbols: list[str],
                    regimes: str | None) -> StrategyConfig:
    """The configuration ``--strategy``/``--regimes`` ask for (see the module docstring).

    Raises
    ------
    InputError
        ``configured`` with symbols configured differently, or a bad ``--regimes``.
    """
    from backend.strategies.config import StrategyConfig

    if strategy == CONFIGURED:
        cfgs = {settings.strategy_for(s).model_dump_json(): settings.strategy_for(s)
                for s in symbols}
        if len(cfgs) > 1:
            raise InputError("--strategy configured: the symbols have different configured "
                             "strategies; backtest them one --data file at a time")
        cfg = next(iter(cfgs.values()))
    else:
        cfg = StrategyConfig(name=strategy)
    if regimes:
        try:
            cfg = StrategyConfig.model_validate({**cfg.model_dump(), "regimes": [
                r.strip() for r in regimes.split(",") if r.strip()]})
        except ValueError as exc:
            raise InputError(f"--regimes: {' '.join(str(exc).split())}") from None
    return cfg


def _expand_dirs(data: list[Path]) -> list[Path]:
    """``--data`` paths with each directory replaced by its ``BASE_QUOTE-<tf>.csv`` files
    (sorted; other CSV files in it are not candles of a known symbol and are skipped)."""
    from backend.marketdata.candles import DataError, symbol_from_filename

    out: list[Path] = []
    for path in data:
        if not path.is_dir():
            out.append(path)
            continue
        found = []
        for f in sorted(path.glob("*.csv")):
            try:
                symbol_from_filename(f)
            except DataError:
                continue
            found.append(f)
        if not found:
            raise InputError(f"{path}: a directory without BASE_QUOTE-<timeframe>.csv files "
                             "(e.g. ETH_BTC-5m.csv)")
        out += found
    return out


def _load(data: list[Path], symbol: str | None) -> dict[str, Candles]:
    from backend.marketdata.candles import DataError, load_candles, symbol_from_filename

    if not data:
        raise InputError("no data: pass --data FILE.csv (repeat for several files) or "
                         "--data DIR (every BASE_QUOTE-<timeframe>.csv in it)")
    data = _expand_dirs(data)
    if symbol is not None and len(data) > 1:
        raise InputError("--symbol works with a single --data file")
    out: dict[str, Candles] = {}
    for path in data:
        if not path.is_file():
            raise InputError(f"{path}: no such file or directory")
        sym = symbol
        if sym is None:
            try:
                sym = symbol_from_filename(path)
            except DataError:
                raise InputError(f"{path}: cannot tell the symbol from the file name "
                                 "(expected BASE_QUOTE-<timeframe>.csv, e.g. ETH_BTC-5m.csv); "
                                 "pass --symbol BASE/QUOTE") from None
        candles = load_candles(path, sym)
        if candles.symbol in out:
            raise InputError(f"{path}: symbol {candles.symbol} is given twice")
        out[candles.symbol] = candles
    return out


# ------------------------------------------------------------------ output
def _time(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M")


def _dur(ns: int | None) -> str:
    if ns is None:
        return "-"
    mins = ns // 60_000_000_000
    days, rest = divmod(mins, 1440)
    return f"{days}d {rest // 60:02d}:{rest % 60:02d}"


def _f(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


_ROWS: list[tuple[str, Any]] = [
    ("start", lambda s: _time(s.start_time)),
    ("end", lambda s: _time(s.end_time)),
    ("bars", lambda s: str(s.bars)),
    ("final equity", lambda s: _f(s.final_equity, ".8g")),
    ("total return", lambda s: _f(s.total_return, ".2%")),
    ("CAGR", lambda s: _f(s.cagr, ".2%")),
    ("Sharpe", lambda s: _f(s.sharpe, ".2f")),
    ("Sortino", lambda s: _f(s.sortino, ".2f")),
    ("Calmar", lambda s: _f(s.calmar, ".2f")),
    ("max drawdown", lambda s: _f(s.max_drawdown, ".2%")),
    ("max DD duration", lambda s: f"{_dur(s.max_drawdown_duration_ns)} "
                                  f"({s.max_drawdown_duration_bars} bars)"),
    ("trades (open)", lambda s: f"{s.trades} ({s.open_trades})"),
    ("win rate", lambda s: _f(s.win_rate, ".1%")),
    ("profit factor", lambda s: _f(s.profit_factor, ".2f")),
    ("exposure", lambda s: _f(s.exposure, ".1%")),
    ("net P&L (closed)", lambda s: _f(s.net_pnl, "+.6g")),
    ("fees paid", lambda s: _f(s.fees_paid, ".6g")),
]


def headline(res: BacktestResult) -> str:
    """One line describing the run's inputs."""
    extra = f", slippage {res.slippage_bps:g} bps" if res.sizing == "risk" else ""
    units = ", whole units" if res.whole_units else ""
    params = ",".join(f"{k}={v}" for k, v in res.params.items())
    return (f"backtest {res.strategy} ({params}), sizing {res.sizing}, cash {res.cash:g}, "
            f"commission {res.commission:g}{extra}{units}")


def stats_table(res: BacktestResult) -> Table:
    """Statistics by symbol (and the account when there are several) as a rich table."""
    cols: list[tuple[str, BacktestStats]] = list(res.symbol_stats.items())
    if len(cols) != 1:
        cols.append(("account", res.stats))
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("statistic", no_wrap=True)
    for name, _ in cols:
        t.add_column(name, justify="right", no_wrap=True)
    for label, fn in _ROWS:
        t.add_row(label, *(fn(s) for _, s in cols))
    return t


def trades_table(res: BacktestResult, last: int = SHOW_TRADES) -> Table:
    """The last ``last`` closed trades as a rich table."""
    shown = res.trades[-last:]
    t = Table(title=f"last {len(shown)} of {len(res.trades)} closed trades",
              box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for c in ("symbol", "side", "entry", "exit", "size", "entry px", "exit px", "net P&L",
              "reason"):
        t.add_column(c, justify="left" if c in ("symbol", "side", "reason") else "right",
                     no_wrap=True)
    for tr in shown:
        t.add_row(tr.symbol, tr.side, _time(tr.entry_time), _time(tr.exit_time),
                  f"{tr.size:.6g}", f"{tr.entry_price:.8g}", _f(tr.exit_price, ".8g"),
                  f"{tr.net_pnl:+.6g}", tr.exit_reason or "")
    return t


# ------------------------------------------------------------------ command
def _fail(msg: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {' '.join(str(msg).split())}", err=True)
    return typer.Exit(code)


def backtest(
    data: list[Path] | None = typer.Option(
        None, "--data", help="OHLCV CSV file (timestamp,open,high,low,close,volume), or a "
                             "directory of BASE_QUOTE-<tf>.csv files; repeat for several."),
    strategy: str = typer.Option("sma_cross", help="Strategy name (tradingmesh strategies), "
                                                   "or 'configured': the config file's."),
    params: str = typer.Option("", help="Strategy parameters, e.g. fast=10,slow=30."),
    regimes: str | None = typer.Option(None, help="Open positions only in these market "
                                                  "regimes, e.g. ranging or "
                                                  "trending_up,high_vol."),
    model_version: int | None = typer.Option(
        None, "--model-version", min=0, help="ml_classifier: stored model version (0 = "
        "self-train) [default: the latest stored, else self-train]."),
    cash: float | None = typer.Option(None, help="Initial cash in quote currency "
                                                  "[default: paper.initial_cash]."),
    commission: float | None = typer.Option(None, help="Fee per side, fraction of notional "
                                                        "[default: paper.fee_rate]."),
    sizing: str = typer.Option("risk", help="'risk' (the mesh's risk sizing, compliance, "
                                            "stops) or 'all-in' (whole equity, reversals)."),
    slippage_bps: float | None = typer.Option(None, help="risk sizing: slippage in bps "
                                                          "[default: paper.slippage_bps]."),
    whole_units: bool = typer.Option(False, help="all-in: trade whole base units "
                                                 "(backtesting.py's Backtest)."),
    symbol: str | None = typer.Option(None, help="BASE/QUOTE of a single --data file "
                                                  "[default: from the file name]."),
    periods_per_year: float | None = typer.Option(None, help="Annualisation [default: from "
                                                             "the bar spacing]."),
    report: Path | None = typer.Option(None, help="Write the JSON report here [default: "
                                                  "var/backtests/<stamp>.json]."),
    plot: Path | None = typer.Option(None, help="Write an interactive HTML chart here."),
) -> None:
    """Backtest a strategy on OHLCV CSV files; print statistics, write a JSON report."""
    from backend.backtest.engine import SIZINGS, run_backtest
    from backend.marketdata.candles import DataError
    from backend.settings import ConfigError, load_settings
    from orchestrator.cli.models import backtest_strategy

    try:
        if sizing not in SIZINGS:
            raise InputError(f"unknown --sizing {sizing!r} (use {' or '.join(SIZINGS)})")
        if periods_per_year is not None and not periods_per_year > 0:
            raise InputError("--periods-per-year must be > 0")
        overrides = parse_params(params)
        candles = _load(list(data or []), symbol)
        settings = load_settings()
        cfg = strategy_config(settings, strategy, list(candles), regimes)
        run, notes = backtest_strategy(cfg, candles, settings, model_version, sizing)
        if run is not cfg:  # ml_classifier with stored models: the config's params too
            overrides = {**cfg.params, **overrides}
        res = run_backtest(
            candles, run, overrides, sizing=sizing,  # type: ignore[arg-type]
            cash=cash, commission=commission, slippage_bps=slippage_bps, settings=settings,
            whole_units=whole_units, periods_per_year=periods_per_year)
    except (InputError, DataError, ConfigError, ValueError) as exc:
        raise _fail(str(exc)) from None
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(headline(res), soft_wrap=True, highlight=False)
    for note in notes:
        console.print(note, soft_wrap=True, highlight=False)
    console.print(stats_table(res))
    if res.trades:
        console.print(trades_table(res))
    out = report or settings.var_dir / "backtests" / (
        time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{res.strategy}-{res.sizing}.json")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(res.to_json())
    except OSError as exc:
        raise _fail(f"cannot write the report {out}: {exc.strerror or exc}") from None
    console.print(f"report written to {out}")
    if plot is not None:
        try:
            from backend.backtest.plot import write_plot

            write_plot(res, plot)
        except ImportError:
            raise _fail("--plot needs plotly (pip install plotly)", 1) from None
        except OSError as exc:
            raise _fail(f"cannot write the plot {plot}: {exc.strerror or exc}") from None
        console.print(f"chart written to {plot}")


def register(app: typer.Typer) -> None:
    """Add the ``backtest`` command to ``app``."""
    app.command("backtest")(backtest)
