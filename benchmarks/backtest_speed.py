"""Speed of the vectorised all-in evaluator vs backtesting.py's ``Backtest.optimize``.

Same data (``data/sample/ETH_BTC-5m.csv``, 5,760 bars), same grid (SmaCross n1 in 5..30,
n2 in 10..70, n1 < n2: 1,355 parameter sets), same cash (10,000) and commission (0.2 %).

* ours: :class:`backend.backtest.AllInEvaluator` scoring every parameter set by its
  Sharpe ratio, one process; the rolling means shared by the grid are computed during
  the first (cold) pass, the figure is the median of ``--repeat`` warm passes (the cold
  pass is reported too);
* backtesting.py: ``Backtest.optimize`` over the grid as shipped (its process pool uses
  every core) with the README's ``SmaCross`` example, maximising final equity (it
  computes the full statistics of every run whatever it maximises).

* ours, ``risk`` sizing: the optimizer's default fitness, the mesh's own trading model
  (:mod:`backend.optimizer.risk_fitness`: compliance, risk sizing, stops, breaker; the
  compiled kernel), scored by Sharpe; a different model from backtesting.py's, so only
  its speed is compared.

It also checks agreement over the whole grid: our whole-unit final equity of every
parameter set against backtesting.py's.  Prints the figures and writes
``benchmarks/results/backtest_speed.json``.

    .venv/bin/python benchmarks/backtest_speed.py [--repeat 5] [--bt-max-tries N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import backtesting  # noqa: E402
import numpy as np  # noqa: E402
from backtesting import Backtest, Strategy  # noqa: E402
from backtesting.lib import crossover  # noqa: E402
from backtesting.test import SMA  # noqa: E402

from backend.backtest import AllInEvaluator  # noqa: E402
from backend.marketdata.candles import load_candles  # noqa: E402
from backend.optimizer.fitness import FitnessContext, Scorer  # noqa: E402

CASH, COMMISSION = 10_000, 0.002
N1, N2 = range(5, 31), range(10, 71)


class SmaCross(Strategy):
    """backtesting.py's README example."""

    n1 = 10
    n2 = 20

    def init(self) -> None:
        close = self.data.Close
        self.sma1 = self.I(SMA, close, self.n1)
        self.sma2 = self.I(SMA, close, self.n2)

    def next(self) -> None:
        if crossover(self.sma1, self.sma2):
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.sell()


def grid() -> list[tuple[int, int]]:
    return [(a, b) for a in N1 for b in N2 if a < b]


def ours(candles, points: list[tuple[int, int]], repeat: int) -> dict:
    """Time our evaluator over the grid: a cold pass, then ``repeat`` warm passes."""
    times = []
    ev = None
    for k in range(repeat + 1):
        t0 = time.perf_counter()
        if k == 0:
            ev = AllInEvaluator("sma_cross", candles, CASH, COMMISSION)
        scores = [ev.score({"fast": a, "slow": b}, "sharpe") for a, b in points]
        times.append(time.perf_counter() - t0)
    warm = statistics.median(times[1:])
    best = points[int(np.argmax(scores))]
    whole = AllInEvaluator("sma_cross", candles, CASH, COMMISSION, whole_units=True)
    t0 = time.perf_counter()
    finals = {(a, b): whole.evaluate({"fast": a, "slow": b}).final_equity for a, b in points}
    whole_s = time.perf_counter() - t0
    return {
        "cold_pass_s": round(times[0], 4),
        "warm_pass_s": round(warm, 4),
        "evals_per_s": round(len(points) / warm, 1),
        "us_per_eval": round(warm / len(points) * 1e6, 1),
        "whole_units_evals_per_s": round(len(points) / whole_s, 1),
        "best_by_sharpe": {"n1": best[0], "n2": best[1]},
        "_finals": finals,
    }


def ours_risk(candles, points: list[tuple[int, int]], repeat: int) -> dict:
    """Time the ``risk`` fitness (the mesh's trading model, compiled) over the grid:
    Sharpe of each parameter set's account, default risk/compliance settings, the
    same cash and fee; a cold pass (indicators computed), then ``repeat`` warm passes."""
    ctx = FitnessContext(strategy="sma_cross", candles=(candles,), cash=CASH,
                         commission=COMMISSION, sizing="risk")
    scorer = Scorer(ctx)
    window = ctx.full_window()
    times = []
    for _ in range(repeat + 1):
        t0 = time.perf_counter()
        scores = [scorer.score(window, {"fast": a, "slow": b}) for a, b in points]
        times.append(time.perf_counter() - t0)
    warm = statistics.median(times[1:])
    best = points[int(np.argmax(scores))]
    return {
        "cold_pass_s": round(times[0], 4),
        "warm_pass_s": round(warm, 4),
        "evals_per_s": round(len(points) / warm, 1),
        "us_per_eval": round(warm / len(points) * 1e6, 1),
        "finite_scores": int(np.isfinite(scores).sum()),
        "best_by_sharpe": {"n1": best[0], "n2": best[1]},
    }


def theirs(df, max_tries: int | None) -> dict:
    """Time one ``Backtest.run`` and ``Backtest.optimize`` over the grid."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(df, SmaCross, cash=CASH, commission=COMMISSION, exclusive_orders=True)
        t0 = time.perf_counter()
        bt.run()
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        stats, heat = bt.optimize(n1=N1, n2=N2, constraint=lambda p: p.n1 < p.n2,
                                  maximize="Equity Final [$]", return_heatmap=True,
                                  max_tries=max_tries, random_state=0)
        total = time.perf_counter() - t0
    heat = heat.dropna()
    return {
        "evals": len(heat),
        "optimize_s": round(total, 2),
        "evals_per_s": round(len(heat) / total, 2),
        "single_run_ms": round(one * 1e3, 1),
        "best_by_final_equity": {"n1": int(stats._strategy.n1), "n2": int(stats._strategy.n2)},
        "_heat": {(int(a), int(b)): float(v) for (a, b), v in heat.items()},
    }


def main() -> int:
    """Run both, compare, print and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5, help="warm passes of our evaluator")
    ap.add_argument("--bt-max-tries", type=int, default=None,
                    help="random subset of the grid for backtesting.py (default: all)")
    args = ap.parse_args()
    candles = load_candles(ROOT / "data" / "sample" / "ETH_BTC-5m.csv")
    df = candles.to_frame().rename(columns=str.capitalize)
    df.index = df.index.tz_localize(None)
    points = grid()
    load = os.getloadavg()[0]
    o = ours(candles, points, args.repeat)
    r = ours_risk(candles, points, args.repeat)
    t = theirs(df, args.bt_max_tries)
    finals, heat = o.pop("_finals"), t.pop("_heat")
    rel = [abs(finals[p] / v - 1) for p, v in heat.items()]
    best_ours = max(heat, key=lambda p: finals[p])
    result = {
        "benchmark": "all-in SmaCross grid: AllInEvaluator vs backtesting.py Backtest.optimize",
        "data": "data/sample/ETH_BTC-5m.csv",
        "bars": len(candles),
        "grid": "n1 in 5..30, n2 in 10..70, n1 < n2",
        "grid_size": len(points),
        "cash": CASH,
        "commission": COMMISSION,
        "ours": o,
        "ours_risk_sizing": r,
        "backtesting_py": t,
        "ratio_evals_per_s": round(o["evals_per_s"] / t["evals_per_s"], 1),
        "ratio_risk_evals_per_s": round(r["evals_per_s"] / t["evals_per_s"], 1),
        "agreement": {
            "points_compared": len(rel),
            "max_rel_diff_final_equity": float(f"{max(rel):.3g}"),
            "points_over_0.1pct": sum(r > 1e-3 for r in rel),
            "same_best_by_final_equity": best_ours == tuple(t["best_by_final_equity"].values()),
        },
        "cpus": os.cpu_count(),
        "load_avg_1m_at_start": round(load, 2),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "backtesting_py_version": backtesting.__version__,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    out = ROOT / "benchmarks" / "results" / "backtest_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
