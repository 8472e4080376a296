"""Speed of the Monte Carlo engine (``backend.risk.montecarlo``) and the risk figures on it.

Times 10,000 paths x 100 steps of GBM and of the two-state regime-switching model, a
correlated 4-asset GBM of the same size, Monte Carlo VaR (10,000 one-bar outcomes) and
the VaR-limit check the risk agent runs per decision; calibrated on the shipped
ETH/BTC sample.  Prints the figures and writes ``benchmarks/results/montecarlo.json``.

    .venv/bin/python benchmarks/montecarlo.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.marketdata.candles import load_dir  # noqa: E402
from backend.risk.montecarlo import (  # noqa: E402
    calibrate_gbm,
    calibrate_regimes,
    correlated_gbm_paths,
    gbm_paths,
    mc_var_cvar,
    regime_switching_paths,
)
from backend.risk.portfolio_var import position_var  # noqa: E402
from backend.settings import Settings  # noqa: E402


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs (one warm-up run first), seconds."""
    fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> int:
    """Time each engine ``--repeat`` times; print and write the medians."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--paths", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()
    s = Settings()
    candles = load_dir(s.data_dir, s.symbols)
    eth = candles["ETH/BTC"].close
    r = eth[1:] / eth[:-1] - 1
    gbm = calibrate_gbm(r)
    regimes = calibrate_regimes(r)
    assert gbm is not None and regimes is not None
    n, m = args.paths, args.steps
    hist = {sym: (c.time[:300], c.close[:300]) for sym, c in candles.items()}
    notionals = {sym: 0.1 for sym in candles}
    x = np.log(np.column_stack([hist[sym][1] for sym in candles]))
    cov = np.cov(np.diff(x, axis=0), rowvar=False)
    figures = {
        f"gbm_{n}x{m}_s": timed(lambda: gbm_paths(1.0, gbm.mu, gbm.sigma, m, n, rng=1),
                                args.repeat),
        f"regime_switching_{n}x{m}_s": timed(
            lambda: regime_switching_paths(1.0, regimes, m, n, rng=1), args.repeat),
        f"correlated_gbm_4_assets_{n}x{m}_s": timed(
            lambda: correlated_gbm_paths(np.ones(4), np.zeros(4), cov, m, n, rng=1),
            args.repeat),
        f"mc_var_{n}_paths_1_bar_s": timed(lambda: mc_var_cvar(gbm, 0.99, paths=n, seed=1),
                                           args.repeat),
        "var_limit_check_4_positions_s": {
            method: timed(lambda method=method: position_var(
                hist, notionals, 1.0, 0.99, method, window=288, paths=n, seed=0), args.repeat)
            for method in ("historical", "parametric", "monte_carlo")},
    }
    result = {
        "benchmark": (
            "Monte Carlo engine (backend.risk.montecarlo), calibrated on ETH/BTC 5m sample"
        ),
        "paths": n, "steps": m, "runs": args.repeat,
        "calibration": {"gbm": {"mu": gbm.mu, "sigma": gbm.sigma},
                        "regimes": {"mu": regimes.mu, "sigma": regimes.sigma,
                                    "transition": regimes.transition,
                                    "counts": regimes.counts}},
        "median_s": {k: (round(v, 5) if isinstance(v, float) else
                         {kk: round(vv, 5) for kk, vv in v.items()})
                     for k, v in figures.items()},
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "numpy": np.__version__, "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    out = ROOT / "benchmarks" / "results" / "montecarlo.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for k, v in result["median_s"].items():
        print(f"{k:40s} {v}")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
