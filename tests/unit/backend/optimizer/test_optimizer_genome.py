"""The GA genome: genes from the declared ParamSpecs, bounds, int-ness, repair."""

from __future__ import annotations

import json
import random
from typing import ClassVar

import pytest

from backend.optimizer.ga import Individual
from backend.optimizer.genome import Genome
from backend.optimizer.rng import deap_random
from backend.strategies.base import ParamSpec
from backend.strategies.registry import STRATEGIES, strategies_json
from backend.strategies.sma_cross import SmaCross


def assert_in_bounds(genome: Genome, genes: list) -> None:
    for g, v in zip(genome.genes, genes, strict=True):
        assert g.spec.low <= v <= g.spec.high, (g.name, v)
        if g.is_int:
            assert type(v) is int, (g.name, v)
        else:
            assert type(v) is float, (g.name, v)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_genes_come_from_the_declaration(name: str) -> None:
    cls = STRATEGIES[name]
    genome = Genome(name)
    assert genome.names == [p.name for p in cls.params]
    assert genome.decode(genome.defaults()) == cls.defaults()


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_random_crossover_and_mutation_stay_in_bounds_and_feasible(name: str) -> None:
    genome = Genome(name)
    rng = random.Random(5)
    pop = [genome.random(rng) for _ in range(60)]
    assert all(genome.feasible(x) for x in pop)
    ends, infeasible, children = set(), 0, 0
    with deap_random(rng):
        for _ in range(300):
            a, b = (Individual(x) for x in rng.sample(pop, 2))
            genome.mate(a, b)
            genome.mutate(a)
            for ind in (a, b):
                assert_in_bounds(genome, ind)
                children += 1
                infeasible += not genome.feasible(ind)
            pop[rng.randrange(len(pop))] = list(a)
            ends |= {(g.name, v) for g, v in zip(genome.genes, a, strict=True)
                     if g.is_int and v in (g.spec.low, g.spec.high)}
    # ordering constraints are repaired by swapping; only equal values stay infeasible
    assert infeasible <= 0.05 * children
    assert ends  # int bounds widened by half a unit: the end values are reachable


def test_repair_rounds_clips_and_swaps_ordered_pairs() -> None:
    g = Genome("sma_cross")  # fast in [2, 100], slow in [5, 300], fast < slow
    assert g.repair([50.4, 20.6, 14.5, 2.0, 2.0]) == [21, 50, 15, 2.0, 2.0]
    assert g.repair([-3.0, 999.0, 1.0, 0.1, 42.0]) == [2, 300, 2, 0.5, 10.0]
    out = g.repair([40, 40, 14, 2.0, 2.0])  # no swap helps: left infeasible
    assert out == [40, 40, 14, 2.0, 2.0] and not g.feasible(out)
    assert g.repair([150.0, 60.0, 14, 2.0, 2.0]) == [60, 100, 14, 2.0, 2.0]  # clip, then swap
    rng = random.Random(0)
    for _ in range(200):
        genes = g.random(rng)
        assert genes[0] < genes[1]


def test_fixed_parameters_are_not_genes_and_are_validated() -> None:
    g = Genome("sma_cross", {"stop_atr": 3, "reward_risk": "1.5"})
    assert g.names == ["fast", "slow", "atr_period"]
    p = g.decode([5, 9, 7])
    assert p == {"fast": 5, "slow": 9, "atr_period": 7, "stop_atr": 3.0, "reward_risk": 1.5}
    assert list(p) == [s.name for s in SmaCross.params]
    with pytest.raises(ValueError, match="no parameter 'nope'"):
        Genome("sma_cross", {"nope": 1})
    with pytest.raises(ValueError, match="out of range"):
        Genome("sma_cross", {"fast": 1000})
    with pytest.raises(ValueError, match="unknown strategy"):
        Genome("no_such")
    every = {p.name: p.default for p in SmaCross.params}
    with pytest.raises(ValueError, match="no parameter left"):
        Genome("sma_cross", every)


def test_a_new_strategy_is_optimizable_without_ga_code() -> None:
    class Toy(SmaCross):
        name = "toy"
        params: ClassVar = (
            ParamSpec("fast", "int", 3, 4, 3), ParamSpec("slow", "int", 5, 5, 5),
            ParamSpec("atr_period", "int", 2, 3, 2),
            ParamSpec("stop_atr", "float", 0.5, 0.75, 0.5),
            ParamSpec("reward_risk", "float", 1.0, 1.0, 1.0),
        )

    g = Genome(Toy())
    assert g.names == ["fast", "atr_period", "stop_atr"]  # single-value ranges are constant
    rng = random.Random(1)
    vals = {tuple(g.random(rng)) for _ in range(100)}
    assert {v[0] for v in vals} == {3, 4} and {v[1] for v in vals} == {2, 3}
    assert all(0.5 <= v[2] <= 0.75 for v in vals)
    assert g.decode([4, 3, 0.6])["slow"] == 5


def test_strategies_json_lists_every_strategy_with_ranges_and_defaults() -> None:
    data = json.loads(strategies_json())
    assert [d["name"] for d in data] == list(STRATEGIES)
    sma = data[0]["params"]
    assert sma[0] == {"name": "fast", "kind": "int", "low": 2, "high": 100, "default": 10,
                      "doc": SmaCross.params[0].doc}
    stop = next(p for p in sma if p["name"] == "stop_atr")
    assert stop["kind"] == "float" and stop["default"] == 2.0 and isinstance(stop["low"], float)
    for d in data:
        assert [p["name"] for p in d["params"]] == [p.name for p in STRATEGIES[d["name"]].params]
