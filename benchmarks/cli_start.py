"""Start-up time of the command line: ``tradingmesh --help``, ``tradingmesh status`` (one
agent heartbeat in a private ``redis-server``) and ``tradingmesh strategies --json``.

Each command runs ``--runs`` times as a fresh process (the console script in the
project's virtual environment, as a user types it); the figures are wall-clock seconds per
process, median and max.  Prints them and writes ``benchmarks/results/cli_start.json``.

    .venv/bin/python benchmarks/cli_start.py [--runs 9]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from backend import channels
from backend.messages import AgentHeartbeat, AgentState, now_ns
from backend.redisctl.process import RedisServer

ROOT = Path(__file__).resolve().parent.parent


def _time(cmd: list[str], env: dict[str, str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        out.append(time.perf_counter() - t0)
        if res.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} exited {res.returncode}: {res.stderr[-500:]}")
    return out


def main() -> int:
    """Time the commands and record the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    script = str(Path(sys.executable).parent / "tradingmesh")
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp), appendonly=False) as srv:
        hb = AgentHeartbeat(source="execution", agent_id="execution", role="execution",
                            state=AgentState.RUNNING,
                            pid=os.getpid(), started_at=now_ns())
        srv.client().set(channels.health_key(hb.agent_id), hb.model_dump_json())
        env = {**os.environ, "REDIS_URL": srv.url, "TRADINGMESH_VAR_DIR": tmp}
        cases = {
            "--help": [script, "--help"],
            "status": [script, "status"],
            "strategies --json": [script, "strategies", "--json"],
        }
        figures = {}
        for name, cmd in cases.items():
            _time(cmd, env, 1)  # warm the file cache
            ts = _time(cmd, env, args.runs)
            figures[name] = {"median_s": round(statistics.median(ts), 3),
                             "max_s": round(max(ts), 3), "runs": len(ts)}
            print(f"tradingmesh {name:18} median {statistics.median(ts):.3f} s  "
                  f"max {max(ts):.3f} s  ({len(ts)} runs)")
    out = ROOT / "benchmarks" / "results" / "cli_start.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(),
                               "python": platform.python_version(), "figures": figures},
                              indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
