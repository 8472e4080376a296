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

import pytest

from orchestrator.drills.venue_faults import VENUE_GAUNTLET
from tests.support.helpers import need_redis_server, run_drill_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    need_redis_server()
    rep, proc = run_drill_cli(
        tmp_path_factory.mktemp("venue-drill"), "--venue", "exchange-sim", "--faults",
        "gauntlet", "--injections", "1", "--limit", "320", "--seed", "5", timeout=900)
    return rep, proc.stdout


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
