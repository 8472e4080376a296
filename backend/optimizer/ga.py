"""The genetic algorithm (DEAP) on one in-sample window.

Generation loop (a ``eaSimple`` with elitism and batch evaluation):

0. the initial population: the strategy's defaults (``seed_defaults``) and random
   feasible genomes (:meth:`Genome.random`), evaluated as one batch;
1. each generation: tournament selection of ``population - elite`` parents
   (``tools.selTournament``), crossover and mutation (``algorithms.varAnd`` with the
   genome's bounded operators and repair), evaluation of the changed individuals as one
   batch (in their order: the executor returns scores in order), then the ``elite``
   best of the hall of fame join unchanged;
2. the hall of fame (``tools.HallOfFame``) keeps the ``hof_size`` best distinct genomes
   ever seen; its first member is the fold's result.

Every random choice (initial genomes, DEAP's selection, crossover and mutation) draws
from one private ``random.Random(seed)`` (:mod:`backend.optimizer.rng`); parameter sets
already scored are not scored again (a cache keyed by the genome), which changes no
result.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from deap import algorithms, base, tools

from backend.optimizer.fitness import Window
from backend.optimizer.genome import Genome
from backend.optimizer.models import GenerationStats, HallOfFameEntry, OptimizeConfig
from backend.optimizer.parallel import Executor
from backend.optimizer.rng import deap_random

__all__ = ["FitnessMax", "GAResult", "Individual", "generation_stats", "run_ga"]


class FitnessMax(base.Fitness):
    """One objective, maximised."""

    weights = (1.0,)


class Individual(list):
    """A genome (list of genes) with its DEAP fitness."""

    def __init__(self, genes: object = ()) -> None:
        super().__init__(genes)  # type: ignore[arg-type]
        self.fitness = FitnessMax()


@dataclass
class GAResult:
    """What one GA run gives.

    Attributes
    ----------
    hall_of_fame : list of HallOfFameEntry
        Best distinct parameter sets, best first, with their scores on the window.
    generations : list of GenerationStats
        Generation 0 (the initial population) to the last.
    evaluations : int
        Distinct parameter sets scored.
    """

    hall_of_fame: list[HallOfFameEntry]
    generations: list[GenerationStats] = field(default_factory=list)
    evaluations: int = 0

    @property
    def best_params(self) -> dict[str, int | float]:
        """The best parameter set."""
        return self.hall_of_fame[0].params

    @property
    def best_score(self) -> float:
        """Its score on the in-sample window."""
        return self.hall_of_fame[0].score


def generation_stats(fold: int, generation: int, pop: list[Individual], evaluations: int,
                     best_params: dict[str, int | float]) -> GenerationStats:
    """Best / mean / std of a population's fitness (mean and std over defined ones)."""
    fits = np.array([ind.fitness.values[0] for ind in pop], dtype=float)
    ok = fits[np.isfinite(fits)]
    return GenerationStats(
        fold=fold, generation=generation, best=float(fits.max()),
        mean=float(ok.mean()) if len(ok) else None,
        std=float(ok.std()) if len(ok) else None,
        invalid=int(len(fits) - len(ok)), evaluations=evaluations, best_params=best_params)


def run_ga(
    genome: Genome,
    cfg: OptimizeConfig,
    executor: Executor,
    window: Window,
    *,
    fold: int = 0,
    rng: random.Random | None = None,
    on_generation: Callable[[GenerationStats], None] | None = None,
) -> GAResult:
    """Evolve ``genome`` on ``window``.

    Parameters
    ----------
    genome : Genome
    cfg : OptimizeConfig
        Population, generations, probabilities, tournament, elite, hall-of-fame size.
    executor : Executor
        Scores a batch of parameter sets in order.
    window : Window
        The in-sample window.
    fold : int
        Reported in the statistics.
    rng : random.Random, optional
        The run's generator (default ``random.Random(cfg.seed)``); successive folds
        share one, so each fold's draws follow the previous fold's.
    on_generation : callable, optional
        Called with each generation's :class:`GenerationStats` (generation 0 first).

    Returns
    -------
    GAResult
    """
    rng = random.Random(cfg.seed) if rng is None else rng
    with deap_random(rng):
        return _evolve(genome, cfg, executor, window, fold, rng, on_generation)


def _evolve(genome: Genome, cfg: OptimizeConfig, executor: Executor, window: Window,
            fold: int, rng: random.Random,
            on_generation: Callable[[GenerationStats], None] | None) -> GAResult:
    toolbox = base.Toolbox()
    toolbox.register("mate", genome.mate)
    toolbox.register("mutate", genome.mutate)
    toolbox.register("select", tools.selTournament, tournsize=cfg.tournament)
    cache: dict[tuple[int | float, ...], float] = {}

    def evaluate(inds: list[Individual]) -> None:
        todo = [ind for ind in inds if not ind.fitness.valid]
        keys = [tuple(ind) for ind in todo]
        new = list(dict.fromkeys(k for k in keys if k not in cache))
        if new:
            scores = executor.map(window, [genome.decode(k) for k in new])
            for k, s in zip(new, scores, strict=True):
                cache[k] = float(s) if not math.isnan(s) else float("-inf")
        for ind, k in zip(todo, keys, strict=True):
            ind.fitness.values = (cache[k],)

    hof = tools.HallOfFame(max(cfg.hof_size, cfg.elite, 1))
    pop = [Individual(genome.defaults())] if cfg.seed_defaults else []
    pop += [Individual(genome.random(rng)) for _ in range(cfg.population - len(pop))]
    history: list[GenerationStats] = []

    def record(gen: int) -> None:
        hof.update(pop)
        st = generation_stats(fold, gen, pop, len(cache), genome.decode(hof[0]))
        history.append(st)
        if on_generation is not None:
            on_generation(st)

    evaluate(pop)
    record(0)
    n_elite = min(cfg.elite, cfg.population - 1)
    for gen in range(1, cfg.generations + 1):
        parents = toolbox.select(pop, cfg.population - n_elite)
        offspring = algorithms.varAnd(parents, toolbox, cfg.cx_prob, cfg.mut_prob)
        evaluate(offspring)
        elite = [toolbox.clone(hof[i]) for i in range(min(n_elite, len(hof)))]
        pop = offspring + elite
        record(gen)
    entries = [HallOfFameEntry(params=genome.decode(ind), score=ind.fitness.values[0])
               for ind in hof]
    return GAResult(hall_of_fame=entries, generations=history, evaluations=len(cache))

