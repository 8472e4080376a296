"""``tradingmesh optimize``: tune a strategy's parameters with the GA, walk-forward.

Hooked into the main CLI by ``register(app)`` (``orchestrator/cli/main.py``).  Prints a
progress bar per generation, then the folds (best parameters, in-sample and
out-of-sample scores, overfit flag); writes a JSON report; records the run in the
database; publishes progress and the result on the bus with ``--redis``.

Bad input (missing or invalid file, unknown strategy or objective, bad ``--fixed``,
too few bars for the folds, unreachable database or scheduler ...) prints one line
``error: ...`` on stderr and exits with code 2.
"""

from __future__ import annotations

import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from backend.optimizer.names import GA_OBJECTIVES, SIZINGS
from orchestrator.cli.backtest import InputError, _load, parse_params

if TYPE_CHECKING:  # annotations only: the optimizer loads when the command runs
    from pydantic import ValidationError
    from rich.progress import Progress

    from backend.optimizer.models import GenerationStats, OptimizeConfig, OptimizeResult

__all__ = ["format_params", "optimize", "register"]

#: Hall-of-fame entries shown for the last fold.
SHOW_HOF = 5
#: Which model scores a run, by sizing.
_MODELS = {"risk": "the mesh's trading model (risk sizing, compliance, stops, breaker; "
                   "compiled)",
           "all-in": "all-in (the whole equity on each crossing; no stops or limits)"}


def format_params(params: dict[str, Any], sep: str = ",") -> str:
    """``fast=12,slow=40,stop_atr=2.5`` (floats with 4 significant digits)."""
    return sep.join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in params.items())


def _score(x: float | None) -> str:
    if x is None:
        return "-"
    return "undefined" if x != x or abs(x) == float("inf") else f"{x:.3f}"


def _rate(per_s: float) -> str:
    """Evaluations per second, readable from 0.05 to 50,000 (never a bare ``0``)."""
    if per_s != per_s:
        return "-"
    return f"{per_s:,.0f}" if per_s >= 100 else f"{per_s:.3g}"


def _flag(x: bool | None) -> str:
    return "-" if x is None else ("OVERFIT" if x else "ok")


def _day(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M")


class ProgressObserver:
    """A rich progress bar: one step per generation of every fold."""

    def __init__(self, progress: Progress, cfg: OptimizeConfig) -> None:
        self.progress = progress
        self.folds = max(cfg.walk_forward, 1)
        self.task = progress.add_task("starting", total=self.folds * (cfg.generations + 1))

    def started(self, run: OptimizeResult) -> None:
        return None

    def generation(self, run: OptimizeResult, st: GenerationStats) -> None:
        desc = (f"fold {st.fold + 1}/{self.folds} gen {st.generation}/"
                f"{run.config.generations} best {_score(st.best)} mean {_score(st.mean)}")
        self.progress.update(self.task, advance=1, description=desc)

    def finished(self, run: OptimizeResult) -> None:
        return None


def folds_table(run: OptimizeResult) -> Table:
    """The folds: windows, best parameters, in-sample and out-of-sample scores, flag."""
    t = Table(title=f"{run.config.strategy}: {run.config.objective}, in sample vs out of sample",
              box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for c in ("fold", "in-sample window", "out-of-sample window", "best parameters",
              "IS", "OOS", "overfit"):
        t.add_column(c, justify="right" if c in ("fold", "IS", "OOS") else "left",
                     overflow="fold")
    for f in run.folds:
        isw, oosw = f.in_sample_window, f.out_of_sample_window
        t.add_row(str(f.fold + 1), f"{_day(isw.start)} .. {_day(isw.end)} ({isw.bars})",
                  f"{_day(oosw.start)} .. {_day(oosw.end)} ({oosw.bars})" if oosw else "-",
                  format_params(f.best_params, ", "), _score(f.in_sample),
                  _score(f.out_of_sample),
                  _flag(f.overfit))
    if len(run.folds) > 1:
        t.add_row("mean", "", "", "", _score(run.mean_in_sample),
                  _score(run.mean_out_of_sample), _flag(run.overfit))
    return t


def hof_table(run: OptimizeResult, last: int = SHOW_HOF) -> Table:
    """The last fold's hall of fame (best distinct parameter sets, in-sample scores).

    Sets with the same score as a better-ranked one are left out: they usually differ
    only in parameters the score does not depend on (all-in sizing ignores the stop
    and take-profit parameters).
    """
    f = run.folds[-1]
    t = Table(title=f"hall of fame, fold {f.fold + 1} (in sample, one row per score)",
              box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    t.add_column("#", justify="right")
    t.add_column("parameters", overflow="fold")
    t.add_column("score", justify="right")
    seen: set[float] = set()
    for i, e in enumerate(f.hall_of_fame, 1):
        if e.score in seen:
            continue
        seen.add(e.score)
        t.add_row(str(i), format_params(e.params, ", "), _score(e.score))
        if len(seen) == last:
            break
    return t


def _fail(msg: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {' '.join(str(msg).split())}", err=True)
    return typer.Exit(code)


def _validation_line(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"])
        parts.append(f"--{loc.replace('_', '-')}: {e['msg']}")
    return "; ".join(parts)


async def _run_with_redis(url: str, candles: Any, cfg: OptimizeConfig, observers: list[Any],
                          settings: Any) -> OptimizeResult:
    from redis.asyncio import Redis

    from backend.optimizer.publish import optimize_async

    client = Redis.from_url(url)
    try:
        await client.ping()
        return await optimize_async(candles, cfg, redis=client, observers=observers,
                                    settings=settings)
    finally:
        await client.aclose()


def optimize(
    data: list[Path] | None = typer.Option(
        None, "--data", help="OHLCV CSV file (timestamp,open,high,low,close,volume) or a "
                             "directory of BASE_QUOTE-<tf>.csv files; repeat for several "
                             "symbols (fitness = mean of their scores)."),
    strategy: str = typer.Option("sma_cross", help="Strategy name (tradingmesh strategies)."),
    population: int = typer.Option(50, help="Individuals per generation (>= 4)."),
    generations: int = typer.Option(30, help="Generations after the initial population."),
    objective: str = typer.Option("sharpe", help=f"{' | '.join(GA_OBJECTIVES)} (maximised)."),
    walk_forward: int = typer.Option(0, "--walk-forward",
                                     help="Folds K: fit on window k, score on window k+1 "
                                          "(0: fit on all the data)."),
    anchored: bool = typer.Option(False, help="Walk-forward in-sample windows start at the "
                                              "first bar (growing) instead of rolling."),
    seed: int | None = typer.Option(None, help="Random seed (same seed, same result) "
                                               "[default: random, printed]."),
    workers: int = typer.Option(1, help="Local processes evaluating the fitness (1: this "
                                        "process)."),
    scheduler: str | None = typer.Option(None, help="Dask scheduler, e.g. tcp://host:8786 "
                                                    "(needs dask[distributed])."),
    cash: float | None = typer.Option(None, help="Initial cash per symbol (quote) "
                                                  "[default: paper.initial_cash]."),
    commission: float | None = typer.Option(None, help="Fee per side, fraction of notional "
                                                        "[default: paper.fee_rate]."),
    sizing: str = typer.Option("risk", help="'risk' (the mesh's trading model: risk "
                                            "sizing, compliance, stops, breaker) or 'all-in' "
                                            "(whole equity per crossing)."),
    whole_units: bool = typer.Option(False, help="all-in: trade whole base units."),
    fixed: str = typer.Option("", help="Parameters held fixed, e.g. stop_atr=2,reward_risk=2."),
    overfit_ratio: float = typer.Option(0.5, help="Flag overfit when OOS < ratio x IS "
                                                  "(IS > 0)."),
    symbol: str | None = typer.Option(None, help="BASE/QUOTE of a single --data file "
                                                  "[default: from the file name]."),
    report: Path | None = typer.Option(None, help="Write the JSON report here [default: "
                                                  "var/optimizer/<stamp>-<strategy>.json]."),
    db: str | None = typer.Option(None, help="Database URL [default: the mesh's, "
                                             "sqlite:///var/tradingmesh.db]."),
    redis: str | None = typer.Option(None, "--redis",
                                     help="Publish progress on retrain_status and the result "
                                          "on model_metrics through this Redis URL."),
) -> None:
    """Optimize a strategy's parameters with a genetic algorithm (DEAP), walk-forward."""
    import asyncio

    import sqlalchemy as sa
    from pydantic import ValidationError
    from redis.exceptions import RedisError
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from backend.marketdata.candles import DataError
    from backend.optimizer.models import OptimizeConfig
    from backend.optimizer.runner import StoreObserver
    from backend.optimizer.runner import optimize as run_optimize
    from backend.persistence import Store
    from backend.settings import ConfigError, load_settings

    try:
        if objective not in GA_OBJECTIVES:
            raise InputError(f"unknown --objective {objective!r} "
                             f"(use {', '.join(GA_OBJECTIVES)})")
        if sizing not in SIZINGS:
            raise InputError(f"unknown --sizing {sizing!r} (use {' or '.join(SIZINGS)})")
        try:
            fixed_values = parse_params(fixed)
        except InputError as exc:
            raise InputError(str(exc).replace("--params", "--fixed")) from None
        settings = load_settings()
        cfg = OptimizeConfig(
            strategy=strategy, objective=objective, population=population,  # type: ignore[arg-type]
            generations=generations, walk_forward=walk_forward, anchored=anchored,
            seed=secrets.randbelow(2**31) if seed is None else seed, workers=workers,
            scheduler=scheduler,
            cash=settings.paper.initial_cash if cash is None else cash,
            commission=settings.paper.fee_rate if commission is None else commission,
            sizing=sizing, whole_units=whole_units,  # type: ignore[arg-type]
            fixed=fixed_values,  # type: ignore[arg-type]
            overfit_ratio=overfit_ratio)
        candles = _load(list(data or []), symbol)
        # validate strategy, fixed values, folds before opening anything
        from backend.optimizer.genome import Genome
        from backend.optimizer.runner import fitness_context
        from backend.optimizer.walkforward import split_folds

        Genome(cfg.strategy, cfg.fixed)
        split_folds(fitness_context(candles, cfg), cfg.walk_forward, anchored=cfg.anchored)
        store = Store(db or settings.db_url())
    except ValidationError as exc:
        raise _fail(_validation_line(exc)) from None
    except (InputError, DataError, ConfigError, ValueError) as exc:
        raise _fail(str(exc)) from None
    except sa.exc.SQLAlchemyError as exc:
        raise _fail(f"database {db or settings.db_url()}: {exc.__class__.__name__}: "
                    f"{str(exc).splitlines()[0]}") from None

    console = Console(width=None if sys.stdout.isatty() else 120)
    wf = f"walk-forward {cfg.walk_forward} folds" if cfg.walk_forward else "no walk-forward"
    console.print(
        f"optimize {cfg.strategy} for {cfg.objective} on {', '.join(candles)}: population "
        f"{cfg.population}, {cfg.generations} generations, {wf}, seed {cfg.seed}, sizing "
        f"{cfg.sizing}, cash {cfg.cash:g}, commission {cfg.commission:g}; scored by "
        f"{_MODELS.get(cfg.sizing, cfg.sizing)}",
        soft_wrap=True, highlight=False)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console)
    observers: list[Any] = [StoreObserver(store), ProgressObserver(progress, cfg)]
    try:
        with progress:
            if redis:
                res = asyncio.run(_run_with_redis(redis, candles, cfg, observers, settings))
            else:
                res = run_optimize(candles, cfg, observers=observers, settings=settings)
    except ImportError as exc:
        raise _fail(f"--scheduler needs dask[distributed] (pip install 'dask[distributed]'):"
                    f" {exc}") from None
    except RedisError as exc:
        raise _fail(f"cannot publish on redis {redis}: {exc}") from None
    except (OSError, TimeoutError) as exc:
        where = f"scheduler {scheduler}" if scheduler else (f"redis {redis}" if redis else "")
        raise _fail(f"cannot reach {where or 'a service'}: {exc}") from None
    finally:
        store.close()
    console.print(folds_table(res))
    console.print(hof_table(res))
    rate = res.evaluations / res.elapsed_s if res.elapsed_s > 0 else float("nan")
    console.print(
        f"best parameters: {format_params(res.best_params)}\n"
        f"in sample {_score(res.in_sample)}, out of sample {_score(res.out_of_sample)}"
        + (f"; fold means {_score(res.mean_in_sample)} / {_score(res.mean_out_of_sample)}, "
           f"{_flag(res.overfit)}" if cfg.walk_forward else "")
        + f"\n{res.evaluations} evaluations in {res.elapsed_s:.2f} s ({_rate(rate)}/s, "
          f"{res.executor}); run {res.run_id}", highlight=False, soft_wrap=True)
    out = report or settings.var_dir / "optimizer" / (
        time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{cfg.strategy}.json")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(res.to_json())
    except OSError as exc:
        raise _fail(f"cannot write the report {out}: {exc.strerror or exc}") from None
    console.print(f"report written to {out}; run stored in {db or settings.db_url()}",
                  highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``optimize`` command to ``app``."""
    app.command("optimize")(optimize)
