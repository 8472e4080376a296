"""End to end: ``tradingmesh drill --venue exchange-sim`` -- the whole mesh through real
ccxt against the exchange simulator, every venue fault once (a short seeded run; the
long one is ``tradingmesh drill --venue exchange-sim --injections 5``), and the books
checked against the exchange's own records.

The faults: an order creation landing after ccxt's timeout, one held past recvWindow
(refused on arrival), a market order that fills half and expires, 5xx and 429 answers,
dropped connections, orders placed by hand, execution SIGKILLed, and reconciliation
killed twice on the way back.  Fees are taken in the base asset throughout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from orchestrator.drill_venue_faults import VENUE_GAUNTLET

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("CI=true but redis-server is not on PATH")
        pytest.skip("redis-server not on PATH (scripts/test.sh installs it)")
    var = tmp_path_factory.mktemp("venue-drill")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "TRADINGMESH_"))}
    env["TRADINGMESH_VAR_DIR"] = str(var)
    out = var / "drill" / "drill.json"
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "drill", "--venue", "exchange-sim",
         "--faults", "gauntlet", "--injections", "1", "--limit", "320", "--seed", "5",
         "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert out.exists(), proc.stdout[-4000:] + proc.stderr[-4000:]
    return orjson.loads(out.read_bytes()), proc.stdout


def test_the_exchange_and_our_books_agree_after_every_venue_fault(report: tuple[dict, str]
                                                                  ) -> None:
    rep, stdout = report
    (run,) = rep["runs"]
    assert run["error"] == "", run["error"]
    books = run["books"]
    failed = [c for c in books["checks"] if not c["ok"]]
    assert not failed, failed
    names = {c["name"] for c in books["checks"]}
    assert {"exchange_ids_unique", "exchange_orders", "exchange_fills", "positions",
            "protected", "unknown_alerted"} <= names
    assert books["lost"] == 0 and books["duplicated"] == 0
    assert books["orders"] > 50 and books["fills"] > 50, "the drill must trade to prove it"
    assert rep["ok"] and rep["venue"] == "exchange-sim", stdout[-3000:]


def test_every_venue_fault_hit_and_recovered(report: tuple[dict, str]) -> None:
    rep, _ = report
    (run,) = rep["runs"]
    hit = {e["fault"] for e in run["faults"]}
    assert hit == set(VENUE_GAUNTLET), hit
    bad = [e for e in run["faults"] if not e["ok"] or e["recovery_s"] is None]
    assert not bad, bad
    late = [e for e in run["faults"] if e["fault"] == "late"]
    assert "our books: " in late[0]["detail"] and "UNKNOWN" not in late[0]["detail"]
    assert run["restarts"].get("execution", 0) >= 2  # kill-execution, reconcile-crash
