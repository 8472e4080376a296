"""End to end with the portfolio VaR limit on: the multi-process mesh and the in-process
replay (``backend.mesh.simulate``) decide the same, order for order and fill for fill.

The risk agent builds its closes from the ``market_data`` stream and the replay from its
candles; the Monte Carlo method (seeded) is used so that any difference in the data or
the seed would show.  The limit is set low enough that some orders are rejected with rule
``var_limit`` and the alerts fire.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backend.persistence import Store, make_engine

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
BARS_PER_SYMBOL = 500


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not on PATH (scripts/test.sh installs it)")
    var = tmp_path_factory.mktemp("var")
    env = dict(os.environ)
    for k in ("REDIS_URL", "TRADINGMESH_REDIS_URL", "DATABASE_URL", "TRADINGMESH_SETTINGS_FILE",
              "TRADINGMESH_FAILPOINTS"):
        env.pop(k, None)
    env.update({
        "TRADINGMESH_VAR_DIR": str(var), "TRADINGMESH_RISK__VAR_LIMIT": "0.004",
        "TRADINGMESH_RISK__VAR_METHOD": "monte_carlo", "TRADINGMESH_RISK__VAR_WINDOW": "100",
        "TRADINGMESH_RISK__MIN_CONFIDENCE": "0.5",
    })
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "run", "--limit", str(BARS_PER_SYMBOL)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (out,) = (var / "runs").iterdir()
    return out


def test_mesh_and_replay_agree_with_the_var_limit_on(run_dir: Path) -> None:
    from backend.marketdata.candles import load_dir
    from backend.mesh.simulate import simulate
    from backend.settings import Settings

    settings = Settings.model_validate_json((run_dir / "settings.json").read_bytes())
    assert settings.risk.var_limit == 0.004 and settings.risk.var_method == "monte_carlo"
    sim = simulate(settings, load_dir(settings.data_dir, settings.symbols), BARS_PER_SYMBOL)
    store = Store(make_engine(f"sqlite:///{run_dir / 'tradingmesh.db'}"))
    mesh_risk = sorted((d["signal_id"], bool(d["approved"]), d["rule"])
                       for d in store.decisions() if d["stage"] == "risk")
    sim_risk = sorted((sid, ok, rule) for sid, stage, ok, rule in sim.decisions
                      if stage == "risk")
    assert mesh_risk == sim_risk
    assert sum(rule == "var_limit" for _, _, rule in sim_risk) > 0
    mesh_fills = sorted((f["fill_id"], f["symbol"], f["side"], f["quantity"], f["price"])
                        for f in store.fills())
    sim_fills = sorted((f.fill_id, f.symbol, f.side.value, f.quantity, f.price)
                       for f in sim.fills)
    assert mesh_fills and mesh_fills == sim_fills
    alerts = store.audit(action="var_alert")
    assert alerts and {a["decision"] for a in alerts} <= {"warning", "breach", "cleared"}
