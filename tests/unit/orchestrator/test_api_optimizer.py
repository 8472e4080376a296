"""Optimizer and strategy endpoints, and the orchestrator's proposal pump, on the fake mesh
of tests/support/api_fixtures.py (fakeredis, seeded SQLite store, real ControlPlane)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis.aioredis
import httpx
import pytest
from fastapi.testclient import TestClient

from backend import channels
from backend.bus import DATA_FIELD, Bus
from backend.mesh.hotreload import ActiveParams, PendingParams, StrategyAgentState
from backend.messages import (
    AuditRecorded,
    ParamsProposed,
    RunOptimizer,
    UpdateStrategyParams,
    decode,
)
from backend.rest.models import (
    ApplyResult,
    OptimizerRunAccepted,
    OptimizerRunDetail,
    OptimizerRunView,
    StrategiesView,
)
from backend.settings import OptimizerAgentConfig
from orchestrator.errors import Unavailable
from orchestrator.optimizer_control import OptimizerControl
from tests.support.api_fixtures import AUTH, BEST, RUNNING, Harness, mesh, seed_run

ACTOR = "api@testclient"


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    with mesh(tmp_path) as harness:
        yield harness


@pytest.fixture
def client(h: Harness) -> Iterator[TestClient]:
    with TestClient(h.app(), headers=AUTH) as c:
        yield c


def stream(h: Harness, name: str) -> list[Any]:
    return [decode(f[DATA_FIELD]) for _, f in h.sync.xrange(name)]


def ok(r: httpx.Response, model: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return model.model_validate(r.json())


# ---------------------------------------------------------------- requests
def test_post_queues_a_request_for_the_optimizer_agent(h: Harness, client: TestClient) -> None:
    h.sync.set(channels.REPLAY_CURSOR_KEY, 77)
    body = {"symbol": "eth-btc", "population": 8, "generations": 2, "walk_forward": 2,
            "seed": 5}
    acc = ok(client.post("/api/optimizer/runs", json=body), OptimizerRunAccepted, 202)
    assert (acc.status, acc.symbol, acc.strategy, acc.until_seq) == (
        "queued", "ETH/BTC", "sma_cross", 77)
    (req,) = stream(h, channels.OPTIMIZER_REQUESTS)
    assert isinstance(req, RunOptimizer) and req.run_id == acc.run_id
    assert (req.population, req.generations, req.walk_forward, req.seed, req.until_seq) == (
        8, 2, 2, 5, 77)
    assert req.objective == h.settings.optimizer.objective  # omitted: the configuration's
    assert req.requested_by == ACTOR
    (row,) = h.store.audit(action="optimizer_run_requested")
    assert row["actor"] == ACTOR and row["subject_id"] == acc.run_id
    runs = [OptimizerRunView.model_validate(x) for x in client.get("/api/optimizer/runs").json()]
    assert (runs[-1].run_id, runs[-1].status) == (acc.run_id, "queued")
    detail = ok(client.get(f"/api/optimizer/runs/{acc.run_id}"), OptimizerRunDetail)
    assert detail.status == "queued" and detail.symbol == "ETH/BTC"


def test_queued_means_not_read_or_read_but_not_started(h: Harness, client: TestClient) -> None:
    h.sync.xgroup_create(channels.OPTIMIZER_REQUESTS, "optimizer", id="0", mkstream=True)
    first, second = (ok(client.post("/api/optimizer/runs", json={"symbol": "ETHBTC"}),
                        OptimizerRunAccepted, 202).run_id for _ in range(2))

    def statuses() -> dict[str, str]:
        return {r["run_id"]: r["status"] for r in client.get("/api/optimizer/runs").json()}

    assert statuses() == {first: "queued", second: "queued"}
    ((_, [(eid, _)]),) = h.sync.xreadgroup("optimizer", "optimizer",
                                           {channels.OPTIMIZER_REQUESTS: ">"}, count=1)
    assert statuses() == {first: "queued", second: "queued"}  # read, run not started
    h.store.record_optimizer_run(first, "sma_cross", "sharpe", {}, ["ETH/BTC"])
    assert statuses() == {first: "running", second: "queued"}
    h.sync.xack(channels.OPTIMIZER_REQUESTS, "optimizer", eid)
    assert statuses() == {first: "running", second: "queued"}


def test_post_uses_the_strategy_the_agent_runs(h: Harness, client: TestClient) -> None:
    st = StrategyAgentState(active=ActiveParams(strategy="momentum", params={"lookback": 12}))
    h.sync.set(channels.state_key("strategy:ETHBTC"), st.to_json())
    acc = ok(client.post("/api/optimizer/runs", json={"symbol": "ETHBTC"}),
             OptimizerRunAccepted, 202)
    assert acc.strategy == "momentum"


@pytest.mark.parametrize(("body", "status", "detail"), [
    ({"symbol": "XRP/BTC"}, 404, "unknown symbol"),
    ({"symbol": "ETH/BTC", "strategy": "nope"}, 422, "unknown strategy"),
    ({"symbol": "ETH/BTC", "population": 2}, 422, "body.population"),
    ({"symbol": "ETH/BTC", "walk_forward": 0}, 422, "body.walk_forward"),
    ({"symbol": "ETH/BTC", "surprise": 1}, 422, "body.surprise"),
    ({}, 422, "body.symbol"),
])
def test_post_rejects_bad_requests(h: Harness, client: TestClient, body: dict, status: int,
                                   detail: str) -> None:
    r = client.post("/api/optimizer/runs", json=body)
    assert r.status_code == status and detail in r.json()["detail"], r.text
    assert h.sync.xlen(channels.OPTIMIZER_REQUESTS) == 0


def test_writes_need_the_token_and_reads_follow_the_read_rule(h: Harness) -> None:
    seed_run(h, "r1")
    with TestClient(h.app()) as anon:
        assert anon.post("/api/optimizer/runs", json={"symbol": "ETHBTC"}).status_code == 401
        assert anon.post("/api/optimizer/runs/r1/apply").status_code == 401
        for path in ("/api/optimizer/runs", "/api/optimizer/runs/r1", "/api/strategies"):
            assert anon.get(path).status_code == 401
    with TestClient(h.app(token=None)) as open_api:
        assert open_api.get("/api/optimizer/runs").status_code == 200
        assert open_api.post("/api/optimizer/runs/r1/apply").status_code == 401
    assert h.sync.xlen(channels.STRATEGY_PARAMS) == 0


# ---------------------------------------------------------------- views and apply
def test_run_views_show_generations_folds_and_the_proposal(h: Harness,
                                                           client: TestClient) -> None:
    seed_run(h, "r1")
    seed_run(h, "r2", status="", finished=False)
    runs = {x["run_id"]: OptimizerRunView.model_validate(x)
            for x in client.get("/api/optimizer/runs").json()}
    r1, r2 = runs["r1"], runs["r2"]
    assert (r1.status, r1.symbol, r1.best_params, r1.mean_out_of_sample) == (
        "finished", "ETH/BTC", BEST, 1.2)
    assert r1.proposal is not None and r1.proposal.status == "proposed"
    assert (r1.proposed, r1.applied, r1.appliable) == (True, False, True)
    assert (r2.status, r2.proposal, r2.appliable) == ("running", None, False)
    d = ok(client.get("/api/optimizer/runs/r1"), OptimizerRunDetail)
    assert [(g.fold, g.generation, g.best) for g in d.generations] == [(0, 0, 1.0), (0, 1, 2.0)]
    assert d.folds[0].oos_start == 150 and d.folds[0].overfit is False
    r = client.get("/api/optimizer/runs/nope")
    assert r.status_code == 404 and "unknown optimizer run" in r.json()["detail"]


def test_apply_queues_the_command_once_at_the_cursor_and_audits(
    h: Harness, client: TestClient
) -> None:
    seed_run(h, "r1")
    h.sync.set(channels.REPLAY_CURSOR_KEY, 1234)
    res = ok(client.post("/api/optimizer/runs/r1/apply", json={"reason": "looks good"}),
             ApplyResult)
    assert (res.agent_id, res.after_seq, res.params, res.actor) == (
        "strategy:ETHBTC", 1234, BEST, ACTOR)
    assert res.old_params == RUNNING  # the configured defaults (no agent state)
    (cmd,) = stream(h, channels.STRATEGY_PARAMS)
    assert isinstance(cmd, UpdateStrategyParams) and cmd.id == res.command_id
    assert (cmd.symbol, cmd.strategy, cmd.params, cmd.after_seq, cmd.run_id, cmd.actor) == (
        "ETH/BTC", "sma_cross", BEST, 1234, "r1", ACTOR)
    assert h.sync.hexists(channels.OPTIMIZER_APPLIED_KEY, "r1")
    (row,) = h.store.audit(action="optimizer_params_applied")
    assert row["actor"] == ACTOR and row["correlation_id"] == "r1"
    assert f"{RUNNING} -> sma_cross {BEST}" in row["reason"] and "looks good" in row["reason"]
    view = ok(client.get("/api/optimizer/runs/r1"), OptimizerRunDetail)
    assert view.proposal.status == "applied" and view.proposal.after_seq == 1234
    assert (view.applied, view.appliable, view.proposal.applied_by) == (True, False, ACTOR)
    again = client.post("/api/optimizer/runs/r1/apply")
    assert again.status_code == 409 and "already applied" in again.json()["detail"]
    assert h.sync.xlen(channels.STRATEGY_PARAMS) == 1


def test_apply_refuses_what_is_not_appliable(h: Harness, client: TestClient) -> None:
    seed_run(h, "lost", status="not_proposed")
    seed_run(h, "busy", status="", finished=False)
    r = client.post("/api/optimizer/runs/lost/apply")
    assert r.status_code == 409 and "was not proposed: test verdict" in r.json()["detail"]
    r = client.post("/api/optimizer/runs/busy/apply")
    assert r.status_code == 409 and "status running" in r.json()["detail"]
    assert client.post("/api/optimizer/runs/nope/apply").status_code == 404
    assert h.sync.xlen(channels.STRATEGY_PARAMS) == 0


def test_applied_in_redis_counts_even_before_the_database_says_so(
    h: Harness, client: TestClient
) -> None:
    """A crash between queuing the command and updating the record: still applied once."""
    seed_run(h, "r1")
    cmd = UpdateStrategyParams(source="orchestrator", symbol="ETH/BTC", strategy="sma_cross",
                               params=BEST, after_seq=5, run_id="r1", actor="orchestrator")
    h.sync.hset(channels.OPTIMIZER_APPLIED_KEY, "r1", cmd.to_json())
    view = ok(client.get("/api/optimizer/runs/r1"), OptimizerRunDetail)
    assert view.applied and view.proposal.after_seq == 5
    assert client.post("/api/optimizer/runs/r1/apply").status_code == 409


# ---------------------------------------------------------------- the proposal pump
def pump(h: Harness, **opt: object) -> int:
    """One pass of the orchestrator's pump (own async client on the same fake server)."""
    settings = h.settings.model_copy(update={"optimizer": OptimizerAgentConfig(**opt)})

    async def go() -> int:
        redis = fakeredis.aioredis.FakeRedis(server=h.server)
        try:
            return await OptimizerControl(settings, redis, h.store).pump()
        finally:
            await redis.aclose()

    return asyncio.run(go())


def propose(h: Harness, run_id: str) -> None:
    async def go() -> None:
        redis = fakeredis.aioredis.FakeRedis(server=h.server)
        await Bus(redis, "optimizer").publish(channels.OPTIMIZER_PROPOSALS, ParamsProposed(
            source="optimizer", run_id=run_id, symbol="ETH/BTC", strategy="sma_cross",
            params=BEST, current_strategy="sma_cross", current_params=RUNNING, score=1.2,
            baseline=0.4, margin=0.1))
        await redis.aclose()

    asyncio.run(go())


def test_pump_applies_proposals_once_with_auto_apply(h: Harness) -> None:
    seed_run(h, "r1")
    propose(h, "r1")
    propose(h, "r1")  # a duplicate proposal
    assert pump(h, auto_apply=True) == 2
    (cmd,) = stream(h, channels.STRATEGY_PARAMS)
    assert cmd.actor == "orchestrator" and "auto_apply" in cmd.reason
    (row,) = h.store.audit(action="optimizer_params_applied")
    assert row["actor"] == "orchestrator"
    assert pump(h, auto_apply=True) == 0  # acknowledged
    (g,) = h.sync.xinfo_groups(channels.OPTIMIZER_PROPOSALS)
    assert int(g["pending"]) == 0


def test_a_proposal_whose_handling_failed_is_handled_by_the_next_pass(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_run(h, "r1")
    propose(h, "r1")
    real = OptimizerControl.apply

    async def down(self: OptimizerControl, *a: Any, **kw: Any) -> Any:
        raise Unavailable("Redis is unreachable: ConnectionError")

    async def go() -> int:  # one control plane (one orchestrator) for both passes
        redis = fakeredis.aioredis.FakeRedis(server=h.server)
        oc = OptimizerControl(h.settings, redis, h.store)
        monkeypatch.setattr(OptimizerControl, "apply", down)
        with pytest.raises(Unavailable):
            await oc.pump()
        monkeypatch.setattr(OptimizerControl, "apply", real)
        try:
            return await oc.pump()  # still pending: read again, applied
        finally:
            await redis.aclose()

    assert asyncio.run(go()) == 1
    assert h.sync.xlen(channels.STRATEGY_PARAMS) == 1


def test_pump_waits_for_a_person_without_auto_apply(h: Harness, client: TestClient) -> None:
    seed_run(h, "r1")
    propose(h, "r1")
    assert pump(h, auto_apply=False) == 1
    assert h.sync.xlen(channels.STRATEGY_PARAMS) == 0
    (row,) = h.store.audit(action="optimizer_proposal")
    assert row["decision"] == "awaiting_approval" and "/api/optimizer/runs/r1/apply" in \
        row["reason"]
    view = ok(client.get("/api/optimizer/runs/r1"), OptimizerRunDetail)
    assert view.appliable and not view.applied
    ok(client.post("/api/optimizer/runs/r1/apply"), ApplyResult)
    assert h.sync.xlen(channels.STRATEGY_PARAMS) == 1


# ---------------------------------------------------------------- strategies
def test_strategies_lists_the_registry_and_each_agents_params(
    h: Harness, client: TestClient
) -> None:
    view = ok(client.get("/api/strategies"), StrategiesView)
    assert {s.name for s in view.registry} >= {"sma_cross", "momentum"}
    sma = next(s for s in view.registry if s.name == "sma_cross")
    assert [p.name for p in sma.params][:2] == ["fast", "slow"]
    assert [a.agent_id for a in view.agents] == [
        "strategy:ETHBTC", "strategy:LTCBTC", "strategy:ADABTC", "strategy:DASHBTC"]
    assert all(a.source == "config" and not a.reported for a in view.agents)
    st = StrategyAgentState(
        active=ActiveParams(strategy="sma_cross", params=BEST, source="optimizer",
                            since_seq=301, run_id="r1", actor="orchestrator"),
        pending=PendingParams(strategy="sma_cross", params=RUNNING, after_seq=900,
                              command_id="c2", run_id="r2"))
    h.sync.set(channels.state_key("strategy:ETHBTC"), st.to_json())
    eth = ok(client.get("/api/strategies"), StrategiesView).agents[0]
    assert (eth.params, eth.source, eth.since_seq, eth.run_id, eth.reported) == (
        BEST, "optimizer", 301, "r1", True)
    assert eth.configured_params == RUNNING
    assert eth.pending is not None and (eth.pending.after_seq, eth.pending.run_id) == (900, "r2")


def test_pump_dead_letters_what_is_not_a_proposal(h: Harness) -> None:
    """Junk on ``optimizer:proposals`` (no data field, a bare number, another message
    type) is dead-lettered with its entry id and acknowledged; nothing is applied."""
    ids = [h.sync.xadd(channels.OPTIMIZER_PROPOSALS, {b"foo": b"bar"}).decode(),
           h.sync.xadd(channels.OPTIMIZER_PROPOSALS, {b"data": b"5"}).decode(),
           h.sync.xadd(channels.OPTIMIZER_PROPOSALS, {b"data": AuditRecorded(
               source="x", actor="x", action="x", decision="x", reason="x").to_json()}).decode()]
    assert pump(h, auto_apply=True) == 3
    dead = [decode(f[b"data"]) for _, f in h.sync.xrange(channels.DEAD_LETTER)]
    assert sorted(d.entry_id for d in dead) == sorted(ids)
    assert all(d.channel == channels.OPTIMIZER_PROPOSALS and d.reason for d in dead)
    assert stream(h, channels.STRATEGY_PARAMS) == []
    (g,) = h.sync.xinfo_groups(channels.OPTIMIZER_PROPOSALS)
    assert int(g["pending"]) == 0
