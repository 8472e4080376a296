"""Time from ``POST /api/emergency-stop`` to a flat paper account, over several stops.

Starts ``tradingmesh up`` (private redis-server, replay at ``--speed`` x real time, risk's
confidence gate off so positions open often), then ``--runs`` times: wait until a
position is open, trigger the kill switch over HTTP, and measure

* ``call_to_confirmed_s``: the HTTP call's duration (latch, audit, command on the durable
  ``orders`` stream, execution cancels and flattens, its confirmation read back);
* ``call_to_flat_s``: until ``GET /api/positions`` shows no position (client's view);

then resets the latch (audited) and goes on.  Prints the figures, writes
``benchmarks/results/kill_switch.json``.

    .venv/bin/python benchmarks/kill_switch.py [--runs 7] [--speed 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "benchmark-token"


def _call(base: str, method: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {TOKEN}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read())


def _until(pred, timeout: float, what: str):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> int:
    """Run the stops and record the figures."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--speed", type=float, default=3000)
    ap.add_argument("--port", type=int, default=8791)
    args = ap.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        env.update({"TRADINGMESH_VAR_DIR": tmp, "TRADINGMESH_API_TOKEN": TOKEN,
                    "TRADINGMESH_RISK__MIN_CONFIDENCE": "0"})
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "up", "--no-dashboard",
             "--speed", str(args.speed), "--api-port", str(args.port)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            _until(lambda: _call(base, "GET", "/api/health"), 90, "the API")
            for i in range(args.runs):
                _until(lambda: _call(base, "GET", "/api/positions")["positions"], 300,
                       "an open position")
                t0 = time.perf_counter()
                res = _call(base, "POST", "/api/emergency-stop",
                            {"reason": f"benchmark stop {i + 1}", "wait_s": 30})
                t1 = time.perf_counter()
                _until(lambda: not _call(base, "GET", "/api/positions")["positions"], 30,
                       "a flat account")
                t2 = time.perf_counter()
                rows.append({
                    "run": i + 1, "confirmed": res["confirmed"],
                    "positions_closed": len(res["flattened"]),
                    "orders_cancelled": len(res["cancelled_orders"]),
                    "call_to_confirmed_s": round(t1 - t0, 4),
                    "call_to_flat_s": round(t2 - t0, 4),
                })
                print(f"stop {i + 1}: closed {len(res['flattened'])} positions, cancelled "
                      f"{len(res['cancelled_orders'])} orders; confirmed in "
                      f"{(t1 - t0) * 1000:.1f} ms, flat seen after {(t2 - t0) * 1000:.1f} ms")
                _call(base, "POST", "/api/circuit-breaker/reset",
                      {"reason": f"benchmark: resume after stop {i + 1}"})
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
    conf = [r["call_to_confirmed_s"] for r in rows]
    flat = [r["call_to_flat_s"] for r in rows]
    out = {
        "benchmark": "kill_switch", "runs": rows, "speed": args.speed,
        "median_call_to_confirmed_s": statistics.median(conf), "max_call_to_confirmed_s": max(conf),
        "median_call_to_flat_s": statistics.median(flat), "max_call_to_flat_s": max(flat),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "command": "python benchmarks/kill_switch.py " + " ".join(sys.argv[1:]),
    }
    print(f"emergency stop -> flat: median {out['median_call_to_flat_s'] * 1000:.1f} ms, "
          f"max {out['max_call_to_flat_s'] * 1000:.1f} ms over {len(rows)} stops "
          f"(confirmed: median {out['median_call_to_confirmed_s'] * 1000:.1f} ms)")
    dest = ROOT / "benchmarks" / "results" / "kill_switch.json"
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
