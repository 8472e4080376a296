"""End to end: ``tradingmesh drill`` injects every fault into a real mesh and the books
balance.

The gauntlet runs each fault once in one mesh (real redis-server with AOF, the
orchestrator as a child process, every agent): SIGKILL of each agent and of the
orchestrator, a hung agent, a Redis restart, risk and compliance down (fail closed),
hostile payloads on every channel, a slow pub/sub consumer, and the execution agent
crashing at start in a loop (given up, HALTED, open orders cancelled).  ``tradingmesh
drill`` itself checks the books; this test reads its JSON report and asserts on it.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.support.helpers import need_redis_server, run_drill_cli

pytestmark = pytest.mark.e2e
Gauntlet = tuple[dict, subprocess.CompletedProcess]


@pytest.fixture(scope="module")
def gauntlet(tmp_path_factory: pytest.TempPathFactory) -> Gauntlet:
    need_redis_server()
    return run_drill_cli(tmp_path_factory.mktemp("drill"), "--faults", "gauntlet",
                         "--limit", "600", "--seed", "11", timeout=1500)


def test_books_balance_after_every_fault(gauntlet: Gauntlet) -> None:
    report, proc = gauntlet
    (run,) = report["runs"]
    assert run["error"] == "", run["error"]
    books = run["books"]
    failed = [c for c in books["checks"] if not c["ok"]]
    assert not failed, failed
    assert books["lost"] == 0 and books["duplicated"] == 0
    assert books["orders"] > 0 and books["fills"] > 0, "the drill must trade to prove anything"
    assert proc.returncode == 0 and report["ok"], proc.stdout[-4000:]


def test_every_fault_was_injected_and_recovered(gauntlet: Gauntlet) -> None:
    report, _ = gauntlet
    (run,) = report["runs"]
    kinds = {(e["fault"], e["target"].split(":")[0]) for e in run["faults"]}
    for role in ("strategy", "compliance", "risk", "execution", "market_data", "orchestrator"):
        assert ("sigkill", role) in kinds, f"no SIGKILL of {role}: {kinds}"
    for kind in ("sigstop", "redis_restart", "crash_loop", "hostile_payloads",
                 "slow_consumer"):
        assert any(k == kind for k, _ in kinds), f"no {kind} fault: {kinds}"
    assert {t for k, t in kinds if k == "down"} == {"risk", "compliance"}
    bad = [e for e in run["faults"] if not e["ok"] or e["recovery_s"] is None]
    assert not bad, bad


def test_restarts_and_the_crash_loop_limit(gauntlet: Gauntlet) -> None:
    report, _ = gauntlet
    (run,) = report["runs"]
    restarts = run["restarts"]
    for agent in ("compliance", "risk", "market_data"):
        assert restarts.get(agent, 0) >= 1, restarts
    (crash,) = [e for e in run["faults"] if e["fault"] == "crash_loop"]
    assert "then given up; HALTED" in crash["detail"]
    assert "open orders at the venue after the failsafe: []" in crash["detail"]
    (hang,) = [e for e in run["faults"] if e["fault"] == "sigstop"]
    assert "old process gone" in hang["detail"]
    summary = report["summary"][0]
    assert summary["lost"] == 0 and summary["duplicated"] == 0
    assert summary["faults"] == len(run["faults"]) >= 13
