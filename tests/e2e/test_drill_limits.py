"""End to end: issue 15's drills on real meshes (``tradingmesh drill``): a loss forced past
the breaker with an entry resting, risk down while approvals queue, the database refusing
writes; Redis losing its data under a mesh on the exchange simulator.  Short seeded runs
(200 bars per symbol, one fault each); longer ones are
``tradingmesh drill --faults breaker-trip,risk-backlog,db-errors``."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.helpers import need_redis_server, run_drill_cli

pytestmark = pytest.mark.e2e
Report = tuple[dict, subprocess.CompletedProcess]


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> Report:
    need_redis_server()
    return run_drill_cli(tmp_path_factory.mktemp("drill"), "--faults",
                         "breaker-trip,risk-backlog,db-errors", "--injections", "1",
                         "--limit", "200", "--seed", "7", timeout=900)


def runs(drill: Report) -> dict[str, dict]:
    report, _ = drill
    return {r["scenario"]: r for r in report["runs"]}


def test_the_books_balance_after_each(drill: Report) -> None:
    report, proc = drill
    for name, run in runs(drill).items():
        assert run["error"] == "", (name, run["error"])
        books = run["books"]
        assert [c for c in books["checks"] if not c["ok"]] == [], name
        assert books["lost"] == 0 and books["duplicated"] == 0, name
        assert books["orders"] > 0, f"{name}: the drill must trade to prove anything"
    assert proc.returncode == 0 and report["ok"], proc.stdout[-4000:]


def test_the_breaker_cancels_the_resting_entry_and_no_entry_follows(drill: Report) -> None:
    (event,) = runs(drill)["breaker-trip"]["faults"]
    assert event["ok"], event["detail"]
    assert "-> CANCELLED" in event["detail"] and " 0 entries sent" in event["detail"]
    assert "in Redis and the database" in event["detail"]


def test_a_risk_backlog_does_not_stack_entries(drill: Report) -> None:
    (event,) = runs(drill)["risk-backlog"]["faults"]
    assert event["ok"], event["detail"]
    assert "at most one entry per symbol" in event["detail"]
    assert "stale_signal" in event["detail"]  # queued signals far behind are refused


def test_database_errors_drop_nothing(drill: Report) -> None:
    run = runs(drill)["db-errors"]
    (event,) = run["faults"]
    assert event["ok"], event["detail"]
    assert "dead letters 0" in event["detail"] and "restarted none" in event["detail"]
    assert run["restarts"] == {}


def test_the_worst_exposure_is_reported(drill: Report) -> None:
    for run in runs(drill).values():
        assert run["exposure_cap"] == 0.6
        assert run["worst_exposure"] is not None and run["worst_exposure"] > 0


@pytest.fixture(scope="module")
def data_loss(tmp_path_factory: pytest.TempPathFactory) -> Report:
    need_redis_server()
    return run_drill_cli(tmp_path_factory.mktemp("data-loss"), "--venue", "exchange-sim",
                         "--faults", "redis-data-loss", "--injections", "1", "--limit", "200",
                         "--seed", "7", timeout=900)


def test_redis_losing_its_data_halts_and_the_rebuilt_books_match_the_exchange(
        data_loss: Report) -> None:
    """redis-server restarted with no data under a trading mesh on the exchange simulator:
    the halt latches in Redis and the database, and the execution ledger rebuilt from the
    exchange (not from the torn copy the old process wrote after the loss) matches the
    exchange's own records: no position doubled, nothing lost after the loss."""
    report, proc = data_loss
    (run,) = report["runs"]
    assert run["error"] == "", run["error"]
    (event,) = run["faults"]
    assert event["ok"] and "in Redis and the database" in event["detail"], event["detail"]
    books = run["books"]
    assert [c for c in books["checks"] if not c["ok"]] == [], proc.stdout[-4000:]
    assert {"positions", "exchange_fills", "exchange_orders"} <= {
        c["name"] for c in books["checks"]}
    assert books["lost"] == 0 and books["duplicated"] == 0 and books["orders"] > 0
    assert proc.returncode == 0 and report["ok"]
