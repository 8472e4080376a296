"""End to end: the strategy library trades through the multi-process mesh with parity.

One ``tradingmesh run`` where every symbol runs another strategy of the library
(``rsi_reversion``, ``bollinger_reversion``, ``vwap_momentum`` and a regime-gated
``combined`` of ``smc`` + ``rsi_reversion``), compared with the in-process replay
(:func:`backend.mesh.simulate.simulate`, the backtest core): the same signals (with their
regimes) and the same fills, to the last bit.
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
BARS_PER_SYMBOL = 900

CONFIG = """
[risk]
min_confidence = 0.3

[strategies.ETHBTC]
name = "rsi_reversion"

[strategies.LTCBTC]
name = "bollinger_reversion"

[strategies.ADABTC]
name = "vwap_momentum"

[strategies.DASHBTC]
name = "combined"
threshold = 0.3
regimes = ["ranging", "trending_up", "trending_down"]
components = [{name = "smc", weight = 2.0}, {name = "rsi_reversion", weight = 1.0}]
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("CI=true but redis-server is not on PATH")
        pytest.skip("redis-server not on PATH (scripts/test.sh installs it)")
    var = tmp_path_factory.mktemp("var")
    cfg = var / "tradingmesh.toml"
    cfg.write_text(CONFIG)
    env = dict(os.environ)
    for k in ("REDIS_URL", "TRADINGMESH_REDIS_URL", "DATABASE_URL", "TRADINGMESH_SETTINGS_FILE",
              "TRADINGMESH_FAILPOINTS"):
        env.pop(k, None)
    env["TRADINGMESH_VAR_DIR"] = str(var)
    env["TRADINGMESH_CONFIG"] = str(cfg)
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "run", "--limit", str(BARS_PER_SYMBOL)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = (var / "runs").iterdir()
    return run


def test_every_strategy_of_the_library_signals_in_the_mesh(run_dir: Path) -> None:
    store = Store(make_engine(f"sqlite:///{run_dir / 'tradingmesh.db'}"))
    by_symbol: dict[str, set[str]] = {}
    for s in store.signals():
        by_symbol.setdefault(s["symbol"], set()).add(s["strategy"])
        assert s["regime"], "every signal carries its market regime"
    assert by_symbol == {"ETH/BTC": {"rsi_reversion"}, "LTC/BTC": {"bollinger_reversion"},
                         "ADA/BTC": {"vwap_momentum"}, "DASH/BTC": {"combined"}}


def test_mesh_equals_the_in_process_replay(run_dir: Path) -> None:
    """Backtest = live for the library: same signals (side, confidence, regime) and fills."""
    from backend.marketdata.candles import load_dir
    from backend.mesh.simulate import simulate
    from backend.settings import Settings

    settings = Settings.model_validate_json((run_dir / "settings.json").read_bytes())
    assert settings.strategy_for("DASH/BTC").name == "combined"
    sim = simulate(settings, load_dir(settings.data_dir, settings.symbols), BARS_PER_SYMBOL)
    store = Store(make_engine(f"sqlite:///{run_dir / 'tradingmesh.db'}"))
    mesh_signals = sorted((s["id"], s["symbol"], s["side"], s["confidence"], s["regime"])
                          for s in store.signals())
    sim_signals = sorted((s.id, s.symbol, s.side.value, s.confidence, s.regime)
                         for s in sim.signals)
    assert mesh_signals and mesh_signals == sim_signals
    mesh_fills = sorted((f["fill_id"], f["client_order_id"], f["quantity"], f["price"], f["fee"])
                        for f in store.fills())
    sim_fills = sorted((f.fill_id, f.client_order_id, f.quantity, f.price, f.fee)
                       for f in sim.fills)
    assert mesh_fills and mesh_fills == sim_fills
