"""End to end: ``tradingmesh run`` replays sample data through the multi-process mesh.

Every fill must trace back through order -> risk decision -> compliance decision ->
signal by ``correlation_id``, with an audit row for each decision.  The same run is
compared with the in-process replay (fills, to the last bit) and with the backtester
(``--sizing risk``: the trade list), so the mesh is started once for all of them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from backend.persistence import Store, make_engine

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
BARS_PER_SYMBOL = 700


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("CI=true but redis-server is not on PATH")
        pytest.skip("redis-server not on PATH (scripts/test.sh installs it)")
    var = tmp_path_factory.mktemp("var")
    env = dict(os.environ)
    for k in ("REDIS_URL", "TRADINGMESH_REDIS_URL", "DATABASE_URL", "TRADINGMESH_SETTINGS_FILE",
              "TRADINGMESH_FAILPOINTS"):
        env.pop(k, None)
    env["TRADINGMESH_VAR_DIR"] = str(var)
    report = var / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "run", "--limit", str(BARS_PER_SYMBOL),
         "--report", str(report)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run_dir,) = (var / "runs").iterdir()
    return orjson.loads(report.read_bytes()), run_dir


def test_run_completes_and_trades(replay: tuple[dict, Path]) -> None:
    report, _ = replay
    assert report["bars"] == 4 * BARS_PER_SYMBOL
    assert report["total"]["trades"] > 0
    assert set(report["symbols"]) <= {"ETH/BTC", "LTC/BTC", "ADA/BTC", "DASH/BTC"}
    counts = report["messages_per_channel"]
    assert counts["market_data"] == 4 * BARS_PER_SYMBOL
    assert counts["signals"] == counts["signals:approved"] + _compliance_rejections(replay)
    assert report["orders_by_status"].get("FILLED", 0) > 0
    assert report["final_equity"] is not None


def _compliance_rejections(replay: tuple[dict, Path]) -> int:
    store = Store(make_engine(f"sqlite:///{replay[1] / 'tradingmesh.db'}"))
    return sum(1 for d in store.decisions() if d["stage"] == "compliance" and not d["approved"])


def test_every_fill_traces_back_to_its_signal(replay: tuple[dict, Path]) -> None:
    _, run_dir = replay
    store = Store(make_engine(f"sqlite:///{run_dir / 'tradingmesh.db'}"))
    fills = store.fills()
    assert fills
    signals = {s["id"]: s for s in store.signals()}
    for fill in fills:
        order = store.get_order(fill["client_order_id"])
        assert order is not None, f"fill {fill['fill_id']} has no order"
        cid = fill["correlation_id"]
        assert cid and order["correlation_id"] == cid
        trace = store.trace(cid)
        assert trace["signal"] is not None and trace["signal"]["id"] in signals
        stages = {d["stage"]: d for d in trace["decisions"]}
        assert stages["compliance"]["approved"], f"{cid}: no compliance approval"
        assert stages["risk"]["approved"], f"{cid}: no risk approval"
        audited = {a["action"] for a in trace["audit"]}
        assert {"compliance_check", "risk_check"} <= audited, f"{cid}: audit rows {audited}"


def test_every_signal_is_accounted_for(replay: tuple[dict, Path]) -> None:
    _, run_dir = replay
    store = Store(make_engine(f"sqlite:///{run_dir / 'tradingmesh.db'}"))
    decided = {}
    for d in store.decisions():
        decided.setdefault(d["signal_id"], []).append(d)
    orders = {o["signal_id"] for o in store.orders()}
    for sig in store.signals():
        ds = decided.get(sig["id"], [])
        assert ds, f"signal {sig['id']} has no decision"
        final = ds[-1] if len(ds) == 1 else next(d for d in ds if d["stage"] == "risk")
        if final["approved"]:
            assert sig["id"] in orders, f"approved signal {sig['id']} has no order"
        else:
            assert final["reason"], "a rejection must carry a reason"
    # no client order id was sent twice
    coids = [o["client_order_id"] for o in store.orders()]
    assert len(coids) == len(set(coids))


def test_mesh_replay_equals_in_process_replay_trade_for_trade(replay: tuple[dict, Path]) -> None:
    """Backtest = live: the same data and settings give the same fills, to the last bit."""
    from backend.marketdata.candles import load_dir
    from backend.mesh.simulate import simulate
    from backend.settings import Settings

    report, run_dir = replay
    settings = Settings.model_validate_json((run_dir / "settings.json").read_bytes())
    sim = simulate(settings, load_dir(settings.data_dir, settings.symbols), BARS_PER_SYMBOL)
    store = Store(make_engine(f"sqlite:///{run_dir / 'tradingmesh.db'}"))
    mesh = sorted(
        (f["fill_id"], f["client_order_id"], f["symbol"], f["side"], f["quantity"],
         f["price"], f["fee"], f["bar_seq"])
        for f in store.fills()
    )
    ours = sorted(
        (f.fill_id, f.client_order_id, f.symbol, f.side.value, f.quantity, f.price, f.fee,
         f.bar_seq)
        for f in sim.fills
    )
    assert mesh and mesh == ours
    assert {o["client_order_id"] for o in store.orders() if not o["client_order_id"].endswith(
        ("-sl", "-tp", "-flat"))} == {o.client_order_id for o in sim.orders}
    assert report["final_equity"] == sim.book.equity()


def test_mesh_trades_equal_the_backtesters_with_risk_sizing(replay: tuple[dict, Path]) -> None:
    """Parity with live: the backtester (``tradingmesh backtest --sizing risk``) over the same
    bars and parameters gives the mesh's trade list, closed and open trades alike."""
    from backend.backtest import run_backtest
    from backend.backtest.risk import run_risk
    from backend.marketdata.candles import load_dir
    from backend.settings import Settings

    report, run_dir = replay
    settings = Settings.model_validate_json((run_dir / "settings.json").read_bytes())
    candles = {sym: c.slice(0, BARS_PER_SYMBOL)
               for sym, c in load_dir(settings.data_dir, settings.symbols).items()}
    if settings.strategies:  # per-symbol strategies (a local config): the same core
        res = run_risk(settings, candles)
    else:
        cfg = settings.default_strategy
        res = run_backtest(candles, cfg.name, cfg.params, sizing="risk", settings=settings)

    def rows(trades: list, size: str) -> list[tuple]:
        keys = ("symbol", "side", "entry_time", "exit_time", "entry_price", "exit_price",
                "net_pnl", "fees", "exit_reason")
        return [(*(t[k] for k in keys), t[size]) for t in trades]

    ours = [t.model_dump() for t in res.trades]
    assert rows(report["trades"], "quantity") == rows(ours, "size")
    assert len(ours) == report["total"]["trades"] > 0
    assert rows(report["open_trades"], "quantity") == rows(
        [t.model_dump() for t in res.open_trades], "size")
