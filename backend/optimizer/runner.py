"""One optimization run: folds, GA per fold, out-of-sample scores, observers.

:func:`optimize` is synchronous and deterministic for a given seed, data and
configuration, whatever the executor.  Observers (:class:`Observer`) see the run start,
every generation, and its end; :class:`StoreObserver` persists it,
:class:`~backend.optimizer.publish.BusObserver` publishes it, the CLI draws a progress
bar.  An observer that raises stops the run (the error is reported as a failure).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from backend.common import finite_or_none
from backend.marketdata.candles import Candles
from backend.messages import FoldScore, OptimizerFinished, OptimizerProgressed, new_id, now_ns
from backend.optimizer.fitness import FitnessContext, Window
from backend.optimizer.ga import run_ga
from backend.optimizer.genome import Genome
from backend.optimizer.models import (
    FoldResult,
    GenerationStats,
    OptimizeConfig,
    OptimizeResult,
    WindowInfo,
)
from backend.optimizer.parallel import Executor, make_executor
from backend.optimizer.walkforward import is_overfit, mean_score, split_folds
from backend.strategies.base import Strategy

__all__ = [
    "Observer",
    "StoreObserver",
    "finished_message",
    "fitness_context",
    "optimize",
    "progress_message",
]

log = logging.getLogger(__name__)

#: ``source`` of the optimizer's messages.
SOURCE = "optimizer"


class Observer(Protocol):
    """Receives a run's events, in the thread that runs :func:`optimize`.

    Implement all three methods (a no-op ``return None`` where nothing is needed).
    """

    def started(self, run: OptimizeResult) -> None:
        """The run begins (``run.status == "running"``, no folds yet)."""

    def generation(self, run: OptimizeResult, stats: GenerationStats) -> None:
        """One generation of one fold is evaluated."""

    def finished(self, run: OptimizeResult) -> None:
        """The run ended (``status`` ``"finished"`` or ``"failed"``)."""


def progress_message(run: OptimizeResult, st: GenerationStats) -> OptimizerProgressed:
    """The :class:`OptimizerProgressed` of one generation."""
    cfg = run.config
    return OptimizerProgressed(
        source=SOURCE, run_id=run.run_id, strategy=cfg.strategy, objective=cfg.objective,
        fold=st.fold, folds=max(cfg.walk_forward, 1), generation=st.generation,
        generations=cfg.generations, best=finite_or_none(st.best), mean=finite_or_none(st.mean),
        std=finite_or_none(st.std), evaluations=st.evaluations, best_params=st.best_params)


def finished_message(run: OptimizeResult) -> OptimizerFinished:
    """The :class:`OptimizerFinished` of a run that ended."""
    folds = [FoldScore(
        fold=f.fold, params=f.best_params, in_sample=finite_or_none(f.in_sample),
        out_of_sample=finite_or_none(f.out_of_sample), overfit=f.overfit,
        is_start=f.in_sample_window.start, is_end=f.in_sample_window.end,
        oos_start=f.out_of_sample_window.start if f.out_of_sample_window else 0,
        oos_end=f.out_of_sample_window.end if f.out_of_sample_window else 0,
    ) for f in run.folds]
    return OptimizerFinished(
        source=SOURCE, run_id=run.run_id, strategy=run.config.strategy,
        objective=run.config.objective,
        status="failed" if run.status == "failed" else "finished", symbols=run.symbols,
        best_params=run.best_params, in_sample=finite_or_none(run.in_sample),
        out_of_sample=finite_or_none(run.out_of_sample),
        mean_in_sample=finite_or_none(run.mean_in_sample),
        mean_out_of_sample=finite_or_none(run.mean_out_of_sample), overfit=run.overfit,
        folds=folds,
        evaluations=run.evaluations, started_ns=run.started_ns,
        finished_ns=run.finished_ns or 0, error=run.error[:2000])


class StoreObserver:
    """Persists a run through :class:`backend.persistence.Store` (idempotent writes)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def started(self, run: OptimizeResult) -> None:
        self.store.record_optimizer_run(
            run.run_id, run.config.strategy, run.config.objective,
            run.config.model_dump(mode="json"), run.symbols, run.data_start, run.data_end,
            started_ts=run.started_ns)

    def generation(self, run: OptimizeResult, stats: GenerationStats) -> None:
        self.store.record_optimizer_progress(progress_message(run, stats))

    def finished(self, run: OptimizeResult) -> None:
        self.store.finish_optimizer_run(finished_message(run))


def fitness_context(candles: Mapping[str, Candles] | Sequence[Candles], cfg: OptimizeConfig,
                    *, periods_per_year: float | None = None,
                    settings: Any = None, strategy: Strategy | None = None) -> FitnessContext:
    """The :class:`FitnessContext` of ``cfg`` over ``candles`` (ValueError if invalid).

    ``strategy``: an instance named ``cfg.strategy`` to optimize instead of the registry's
    (e.g. ``build_strategy(settings.strategy_for(symbol))`` for a ``combined`` one).
    """
    series = tuple(candles.values()) if isinstance(candles, Mapping) else tuple(candles)
    if strategy is not None and strategy.name != cfg.strategy:
        raise ValueError(f"strategy instance {strategy.name!r} does not match the "
                         f"configured {cfg.strategy!r}")
    return FitnessContext(
        strategy=cfg.strategy if strategy is None else strategy, candles=series,
        cash=cfg.cash, commission=cfg.commission,
        objective=cfg.objective, sizing=cfg.sizing, whole_units=cfg.whole_units,
        periods_per_year=periods_per_year, settings=settings)


def _info(w: Window) -> WindowInfo:
    return WindowInfo(start=w.start, end=w.end, bars=w.bars())


def optimize(
    candles: Mapping[str, Candles] | Sequence[Candles],
    cfg: OptimizeConfig,
    *,
    observers: Sequence[Observer] = (),
    executor: Executor | None = None,
    run_id: str | None = None,
    periods_per_year: float | None = None,
    settings: Any = None,
    dask_client: Any = None,
    strategy: Strategy | None = None,
) -> OptimizeResult:
    """Run the GA (walk-forward if ``cfg.walk_forward``) and score the results.

    Parameters
    ----------
    candles : mapping of str to Candles, or sequence of Candles
        One series per symbol.
    cfg : OptimizeConfig
        Strategy, objective, GA settings, seed, folds, cash, commission, workers ...
    observers : sequence of Observer
        Told of the start, each generation and the end (see :class:`Observer`).
    executor : Executor, optional
        Where evaluations run; default from ``cfg.workers`` / ``cfg.scheduler`` (or
        ``dask_client``), closed at the end (a given executor is left open).
    run_id : str, optional
        Default: a new random id.
    periods_per_year : float, optional
        Annualisation; from the bar spacing by default.
    settings : Settings, optional
        ``sizing="risk"`` only: compliance, risk and paper settings.
    dask_client : dask.distributed.Client, optional
        Evaluate on this client (instead of ``cfg.scheduler``).
    strategy : Strategy, optional
        The instance to optimize (named ``cfg.strategy``), e.g. a strategy built from
        configuration (``combined``, regime gate); default: the registry's.

    Returns
    -------
    OptimizeResult
        ``status == "finished"``.

    Raises
    ------
    ValueError
        Bad configuration or data (unknown strategy or fixed parameter, too few bars for
        the folds ...); nothing is reported to the observers then.
    Exception
        Whatever the executor or an observer raised during the run; the observers were
        told the run ``"failed"`` first.
    """
    ctx = fitness_context(candles, cfg, periods_per_year=periods_per_year, settings=settings,
                          strategy=strategy)
    genome = Genome(ctx.strategy, cfg.fixed, cx_eta=cfg.cx_eta, mut_eta=cfg.mut_eta,
                    indpb=cfg.indpb)
    folds = split_folds(ctx, cfg.walk_forward, anchored=cfg.anchored)
    full = ctx.full_window()
    run = OptimizeResult(
        run_id=run_id or new_id(), status="running", config=cfg, symbols=ctx.symbols,
        data_start=full.start, data_end=full.end, started_ns=now_ns())
    own = executor is None
    if executor is None:
        executor = make_executor(ctx, cfg.workers, dask_client or cfg.scheduler)
    run.executor = executor.kind

    def on_generation(st: GenerationStats) -> None:
        for ob in observers:
            ob.generation(run, st)

    t0 = time.perf_counter()
    rng = random.Random(cfg.seed)
    try:
        for ob in observers:
            ob.started(run)
        for fold in folds:
            ga = run_ga(genome, cfg, executor, fold.in_sample, fold=fold.index, rng=rng,
                        on_generation=on_generation)
            best = ga.best_params
            oos = oos_w = None
            if fold.out_of_sample is not None:
                oos_w = _info(fold.out_of_sample)
                oos = executor.map(fold.out_of_sample, [best])[0]
            run.folds.append(FoldResult(
                fold=fold.index, in_sample_window=_info(fold.in_sample),
                out_of_sample_window=oos_w, best_params=best, in_sample=ga.best_score,
                out_of_sample=oos,
                overfit=is_overfit(ga.best_score, oos, cfg.overfit_ratio),
                evaluations=ga.evaluations, hall_of_fame=ga.hall_of_fame,
                generations=ga.generations))
        last = run.folds[-1]
        run.best_params = last.best_params
        run.in_sample, run.out_of_sample = last.in_sample, last.out_of_sample
        run.mean_in_sample = mean_score([f.in_sample for f in run.folds])
        if cfg.walk_forward:
            run.mean_out_of_sample = mean_score([f.out_of_sample for f in run.folds])
            run.overfit = is_overfit(run.mean_in_sample, run.mean_out_of_sample,
                                     cfg.overfit_ratio)
        run.evaluations = sum(f.evaluations for f in run.folds)
        run.status = "finished"
    except BaseException as exc:
        run.status, run.error = "failed", f"{type(exc).__name__}: {exc}"
        run.finished_ns = now_ns()
        run.elapsed_s = time.perf_counter() - t0
        for ob in observers:
            try:
                ob.finished(run)
            except Exception:  # noqa: BLE001 - keep the original error
                log.exception("optimizer observer failed while reporting a failure")
        raise
    finally:
        if own:
            executor.close()
    run.finished_ns = now_ns()
    run.elapsed_s = time.perf_counter() - t0
    for ob in observers:
        ob.finished(run)
    return run
