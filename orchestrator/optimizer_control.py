"""The optimizer in the control plane: run requests, run views, proposals and hot reload.

How things travel (nothing depends on one PUBLISH):

* ``POST /api/optimizer/runs`` appends a :class:`~backend.messages.RunOptimizer` to the
  ``optimizer:requests`` stream; the optimizer agent reads it through its consumer group
  (:mod:`agents.optimizer`) and, when the run beats the running parameters, appends a
  :class:`~backend.messages.ParamsProposed` to ``optimizer:proposals``.
* The orchestrator reads ``optimizer:proposals`` through its own consumer group
  (:meth:`OptimizerControl.pump`, run by :func:`proposal_pump`): with
  ``optimizer.auto_apply`` it applies the proposal at once, otherwise it audits it as
  awaiting approval and ``POST /api/optimizer/runs/{id}/apply`` applies it.
* Applying appends an :class:`~backend.messages.UpdateStrategyParams` to
  ``strategy:params`` in a WATCH/MULTI that also reads the replay cursor (``after_seq``)
  and marks the run applied (``optimizer:applied``), so a run is applied at most once
  and the switch bar is well defined; the strategy agent switches on its next bar
  without a restart (:mod:`agents.strategy`).  Who applied what, old -> new, and why, is
  audited (database and ``audit`` stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError, WatchError

from backend import channels
from backend.bus import DATA_FIELD, Bus, entry_key
from backend.mesh.hotreload import running_params
from backend.mesh.topology import strategy_id
from backend.messages import (
    AuditRecorded,
    DecodeError,
    ParamsProposed,
    RunOptimizer,
    UpdateStrategyParams,
    decode,
    new_id,
    stable_id,
)
from backend.optimizer.proposal import ProposalRecord, make_request, proposal_key
from backend.persistence import Store, make_engine
from backend.rest.models import (
    ApplyResult,
    FoldView,
    GenerationView,
    OptimizerRunAccepted,
    OptimizerRunDetail,
    OptimizerRunRequest,
    OptimizerRunView,
    ProposalView,
    StrategiesView,
)
from backend.settings import Settings
from backend.strategies.registry import STRATEGIES
from orchestrator.errors import Conflict, Invalid, NotFound, Unavailable, resolve_symbol
from orchestrator.views import strategies_view

log = logging.getLogger("orchestrator.optimizer")

SOURCE = "orchestrator"
#: Request stream entries looked at for runs not started yet.
QUEUED_SCAN = 500


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


class OptimizerControl:
    """Optimizer runs, proposals and strategy parameters of one mesh.

    Parameters
    ----------
    settings : Settings
    redis : redis.asyncio.Redis
        The mesh's Redis (bytes responses).
    store : Store
        The mesh's database.
    """

    def __init__(self, settings: Settings, redis: Redis, store: Store) -> None:
        self.settings, self.redis, self.store = settings, redis, store
        self.bus = Bus(redis, SOURCE, settings.stream_maxlen)
        self._group_ready = False

    async def _r(self, coro):  # noqa: ANN001, ANN202 - Redis call or 503
        try:
            return await coro
        except WatchError:
            raise
        except (RedisError, OSError) as exc:
            raise Unavailable(f"Redis is unreachable: {type(exc).__name__}") from None

    async def _db(self, fn, *args, **kwargs):  # noqa: ANN001, ANN202 - thin to_thread
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def _audit(self, msg: AuditRecorded) -> None:
        await self._db(self.store.record_audit_event, msg)
        await self.bus.publish(channels.AUDIT, msg)

    # ------------------------------------------------------------------ requests
    async def request_run(self, body: OptimizerRunRequest, actor: str) -> OptimizerRunAccepted:
        """Queue a run for the optimizer agent (audited); 404 symbol, 422 strategy."""
        symbol = resolve_symbol(body.symbol, self.settings.symbols)
        strategy = body.strategy
        if strategy is None:
            strategy, _ = await self._r(running_params(self.redis, self.settings, symbol))
        if strategy not in STRATEGIES:
            raise Invalid(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
        cursor = int(await self._r(self.redis.get(channels.REPLAY_CURSOR_KEY)) or 0)
        run_id = new_id()
        fields = body.model_dump(exclude={"symbol", "strategy"})
        req = make_request(self.settings, symbol, strategy, run_id=run_id, until_seq=cursor,
                           requested_by=actor, reason="requested through the API", **fields)
        await self._r(self.bus.publish(channels.OPTIMIZER_REQUESTS, req))
        await self._r(self._audit(AuditRecorded(
            source=SOURCE, actor=actor, action="optimizer_run_requested", decision="queued",
            reason=(f"{symbol} {strategy}: objective {req.objective}, population "
                    f"{req.population}, generations {req.generations}, walk-forward "
                    f"{req.walk_forward}, seed {req.seed}, {req.sizing}, bars up to seq "
                    f"{cursor}"), subject_id=run_id, correlation_id=run_id)))
        log.info("optimizer run %s queued by %s (%s %s)", run_id, actor, symbol, strategy)
        return OptimizerRunAccepted(
            run_id=run_id, symbol=symbol, strategy=strategy, until_seq=cursor,
            message=f"queued for the optimizer agent: GET /api/optimizer/runs/{run_id}")

    async def _queued(self) -> list[RunOptimizer]:
        """Requests with no run recorded yet (oldest first): those the optimizer agent has
        not read, and those it is working on (pending) before their run is recorded."""
        stream, group = channels.OPTIMIZER_REQUESTS, "optimizer"
        try:
            groups = await self.redis.xinfo_groups(stream)
        except ResponseError:  # no stream yet
            return []
        except (RedisError, OSError) as exc:
            raise Unavailable(f"Redis is unreachable: {type(exc).__name__}") from None
        g = next((x for x in groups if _s(x["name"]) == group), None)
        read = entry_key(_s(g["last-delivered-id"])) if g else (0, 0)
        busy = set()
        if g and int(g["pending"]):
            rows = await self._r(self.redis.xpending_range(stream, group, "-", "+", 100))
            busy = {_s(r["message_id"]) for r in rows}
        entries = await self._r(self.redis.xrevrange(stream, "+", "-", count=QUEUED_SCAN))
        out = []
        for eid, fields in reversed(entries):
            if entry_key(_s(eid)) <= read and _s(eid) not in busy:
                continue
            with contextlib.suppress(DecodeError, KeyError):
                msg = decode(fields[DATA_FIELD])
                if isinstance(msg, RunOptimizer) and (
                        _s(eid) not in busy
                        or await self._db(self.store.optimizer_run, msg.run_id) is None):
                    out.append(msg)
        return out

    # ------------------------------------------------------------------ views
    async def _applied(self) -> dict[str, UpdateStrategyParams]:
        raw = await self._r(self.redis.hgetall(channels.OPTIMIZER_APPLIED_KEY))
        out = {}
        for k, v in raw.items():
            with contextlib.suppress(DecodeError):
                msg = decode(v)
                if isinstance(msg, UpdateStrategyParams):
                    out[k.decode() if isinstance(k, bytes) else k] = msg
        return out

    async def _proposal(self, run_id: str, applied: dict[str, UpdateStrategyParams]
                        ) -> ProposalView | None:
        raw = await self._db(self.store.get_state, proposal_key(run_id))
        if raw is None:
            return None
        rec = ProposalRecord.model_validate(raw)
        cmd = applied.get(run_id)
        if cmd is not None and rec.status != "applied":  # queued, database not yet updated
            rec = rec.model_copy(update={
                "status": "applied", "applied_ts": cmd.ts, "applied_by": cmd.actor,
                "apply_reason": cmd.reason, "command_id": cmd.id, "after_seq": cmd.after_seq})
        return ProposalView.model_validate(rec.model_dump())

    @staticmethod
    def _view(row: dict[str, Any], proposal: ProposalView | None) -> dict[str, Any]:
        symbols = list(row.get("symbols") or [])
        return {
            "run_id": row["id"], "strategy": row["strategy"],
            "symbol": symbols[0] if len(symbols) == 1 else None, "symbols": symbols,
            "objective": row["objective"], "status": row["status"],
            "started_ts": row["started_ts"], "finished_ts": row["finished_ts"],
            "data_start": row["data_start"], "data_end": row["data_end"],
            "best_params": row["best_params"] or {}, "in_sample": row["in_sample"],
            "out_of_sample": row["out_of_sample"], "mean_in_sample": row["mean_in_sample"],
            "mean_out_of_sample": row["mean_out_of_sample"], "overfit": row["overfit"],
            "evaluations": row["evaluations"] or 0, "error": row["error"] or "",
            "config": row["config"] or {}, "proposal": proposal,
            "proposed": proposal is not None and proposal.status != "not_proposed",
            "applied": proposal is not None and proposal.status == "applied",
            "appliable": proposal is not None and proposal.status == "proposed",
        }

    @staticmethod
    def _queued_view(req: RunOptimizer) -> dict[str, Any]:
        return {"run_id": req.run_id, "strategy": req.strategy, "symbol": req.symbol,
                "symbols": [req.symbol], "objective": req.objective, "status": "queued",
                "started_ts": req.ts, "config": req.model_dump(
                    include={"population", "generations", "walk_forward", "seed", "sizing",
                             "max_bars", "until_seq", "requested_by", "reason"})}

    async def runs(self, limit: int = 100) -> list[OptimizerRunView]:
        """The last ``limit`` runs (oldest first), then the runs still queued."""
        rows = await self._db(self.store.optimizer_runs, None, limit)
        applied = await self._applied()
        out = [OptimizerRunView.model_validate(
            self._view(r, await self._proposal(r["id"], applied))) for r in rows]
        out += [OptimizerRunView.model_validate(self._queued_view(q))
                for q in await self._queued()]
        return out[-limit:]

    async def run(self, run_id: str) -> OptimizerRunDetail:
        """One run with its folds and generations (404 unknown)."""
        row = await self._db(self.store.optimizer_run, run_id)
        if row is None:
            for q in await self._queued():
                if q.run_id == run_id:
                    return OptimizerRunDetail.model_validate(self._queued_view(q))
            raise NotFound(f"unknown optimizer run {run_id!r}")
        view = self._view(row, await self._proposal(run_id, await self._applied()))
        view["folds"] = [FoldView.model_validate(f) for f in row["folds"] or []]
        view["generations"] = [GenerationView.model_validate(g) for g in row["generations"]]
        return OptimizerRunDetail.model_validate(view)

    # ------------------------------------------------------------------ applying
    async def apply(self, run_id: str, actor: str,
                    reason: str = "approved by an operator") -> ApplyResult:
        """Queue a proposed run's parameters for its symbol's strategy agent (audited).

        Raises
        ------
        NotFound
            No such run.
        Conflict
            The run has no proposal (still running, failed, not better), was applied
            already, or its symbol has no strategy agent in this mesh.
        """
        raw = await self._db(self.store.get_state, proposal_key(run_id))
        if raw is None:
            row = await self._db(self.store.optimizer_run, run_id)
            if row is None and all(q.run_id != run_id for q in await self._queued()):
                raise NotFound(f"unknown optimizer run {run_id!r}")
            status = row["status"] if row else "queued"
            raise Conflict(f"run {run_id} has nothing to apply (status {status}"
                           + (f": {row['error']}" if row and row["error"] else "") + ")")
        rec = ProposalRecord.model_validate(raw)
        if rec.status == "not_proposed":
            raise Conflict(f"run {run_id} was not proposed: {rec.reason}")
        if rec.status == "applied":
            raise Conflict(f"run {run_id} was already applied by {rec.applied_by}")
        try:
            symbol = resolve_symbol(rec.symbol, self.settings.symbols)
        except NotFound:
            raise Conflict(f"symbol {rec.symbol} has no strategy agent in this mesh") from None
        old_strategy, old_params = await self._r(
            running_params(self.redis, self.settings, symbol))
        cmd = await self._queue_update(rec, symbol, actor, reason)
        done = rec.model_copy(update={
            "status": "applied", "applied_ts": cmd.ts, "applied_by": actor,
            "apply_reason": reason, "command_id": cmd.id, "after_seq": cmd.after_seq})
        await self._db(self.store.put_state, proposal_key(run_id), done.model_dump(mode="json"))
        await self._r(self._audit(AuditRecorded(
            id=stable_id("audit", "optimizer_params_applied", run_id), source=SOURCE,
            actor=actor, action="optimizer_params_applied", decision="applied",
            reason=(f"{symbol}: {old_strategy} {old_params} -> {rec.strategy} {rec.params} "
                    f"from the first bar after seq {cmd.after_seq}; run {run_id}: "
                    f"out-of-sample {rec.score} vs running {rec.baseline} (margin "
                    f"{rec.margin:g}); {reason}")[:1000],
            subject_id=cmd.id, correlation_id=run_id)))
        agent_id = strategy_id(symbol)
        log.warning("applied run %s to %s by %s: %s -> %s after seq %d", run_id, agent_id,
                    actor, old_params, rec.params, cmd.after_seq)
        return ApplyResult(
            run_id=run_id, symbol=symbol, agent_id=agent_id, strategy=rec.strategy,
            params=rec.params, old_strategy=old_strategy, old_params=old_params,
            after_seq=cmd.after_seq, command_id=cmd.id, actor=actor,
            message=(f"{agent_id} switches to {rec.params} on its first bar after seq "
                     f"{cmd.after_seq}, without a restart"))

    async def _queue_update(self, rec: ProposalRecord, symbol: str, actor: str,
                            reason: str) -> UpdateStrategyParams:
        """Append the command with ``after_seq`` = the replay cursor, atomically, once."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for _ in range(1000):
                try:
                    await self._r(pipe.watch(channels.REPLAY_CURSOR_KEY,
                                             channels.OPTIMIZER_APPLIED_KEY))
                    if await self._r(pipe.hexists(channels.OPTIMIZER_APPLIED_KEY, rec.run_id)):
                        raise Conflict(f"run {rec.run_id} was already applied")
                    cursor = int(await self._r(pipe.get(channels.REPLAY_CURSOR_KEY)) or 0)
                    cmd = UpdateStrategyParams(
                        id=stable_id("update_strategy_params", rec.run_id), source=SOURCE,
                        correlation_id=rec.run_id, symbol=symbol, strategy=rec.strategy,
                        params=rec.params, after_seq=cursor, run_id=rec.run_id, actor=actor,
                        reason=reason[:500])
                    pipe.multi()
                    self.bus.stage(pipe, channels.STRATEGY_PARAMS, cmd)
                    pipe.hset(channels.OPTIMIZER_APPLIED_KEY, rec.run_id, cmd.to_json())
                    await self._r(pipe.execute())
                    return cmd
                except WatchError:
                    continue  # a bar was published (or another apply won): read again
        raise Unavailable("could not queue the parameters: the replay cursor kept moving")

    # ------------------------------------------------------------------ proposals
    async def pump(self, block_ms: int | None = None) -> int:
        """Handle the proposals on ``optimizer:proposals`` (one read); the number read.

        With ``optimizer.auto_apply`` each is applied; otherwise it is audited as
        awaiting approval.  An entry is acknowledged once handled (a Redis failure
        leaves it pending for the next call).
        """
        if not self._group_ready:
            await self.bus.ensure_group(channels.OPTIMIZER_PROPOSALS, channels.ORCHESTRATOR_GROUP)
            self._group_ready = True
        reader = Bus(self.redis, SOURCE)  # a fresh reader: its pending entries first
        batch = await reader.read([channels.OPTIMIZER_PROPOSALS], channels.ORCHESTRATOR_GROUP,
                                  block_ms=block_ms)  # type: ignore[arg-type]
        for d in batch:
            msg = None
            if d.problem:  # not written by a Bus: dead-lettered like an agent does
                await self.bus.dead_letter(d.stream, d.raw, d.problem, d.entry_id)
            else:
                try:
                    msg = decode(d.raw, d.stream)
                except DecodeError as exc:
                    await self.bus.dead_letter(d.stream, d.raw, str(exc), d.entry_id)
            if isinstance(msg, ParamsProposed):
                await self._on_proposal(msg)
            await self.redis.xack(d.stream, channels.ORCHESTRATOR_GROUP, d.entry_id)
        return len(batch)

    async def _on_proposal(self, p: ParamsProposed) -> None:
        if not self.settings.optimizer.auto_apply:
            await self._audit(AuditRecorded(
                id=stable_id("audit", "optimizer_proposal", p.run_id), source=SOURCE,
                actor="optimizer", action="optimizer_proposal", decision="awaiting_approval",
                reason=(f"{p.symbol}: {p.current_strategy} {p.current_params} -> {p.strategy} "
                        f"{p.params}: out-of-sample {p.score:.4g} vs running {p.baseline} "
                        f"(margin {p.margin:g}); POST /api/optimizer/runs/{p.run_id}/apply")
                [:1000], subject_id=p.id, correlation_id=p.run_id))
            log.warning("run %s proposes %s for %s: awaiting approval", p.run_id, p.params,
                        p.symbol)
            return
        try:
            await self.apply(p.run_id, actor=SOURCE, reason=(
                f"auto_apply: out-of-sample {p.score:.4g} beats the running parameters' "
                f"{p.baseline} by more than {p.margin:g}"))
        except (Conflict, NotFound) as exc:
            log.info("proposal of run %s not applied: %s", p.run_id, exc.detail)

    async def run_pump(self, stop: asyncio.Event, interval: float = 0.5) -> None:
        """Call :meth:`pump` until ``stop`` is set, riding out Redis outages."""
        while not stop.is_set():
            n = 0
            try:
                n = await self.pump()
            except (RedisError, OSError, Unavailable) as exc:
                log.debug("proposal pump: %s", exc)
            except Exception:  # noqa: BLE001 - keep pumping; the entry stays pending
                log.exception("proposal pump failed")
            if not n:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)

    # ------------------------------------------------------------------ strategies
    async def strategies(self) -> StrategiesView:
        """The registry and what each strategy agent runs (its durable state)."""
        symbols = self.settings.symbols
        raws = await self._r(self.redis.mget(
            [channels.state_key(strategy_id(s)) for s in symbols]))
        return strategies_view(self.settings, dict(zip(symbols, raws, strict=True)))


@contextlib.asynccontextmanager
async def proposal_pump(settings: Settings) -> AsyncIterator[OptimizerControl]:
    """Handle the optimizer's proposals in the background while the block runs."""
    redis = Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=3)
    store = Store(make_engine(settings.db_url()))
    control = OptimizerControl(settings, redis, store)
    stop = asyncio.Event()
    task = asyncio.create_task(control.run_pump(stop))
    try:
        yield control
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        with contextlib.suppress(Exception):
            await redis.aclose()
        store.close()
