"""Replay throughput of the live multi-process mesh (``tradingmesh run --speed max``).

Runs the sample data (or ``--limit`` bars per symbol) through all agents on a private
redis-server and reports bars per second end to end (back-pressure on: the next bar is
released only after every consumer acknowledged the previous one).  Prints the figures and
writes ``benchmarks/results/replay.json``.

    .venv/bin/python benchmarks/replay.py [--limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    """Run the replay once and record the figures."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--limit", type=int, default=0, help="bars per symbol (0 = all)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        env["TRADINGMESH_VAR_DIR"] = tmp
        report = Path(tmp) / "report.json"
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", "run", "--limit", str(args.limit),
             "--report", str(report)],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )
        total = time.monotonic() - t0
        if proc.returncode != 0:
            print(proc.stdout[-2000:], proc.stderr[-2000:])
            return 1
        rep = json.loads(report.read_text())
    bars, wall = rep["bars"], rep["wall_time_s"]
    result = {
        "benchmark": "mesh replay, speed=max, 8 agent processes, real redis-server",
        "bars": bars,
        "replay_wall_s": round(wall, 2),
        "bars_per_s": round(bars / wall, 1),
        "ms_per_bar": round(1000 * wall / bars, 3),
        "total_wall_s_incl_startup_and_report": round(total, 2),
        "messages": sum(rep["messages_per_channel"].values()),
        "trades": rep["total"]["trades"],
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    out = ROOT / "benchmarks" / "results" / "replay.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for k, v in result.items():
        print(f"{k:40s} {v}")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
