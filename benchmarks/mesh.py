"""Mesh latency and throughput against the floor of a bare 4-hop Redis relay (issue 8).

In one run, on real redis-servers on loopback:

1. **floor** (:mod:`relay`): 5 plain redis-py processes relay a payload of the size of
   a real ``BarClosed`` JSON over 4 hops, with the mesh's primitive (``stream``:
   XREADGROUP, then XADD + PUBLISH + XACK in one MULTI/EXEC) and with bare pub/sub;
   publish -> 5th process, at 500 and 2,000 msg/s;
2. **mesh** (:mod:`mesh_run`): the real agent processes market_data -> strategy ->
   compliance -> risk -> execution with the benchmark-only ``every_tick`` strategy (a
   BUY on every bar; rules set so every signal becomes an order); latency from the
   tick's publication (``BarClosed.ts``) to the order's hand-off to the paper venue
   (``OrderAccepted.ts``), p50/p99/max, at target rates of 500 and 2,000 ticks/s (what
   market_data's pacing reaches is reported as ``offered``) and at a light load;
3. **throughput**: the mesh's capacity (orders/s while a backlog drains) from the
   overloaded runs, then runs at 90% of it (stepping down 20% while the backlog still
   grows) to find the highest rate whose backlog stays flat;
4. CPU % and peak RSS per agent process (psutil).

Each figure is repeated ``--repeat`` times (default 3); the median is printed with the
ratio mesh / floor.  Writes ``benchmarks/results/mesh.json`` (``--out``).

    .venv/bin/python benchmarks/mesh.py [--repeat 3] [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import numpy as np  # noqa: E402
from mesh_costs import unit_costs  # noqa: E402
from mesh_run import RULES, SYMBOL, WARMUP_FRAC, analyse, run_mesh  # noqa: E402
from relay import run_floor  # noqa: E402

from backend.marketdata.candles import load_dir  # noqa: E402
from backend.mesh.pipeline import bar_message  # noqa: E402
from backend.redisctl.server import RedisServer  # noqa: E402

LATENCY_KEYS = ("p50_ms", "p99_ms", "max_ms")
AGENTS = ("market_data", "strategy:ETHBTC", "compliance", "risk", "execution")
GOAL_RATIO, GOAL_TICKS_PER_S = 3.0, 10_000


def _median(values: list[float]) -> float:
    vals = [v for v in values if v == v]  # drop NaN
    return float(statistics.median(vals)) if vals else float("nan")


def _median_of(runs: list[dict], *path: str) -> float:
    def get(d: dict) -> float:
        for k in path:
            d = d.get(k, {}) if isinstance(d, dict) else {}
        return d if isinstance(d, int | float) else float("nan")

    return _median([get(r) for r in runs])


def _payload() -> bytes:
    """A real ``BarClosed`` JSON of the benchmark's symbol (the floor's message)."""
    candles = load_dir(ROOT / "data" / "sample", [SYMBOL], "5m")[SYMBOL]
    data = bar_message(candles, 0, 1, "5m").to_json()
    return data if isinstance(data, bytes) else data.encode()


def floor_figures(pairs: list[tuple[int, int]]) -> dict:
    """p50/p99/max (ms) of ``(published ns, received ns)`` pairs, first 10% left out."""
    pairs = sorted(pairs)[int(len(pairs) * WARMUP_FRAC):]
    lat = np.array([b - a for a, b in pairs], dtype=np.int64)
    span = (pairs[-1][0] - pairs[0][0]) / 1e9 if len(pairs) > 1 else 0.0
    return {"messages": len(pairs), "rate_per_s": (len(pairs) - 1) / span if span else 0.0,
            "p50_ms": float(np.percentile(lat, 50)) / 1e6,
            "p99_ms": float(np.percentile(lat, 99)) / 1e6, "max_ms": float(lat.max()) / 1e6}


def measure_floor(work: Path, rates: list[float], seconds: float, repeat: int) -> dict:
    """``{mode: {rate: {"runs": [...], "median": {...}}}}`` for both primitives."""
    payload = _payload()
    out: dict = {"payload_bytes": len(payload)}
    with RedisServer(work / "floor-redis", die_with_parent=True) as server:
        for mode in ("stream", "pubsub"):
            out[mode] = {}
            for rate in rates:
                runs = [floor_figures(run_floor(server.url, mode, rate,
                                                max(50, int(rate * seconds)), payload))
                        for _ in range(repeat)]
                out[mode][str(rate)] = {"runs": runs, "median": {
                    k: _median([r[k] for r in runs]) for k in (*LATENCY_KEYS, "rate_per_s")}}
    return out


def _summary(runs: list[dict]) -> dict:
    """Medians over runs of one mesh configuration."""
    s = {k: _median_of(runs, "latency", k) for k in LATENCY_KEYS}
    for k in ("offered_ticks_per_s", "orders_per_s", "backlog_growth_per_s",
              "redis_backlog_growth_per_s", "redis_backlog_max", "ticks", "orders_at_venue"):
        s[k] = _median_of(runs, k)
    s["stage_p50_ms"] = {st: _median_of(runs, "stage_p50_ms", st)
                         for st in ("strategy", "compliance", "risk", "execution")}
    s["mark_lag_p50_ms"] = _median_of(runs, "mark_lag_p50_ms")
    s["db_rows_per_tick"] = {k: _median_of(runs, "db_rows_per_tick", k)
                             for k in runs[0]["db_rows_per_tick"]}
    names = sorted({n for r in runs for n in r["cpu_pct"]})
    s["cpu_pct"] = {n: _median_of(runs, "cpu_pct", n) for n in names}
    s["rss_peak_mib"] = {n: _median_of(runs, "rss_peak_mib", n) for n in names}
    s["sustained_runs"] = sum(bool(r["sustained"]) for r in runs)
    return s


def mesh_config(work: Path, name: str, rate: float, ticks: int, repeat: int) -> dict:
    """Run the mesh ``repeat`` times at ``rate`` ticks/s; runs and medians."""
    runs = []
    for i in range(repeat):
        t0 = time.monotonic()
        fig = analyse(run_mesh(work / f"{name}-{i + 1}", rate, ticks))
        fig["wall_s"] = round(time.monotonic() - t0, 1)
        runs.append(fig)
        lat = fig["latency"]
        print(f"  mesh {name} run {i + 1}: offered {fig['offered_ticks_per_s']:.0f}/s, "
              f"orders {fig['orders_at_venue']}/{fig['ticks']}, p50 {lat['p50_ms']:.1f} ms, "
              f"p99 {lat['p99_ms']:.1f} ms, sustained {fig['sustained']} "
              f"({fig['wall_s']} s)", flush=True)
    return {"target_rate": rate, "ticks_per_run": ticks, "runs": runs, "median": _summary(runs)}


def _pacing_overhead_s(runs: list[dict]) -> float:
    """Median seconds per bar market_data spends beyond its pacing sleep (``1 / offered -
    1 / target``): the sleep is rounded up to whole ms and the bar's EXEC comes on top."""
    return max(0.0, _median([1 / r["offered_ticks_per_s"] - 1 / r["target_rate"]
                             for r in runs if r["offered_ticks_per_s"] > 0]))


def throughput(work: Path, overloaded: list[dict], seconds: float, repeat: int,
               steps: int = 3) -> dict:
    """Highest offered rate with a flat backlog, starting at 90% of the measured capacity
    (target rates corrected for market_data's pacing overhead); after a step whose backlog
    grew, 20% lower or 90% of the orders/s that step got through, whichever is lower."""
    runs = [r for cfg in overloaded for r in cfg["runs"]]
    over = [r for r in runs if not r["sustained"]]
    if not over:  # the mesh kept up with everything market_data offered
        best = max(cfg["median"]["offered_ticks_per_s"] for cfg in overloaded)
        return {"capacity_orders_per_s": None, "steps": [], "sustained_ticks_per_s": best,
                "lower_bound": True,
                "note": "every run kept up: the figure is market_data's pacing ceiling"}
    capacity = _median([r["orders_per_s"] for r in over])
    overhead = _pacing_overhead_s(runs)
    want, done = 0.9 * capacity, []
    for k in range(steps):
        period = 1 / want - overhead
        target = round(1 / period, 1) if period > 0 else max(r["target_rate"] for r in runs)
        cfg = mesh_config(work, f"throughput-{k + 1}", target, max(40, int(want * seconds)),
                          repeat)
        cfg["wanted_offered_rate"] = want
        done.append(cfg)
        if 2 * cfg["median"]["sustained_runs"] > repeat:
            return {"capacity_orders_per_s": capacity, "steps": done, "lower_bound": False,
                    "pacing_overhead_ms": overhead * 1e3,
                    "sustained_ticks_per_s": cfg["median"]["offered_ticks_per_s"]}
        want = min(0.8 * want, 0.9 * cfg["median"]["orders_per_s"])
    return {"capacity_orders_per_s": capacity, "steps": done, "lower_bound": False,
            "pacing_overhead_ms": overhead * 1e3, "sustained_ticks_per_s": None,
            "note": f"no flat backlog in {steps} steps"}


def _ratio(a: float, b: float) -> float:
    return a / b if b and a == a and b == b else float("nan")


def report(res: dict) -> None:
    """Print the tables (medians, ratios to the floor)."""
    fl, rep = res["floor"], res["repeat"]
    print(f"\nFloor: bare 4-hop relay, 5 redis-py processes, {fl['payload_bytes']}-byte "
          f"payload (median of {rep})")
    print(f"{'primitive':10s} {'rate/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}")
    for mode in ("stream", "pubsub"):
        for rate, cfg in fl[mode].items():
            m = cfg["median"]
            print(f"{mode:10s} {float(rate):8.0f} {m['p50_ms']:8.3f} {m['p99_ms']:8.3f} "
                  f"{m['max_ms']:8.3f}")
    print(f"\nMesh: tick published -> order handed to the venue (median of {rep})")
    print(f"{'config':14s} {'offered/s':>9s} {'orders/s':>9s} {'p50 ms':>9s} {'p99 ms':>9s} "
          f"{'max ms':>9s} {'p50/stream':>10s} {'p50/pubsub':>10s} {'flat':>5s}")
    for name, cfg in res["mesh"].items():
        m, r = cfg["median"], res["ratios"][name]
        print(f"{name:14s} {m['offered_ticks_per_s']:9.0f} {m['orders_per_s']:9.0f} "
              f"{m['p50_ms']:9.1f} {m['p99_ms']:9.1f} {m['max_ms']:9.1f} "
              f"{r['p50_vs_stream']:9.1f}x {r['p50_vs_pubsub']:9.1f}x "
              f"{m['sustained_runs']:>3d}/{len(cfg['runs'])}")
    print("\nStage p50 (ms; from the previous agent's message stamp to this agent's):")
    for name, cfg in res["mesh"].items():
        st = cfg["median"]["stage_p50_ms"]
        print(f"  {name:14s} " + "  ".join(f"{k} {v:.2f}" for k, v in st.items())
              + f"  | portfolio mark after {cfg['median']['mark_lag_p50_ms']:.1f}")
    rows = next(iter(res["mesh"].values()))["median"]["db_rows_per_tick"]
    print("Database rows written per tick: " + ", ".join(
        f"{k} {v:.2f}" for k, v in rows.items() if v))
    tp = res["throughput"]
    cap = tp["capacity_orders_per_s"]
    print(f"\nThroughput: capacity {cap:.0f} orders/s while a backlog drains; " if cap else
          "\nThroughput: ", end="")
    sus = tp["sustained_ticks_per_s"]
    print(f"sustained (flat backlog) {sus:.0f} ticks/s per strategy agent "
          f"{'(lower bound) ' if tp['lower_bound'] else ''}(goal {GOAL_TICKS_PER_S:,})"
          if sus else f"no sustained rate found ({tp.get('note', '')})")
    name = res["resources_config"]
    m = res["mesh"][name]["median"]
    print(f"\nCPU % (100 = one core) and peak RSS MiB per process, at '{name}':")
    for a in (*AGENTS, "redis-server"):
        print(f"  {a:16s} cpu {m['cpu_pct'].get(a, float('nan')):6.1f}%  "
              f"rss {m['rss_peak_mib'].get(a, float('nan')):7.1f}")
    print(f"  {'agents total':16s} cpu {res['agents_total']['cpu_pct']:6.1f}%  "
          f"rss {res['agents_total']['rss_mib']:7.1f}")
    print("\nUnit costs (ms, median, each alone): " + ", ".join(
        f"{k.removesuffix('_ms')} {v:.3f}" for k, v in res["unit_costs_ms"].items()))


def main(argv: list[str] | None = None) -> int:
    """Run everything, print the tables, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny durations, 1 run")
    ap.add_argument("--rates", type=float, nargs="+", default=[500.0, 2000.0])
    ap.add_argument("--ticks", type=int, default=600, help="ticks per run at --rates")
    ap.add_argument("--light-rate", type=float, default=20.0, help="0 = no light-load runs")
    ap.add_argument("--sustain-s", type=float, default=6.0, help="seconds of ticks per "
                    "throughput run")
    ap.add_argument("--steps", type=int, default=3, help="throughput steps at most")
    ap.add_argument("--floor-s", type=float, default=2.0, help="seconds per floor run")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mesh.json")
    ap.add_argument("--workdir", type=Path, default=None, help="keep run files (logs) here")
    a = ap.parse_args(argv)
    if a.quick:
        a.repeat, a.ticks, a.light_rate, a.sustain_s, a.floor_s = 1, 40, 0.0, 0.3, 0.2
    started, load0 = time.time(), os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = a.workdir or Path(tmp)
        print(f"floor: stream and pub/sub relays at {a.rates} msg/s", flush=True)
        floor_rates = list(a.rates) + ([a.light_rate] if a.light_rate else [])
        floor = measure_floor(work, floor_rates, a.floor_s, a.repeat)
        mesh = {}
        for rate in a.rates:
            mesh[f"{rate:.0f}/s"] = mesh_config(work, f"rate-{rate:.0f}", rate, a.ticks,
                                                a.repeat)
        overloaded = list(mesh.values())
        if a.light_rate:
            n = max(40, int(a.light_rate * 7.5))
            mesh[f"light {a.light_rate:.0f}/s"] = mesh_config(work, "light", a.light_rate, n,
                                                              a.repeat)
        steps = 1 if a.quick else a.steps
        tp = throughput(work, overloaded, a.sustain_s, a.repeat, steps=steps)
        with RedisServer(work / "costs-redis", die_with_parent=True) as server:
            costs = unit_costs(server.url, n=50 if a.quick else 300)
    for step in tp["steps"]:
        mesh[f"throughput {step['wanted_offered_rate']:.0f}/s"] = step
    res = {"benchmark": "mesh latency and throughput vs a bare 4-hop Redis relay",
           "command": "python benchmarks/mesh.py " + " ".join(argv or sys.argv[1:]),
           "date": time.strftime("%Y-%m-%d", time.gmtime()), "repeat": a.repeat,
           "quick": a.quick, "ticks_per_run": a.ticks, "warmup_frac": WARMUP_FRAC,
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "platform": platform.platform(), "loadavg_start": load0,
                       "loadavg_end": os.getloadavg()},
           "settings": {"symbol": SYMBOL, "strategy": "every_tick",
                        **{k: v.model_dump() for k, v in RULES.items()}},
           "floor": floor, "mesh": mesh, "unit_costs_ms": costs,
           "throughput": {k: v for k, v in tp.items() if k != "steps"}}
    res["ratios"] = {}
    for name, cfg in mesh.items():
        key = str(cfg["target_rate"]) if str(cfg["target_rate"]) in floor["stream"] \
            else str(a.rates[0])
        res["ratios"][name] = {
            "floor_rate": float(key),
            **{f"{k.split('_')[0]}_vs_{mode}": _ratio(cfg["median"][k],
                                                       floor[mode][key]["median"][k])
               for k in LATENCY_KEYS for mode in ("stream", "pubsub")}}
    res["resources_config"] = next(
        (n for n in reversed(mesh) if n.startswith("throughput")), next(iter(mesh)))
    m = mesh[res["resources_config"]]["median"]
    res["agents_total"] = {"cpu_pct": sum(m["cpu_pct"].get(x, 0.0) for x in AGENTS),
                           "rss_mib": sum(m["rss_peak_mib"].get(x, 0.0) for x in AGENTS)}
    best = min((cfg["median"]["p50_ms"] for cfg in mesh.values()), default=float("nan"))
    res["goals"] = {
        "p50_within_3x_floor": {n: r["p50_vs_stream"] <= GOAL_RATIO
                                for n, r in res["ratios"].items()},
        "best_p50_ms": best,
        "ticks_per_s_per_strategy_agent": tp["sustained_ticks_per_s"],
        "throughput_goal_met": bool(tp["sustained_ticks_per_s"]
                                    and tp["sustained_ticks_per_s"] >= GOAL_TICKS_PER_S)}
    res["wall_s"] = round(time.time() - started, 1)
    report(res)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"\nwritten {a.out} ({res['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
