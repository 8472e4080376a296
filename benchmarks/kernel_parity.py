"""Parity of the compiled kernel with ``backend.mesh.simulate`` over random configurations.

For each strategy, ``--configs`` seeded random cases (:func:`backend.backtest.
kernel_check.random_case`: parameters, risk, compliance and paper settings, one to three
sample symbols over a random window) are replayed both ways and compared message by
message (:func:`backend.backtest.kernel_check.mismatches`).  Prints, per strategy, the
cases, how many differed, the fills and breaker trips compared, and writes
``benchmarks/results/kernel_parity.json``.  Exits 1 if any case differed.

    .venv/bin/python benchmarks/kernel_parity.py [--configs 200] [--strategies sma_cross,smc]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from backend.backtest.kernel_check import mismatches, random_case
from backend.marketdata.candles import load_dir
from backend.mesh.simulate import simulate
from backend.strategies.registry import STRATEGIES

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; 0 when every case is identical."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--data", default=str(ROOT / "data" / "sample"))
    args = ap.parse_args(argv)
    candles = load_dir(args.data)
    results = {}
    failed = 0
    for name in args.strategies.split(","):
        t0 = time.perf_counter()
        bad, fills, trips, signals = [], 0, 0, 0
        for seed in range(args.seed, args.seed + args.configs):
            case = random_case(seed, name, candles)
            sim = simulate(case.settings, case.candles)
            diff = mismatches(case, sim)
            if diff:
                bad.append({"case": case.describe(), "differences": diff})
                print(case.describe(), *diff, sep="\n  ", flush=True)
            fills += len(sim.fills)
            signals += len(sim.signals)
            trips += sim.halted_at is not None
        secs = time.perf_counter() - t0
        results[name] = {"configs": args.configs, "differing": len(bad), "fills": fills,
                         "signals": signals, "breaker_trips": trips,
                         "seconds": round(secs, 1), "failures": bad}
        failed += len(bad)
        print(f"{name:20} {args.configs} configs  differing {len(bad)}  signals {signals}  "
              f"fills {fills}  breaker trips {trips}  ({secs:.0f} s)", flush=True)
    out = ROOT / "benchmarks" / "results" / "kernel_parity.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(),
                               "first_seed": args.seed, "strategies": results},
                              indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
