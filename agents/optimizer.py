"""optimizer agent: the GA optimizer (:mod:`backend.optimizer`) inside the mesh.

Requests
    :class:`~backend.messages.RunOptimizer` commands on the ``optimizer:requests`` stream,
    read through the consumer group ``optimizer``: queued by ``POST /api/optimizer/runs``
    and, when ``optimizer.interval_s > 0``, by this agent's own schedule (one per symbol of
    ``optimizer.symbols`` every interval; a slot is skipped while an earlier request is
    still queued or running).  A request is acknowledged only once its outcome is staged,
    so one that was in progress when the agent died is run again (same run id, same seed,
    same bars: ``until_seq``).

Data
    The bars the market_data agent published: the ``market_data`` stream (capped at
    ``stream_maxlen`` entries, all symbols together), read newest first with
    ``XREVRANGE``; the run keeps the symbol's most recent ``max_bars`` bars up to
    ``until_seq``.  Bars are not stored in the database, so this is all the mesh has.
    Fewer than ``max(optimizer.min_bars, 50 x (walk_forward + 1))`` bars is a failed run
    with the reason.

Outcome
    The run is persisted (``optimizer_runs`` / ``optimizer_generations``) and published
    (``retrain_status`` per generation, ``model_metrics`` at the end) by the optimizer's
    own observers.  Then the parameters the symbol's strategy agent runs are scored on the
    run's out-of-sample windows (:mod:`backend.optimizer.proposal`); the verdict is stored
    (``mesh_state``) and, if the run wins, a :class:`~backend.messages.ParamsProposed` is
    staged on ``optimizer:proposals`` with the request's XACK.

The GA runs in a worker thread; heartbeats go on.  On SIGTERM the run stops at the next
generation and its request stays pending (nothing is recorded as failed).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from redis.asyncio.client import Pipeline

from agents.base import REDIS_ERRORS, Agent
from backend import channels
from backend.bus import DATA_FIELD, Bus, Delivery, pipeline_caught_up
from backend.channels import compact_symbol
from backend.mesh.hotreload import running_params
from backend.messages import (
    AnyMessage,
    OptimizerFinished,
    ParamsProposed,
    RunOptimizer,
    now_ns,
    stable_id,
)
from backend.optimizer.models import OptimizeConfig, OptimizeResult
from backend.persistence import Store, make_engine

# The GA, the backtester and the strategies (DEAP, NumPy, SciPy, TA-Lib: about 70 MiB)
# are imported by the methods that run or judge a run, not here: the agent idles in
# about 140 MiB until it has a run to do (issue 17).

READ_CHUNK = 2000


class AgentStopping(Exception):
    """Raised in the GA's thread to end a run because the agent is stopping."""


class _StopGuard:
    """Observer that ends the run at the next generation once the agent is stopping."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def started(self, run: OptimizeResult) -> None:
        return None

    def generation(self, run: OptimizeResult, stats: Any) -> None:
        if self.agent.stopping:
            raise AgentStopping("the optimizer agent is stopping; the request stays queued")

    def finished(self, run: OptimizeResult) -> None:
        return None


class _UnlessStopping:
    """Forwards to ``inner``, except the failure report of a run ended by a stop (the run
    is done again after the restart and must be recordable then)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def started(self, run: OptimizeResult) -> None:
        self.inner.started(run)

    def generation(self, run: OptimizeResult, stats: Any) -> None:
        self.inner.generation(run, stats)

    def finished(self, run: OptimizeResult) -> None:
        if not (run.status == "failed" and run.error.startswith(AgentStopping.__name__)):
            self.inner.finished(run)


class OptimizerAgent(Agent):
    """Runs optimizations on request or schedule and proposes winning parameters."""

    role = "optimizer"

    async def setup(self) -> None:
        """Open the store."""
        self.store = Store(make_engine(self.settings.db_url()))

    async def main(self) -> None:
        """Consume requests; run the schedule alongside."""
        schedule = asyncio.create_task(self._schedule())
        try:
            await self.consume_forever()
        finally:
            schedule.cancel()
            with contextlib.suppress(BaseException):
                await schedule

    async def handle(self, delivery: Delivery, msg: AnyMessage, pipe: Pipeline) -> None:
        """Run one requested optimization; stage the proposal it earned, if any."""
        if not isinstance(msg, RunOptimizer):
            return
        proposal = await self.run_request(msg)
        if proposal is not None:
            self.emit(pipe, channels.OPTIMIZER_PROPOSALS, proposal)

    # ------------------------------------------------------------------ one run
    def _symbol(self, raw: str) -> str | None:
        return next((s for s in self.settings.symbols
                     if compact_symbol(s) == compact_symbol(raw)), None)

    async def run_request(self, req: RunOptimizer) -> ParamsProposed | None:
        """Optimize, persist and publish; return the proposal the run earned, if any."""
        from backend.optimizer.proposal import candles_from_bars
        from backend.optimizer.publish import BusObserver, optimize_async
        from backend.optimizer.runner import StoreObserver
        from backend.optimizer.walkforward import MIN_WINDOW_BARS

        symbol = self._symbol(req.symbol)
        cfg = self._config(req)
        if symbol is None:
            await self._fail(req, cfg, f"unknown symbol {req.symbol!r}; "
                                       f"configured: {', '.join(self.settings.symbols)}")
            return None
        bars = await self.bars(symbol, req.until_seq, req.max_bars)
        need = max(self.settings.optimizer.min_bars, (req.walk_forward + 1) * MIN_WINDOW_BARS)
        if len(bars) < need:
            await self._fail(req, cfg, (
                f"not enough bars: {len(bars)} of {symbol} recorded on the market_data stream"
                + (f" up to seq {req.until_seq}" if req.until_seq else "")
                + f", a run with --walk-forward {req.walk_forward} needs {need}"), symbol)
            return None
        candles = {symbol: candles_from_bars(symbol, bars)}
        current = await running_params(self.redis, self.settings, symbol)
        self.log.info("run %s: %s on %d bars of %s (requested by %s)", req.run_id,
                      req.strategy, len(bars), symbol, req.requested_by or "?")
        bus_obs = BusObserver(Bus(self.redis, self.agent_id), asyncio.get_running_loop())
        observers = [_StopGuard(self), _UnlessStopping(StoreObserver(self.store)),
                     _UnlessStopping(bus_obs)]
        try:
            run = await optimize_async(candles, cfg, observers=observers, run_id=req.run_id,
                                       settings=self.settings)
        except AgentStopping:
            raise asyncio.CancelledError from None  # stays pending; run again after restart
        except ValueError as exc:  # bad configuration or data: observers were not told
            await self._fail(req, cfg, str(exc), symbol)
            return None
        except Exception as exc:  # noqa: BLE001 - the run failed and was reported as such
            await self.report_error(f"run {req.run_id} failed: {type(exc).__name__}: {exc}")
            return None
        return await self._verdict(req, run, candles, symbol, current)

    def _config(self, req: RunOptimizer) -> OptimizeConfig:
        return OptimizeConfig(
            strategy=req.strategy, objective=req.objective, population=req.population,
            generations=req.generations, walk_forward=req.walk_forward, seed=req.seed,
            sizing=req.sizing, cash=self.settings.paper.initial_cash,
            commission=self.settings.paper.fee_rate, workers=self.settings.optimizer.workers)

    async def _verdict(self, req: RunOptimizer, run: OptimizeResult, candles: dict,
                       symbol: str, current: tuple[str, dict]) -> ParamsProposed | None:
        from backend.optimizer.proposal import (
            ProposalRecord,
            baseline_scores,
            judge,
            proposal_key,
        )

        opt = self.settings.optimizer
        cur_strategy, cur_params = current
        baseline, per_fold = await asyncio.to_thread(
            baseline_scores, run, candles, cur_strategy, cur_params, settings=self.settings)
        same = cur_strategy == req.strategy and dict(cur_params) == dict(run.best_params)
        v = judge(run.mean_out_of_sample, baseline, margin=opt.margin, overfit=run.overfit,
                  reject_overfit=opt.reject_overfit, same_params=same)
        record = ProposalRecord(
            run_id=req.run_id, symbol=symbol, status="proposed" if v.propose else "not_proposed",
            reason=v.reason, strategy=req.strategy, params=run.best_params,
            current_strategy=cur_strategy, current_params=cur_params, objective=req.objective,
            score=v.score, baseline=v.baseline, baseline_folds=per_fold, margin=opt.margin,
            decided_ts=now_ns())
        key = proposal_key(req.run_id)
        old = await asyncio.to_thread(self.store.get_state, key)
        if old is None or old.get("status") != "applied":
            await asyncio.to_thread(self.store.put_state, key, record.model_dump(mode="json"))
        self.log.info("run %s: %s (%s)", req.run_id, record.status, v.reason)
        if not v.propose or v.score is None:
            return None
        return ParamsProposed(
            id=stable_id("params_proposed", req.run_id), source=self.agent_id,
            correlation_id=req.run_id, run_id=req.run_id, symbol=symbol,
            strategy=req.strategy, params=run.best_params, current_strategy=cur_strategy,
            current_params=cur_params, objective=req.objective, score=v.score,
            baseline=v.baseline, margin=opt.margin)

    async def _fail(self, req: RunOptimizer, cfg: OptimizeConfig, error: str,
                    symbol: str | None = None) -> None:
        """Record and publish a run that could not start (the reason in ``error``)."""
        assert self.bus is not None
        self.log.warning("run %s failed: %s", req.run_id, error)
        syms = [symbol or req.symbol]
        await asyncio.to_thread(
            self.store.record_optimizer_run, req.run_id, req.strategy, req.objective,
            cfg.model_dump(mode="json"), syms)
        msg = OptimizerFinished(
            id=stable_id("optimizer_failed", req.run_id), source=self.agent_id,
            correlation_id=req.run_id, run_id=req.run_id, strategy=req.strategy,
            objective=req.objective, status="failed", symbols=syms, finished_ns=now_ns(),
            error=error[:2000])
        await asyncio.to_thread(self.store.finish_optimizer_run, msg)
        await self.bus.publish(channels.MODEL_METRICS, msg)

    async def bars(self, symbol: str, until_seq: int = 0,
                   max_bars: int = 5000) -> dict[int, tuple[float, ...]]:
        """``open_time -> (open, high, low, close, volume)``: the newest ``max_bars`` bars of
        ``symbol`` on the ``market_data`` stream with ``seq <= until_seq`` (0: any)."""
        assert self.redis is not None
        out: dict[int, tuple[float, ...]] = {}
        end = "+"
        while len(out) < max_bars:
            entries = await self.redis.xrevrange(channels.MARKET_DATA, end, "-",
                                                 count=READ_CHUNK)
            for _eid, fields in entries:
                try:
                    d = orjson.loads(fields[DATA_FIELD])
                    if d["type"] != "bar_closed" or d["symbol"] != symbol:
                        continue
                    if until_seq and d["seq"] > until_seq:
                        continue
                    row = (d["open"], d["high"], d["low"], d["close"], d["volume"])
                    out.setdefault(int(d["open_time"]), tuple(float(x) for x in row))
                except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
                    continue
                if len(out) >= max_bars:
                    break
            if len(entries) < READ_CHUNK:
                break
            eid = entries[-1][0]
            end = "(" + (eid.decode() if isinstance(eid, bytes) else eid)
        return out

    # ------------------------------------------------------------------ schedule
    async def _schedule(self) -> None:
        """Every ``optimizer.interval_s``: queue one request per scheduled symbol."""
        assert self.redis is not None
        opt = self.settings.optimizer
        if opt.interval_s <= 0:
            return
        period = int(opt.interval_s * 1e9)
        while not self.stopping:
            wait = 1.0
            try:
                await self.redis.set(channels.OPTIMIZER_SCHEDULE_KEY, now_ns() + period, nx=True)
                due = int(await self.redis.get(channels.OPTIMIZER_SCHEDULE_KEY) or 0)
                if now_ns() >= due:
                    await self.enqueue_scheduled(due, period)
                else:
                    wait = min(1.0, (due - now_ns()) / 1e9)
            except REDIS_ERRORS as exc:
                self.log.warning("schedule: redis error %s", exc)
            await self.wait_stop(max(wait, 0.01))

    async def enqueue_scheduled(self, due: int, period: int) -> list[RunOptimizer]:
        """Queue the requests of the slot ``due`` (ns) and move the schedule on; none while
        an earlier request is still queued or running."""
        from backend.optimizer.proposal import make_request

        assert self.redis is not None and self.bus is not None
        opt = self.settings.optimizer
        nxt = max(due + period, now_ns())
        if not await pipeline_caught_up(self.redis, {channels.OPTIMIZER_REQUESTS: [self.agent_id]}):
            self.log.info("scheduled run skipped: an earlier request is still in progress")
            await self.redis.set(channels.OPTIMIZER_SCHEDULE_KEY, nxt)
            return []
        cursor = int(await self.redis.get(channels.REPLAY_CURSOR_KEY) or 0)
        reqs = []
        for sym in opt.symbols or self.settings.symbols:
            symbol = self._symbol(sym) or sym
            strategy, _ = await running_params(self.redis, self.settings, symbol)
            reqs.append(make_request(
                self.settings, symbol, strategy, run_id=stable_id("scheduled", symbol, due),
                until_seq=cursor, requested_by="optimizer@schedule",
                reason=f"scheduled every {opt.interval_s:g} s"))
        pipe = self.redis.pipeline(transaction=True)
        for req in reqs:
            self.emit(pipe, channels.OPTIMIZER_REQUESTS, req)
        pipe.set(channels.OPTIMIZER_SCHEDULE_KEY, nxt)
        await pipe.execute()
        self.log.info("scheduled %d optimizer runs (bars up to seq %d)", len(reqs), cursor)
        return reqs
