"""Speed of the in-process replay (``backend.mesh.simulate``) over the sample data.

The same pure functions as the mesh, in one loop: the reference the mesh is compared with.
Prints the figures and writes ``benchmarks/results/simulate.json``.

    .venv/bin/python benchmarks/simulate.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.marketdata.candles import load_dir  # noqa: E402
from backend.mesh.simulate import simulate  # noqa: E402
from backend.settings import Settings  # noqa: E402


def main() -> int:
    """Time ``simulate`` over all sample bars ``--repeat`` times."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    s = Settings()
    candles = load_dir(s.data_dir, s.symbols)
    times, res = [], None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        res = simulate(s, candles)
        times.append(time.perf_counter() - t0)
    bars = len(res.marks)
    med = statistics.median(times)
    result = {
        "benchmark": "in-process replay (backend.mesh.simulate), default settings, sample data",
        "bars": bars,
        "runs": args.repeat,
        "median_s": round(med, 3),
        "bars_per_s": round(bars / med, 1),
        "signals": len(res.signals),
        "fills": len(res.fills),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    out = ROOT / "benchmarks" / "results" / "simulate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for k, v in result.items():
        print(f"{k:12s} {v}")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
