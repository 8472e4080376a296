"""strategy agent: one process per symbol, turning bars into signals.

Reads ``market_data`` through its own consumer group (``strategy:<SYMBOL>``), keeps the
bars of its symbol and runs the configured strategy (the same vectorised code the
backtester runs) on every new bar.  A signal gets a deterministic id from
(strategy, symbol, bar seq), so a bar handled twice after a crash gives the same signal,
which downstream agents drop as a duplicate.

On start the bar history is rebuilt from the ``market_data`` stream (the entries this
group already acknowledged), so a restarted agent continues with the same indicator
state instead of a cold start.

Hot reload: it also reads ``strategy:params`` (same group name, handled before the bars
of a batch).  An :class:`~backend.messages.UpdateStrategyParams` for its symbol becomes a
*pending* switch in its durable state; on its first bar with ``seq > after_seq`` the
runner is rebuilt with the new parameters and the bars it holds, the state records them
as active, a :class:`~backend.messages.StrategyParamsUpdated` goes to ``strategy:params``
and an audit row to the database and ``audit`` -- all in that bar's transaction, before
the bar's signal, which carries the new parameters (:mod:`backend.mesh.hotreload`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from redis.asyncio.client import Pipeline

from agents.base import Agent
from agents.strategy_models import ModelManager
from backend import channels
from backend.bus import DATA_FIELD, Delivery
from backend.channels import compact_symbol
from backend.mesh.hotreload import (
    ActiveParams,
    PendingParams,
    StrategyAgentState,
    parse_state,
    switch_due,
)
from backend.mesh.pipeline import signal_message
from backend.messages import (
    AnyMessage,
    AuditRecorded,
    BarClosed,
    DecodeError,
    StrategyParamsUpdated,
    UpdateStrategyParams,
    decode,
    stable_id,
)
from backend.persistence import Store, make_engine
from backend.strategies.build import build_named, build_strategy
from backend.strategies.runner import StrategyRunner

WARMUP_CHUNK = 5000


@dataclass
class _Staged:
    """In-memory changes of one input, adopted once its transaction executed."""

    state: StrategyAgentState
    runner: StrategyRunner | None = None
    last_time: int | None = None


class StrategyAgent(Agent):
    """Runs one strategy on one symbol; switches parameters on command (hot reload)."""

    role = "strategy"

    def __init__(self, settings, agent_id: str | None = None, symbol: str = "") -> None:  # noqa: ANN001
        super().__init__(settings, agent_id)
        self.symbol = symbol
        cfg = settings.strategy_for(symbol)
        self.strategy = build_strategy(cfg)  # regime labels/gate, combined components
        self.params = self.strategy.resolve_params(cfg.params)
        self.runner = StrategyRunner(self.strategy, self.params, symbol=symbol)
        self.pstate = StrategyAgentState(
            active=ActiveParams(strategy=self.strategy.name, params=self.params))
        self._last_time = -1
        self._staged: _Staged | None = None
        self.models = ModelManager(self)  # ml_classifier model versions

    async def setup(self) -> None:
        """Open the store, restore the active parameters, rebuild the bar history."""
        self.store = Store(make_engine(self.settings.db_url()))
        await self._restore_params()
        n = await self._warm_up()
        self._adopt(self.pstate, await self.models.setup(self.runner))  # ML model hook
        pending = self.pstate.pending
        self.log.info(
            "%s on %s params=%s (%s; warm-up %d bars)%s", self.strategy.name, self.symbol,
            self.params, self.pstate.active.source, n,
            f"; switch to {pending.params} after seq {pending.after_seq}" if pending else "",
        )

    async def _restore_params(self) -> None:
        """Parameters an optimizer (or a person) set survive restarts; the settings' only
        while nothing else was applied (a changed config then takes effect)."""
        assert self.redis is not None
        saved = parse_state(await self.load_state())
        if saved is not None:
            state = saved
            if saved.active.source == "config":
                state = saved.model_copy(update={"active": self.pstate.active})
            try:
                strategy = build_named(state.active.strategy, self.settings.strategy_for(
                    self.symbol))
                params = strategy.resolve_params(state.active.params)
                self._adopt(state, StrategyRunner(strategy, params, symbol=self.symbol))
            except ValueError as exc:
                await self.report_error(f"saved parameters rejected ({exc}); using config")
                self.pstate = StrategyAgentState(active=self.pstate.active,
                                                 pending=saved.pending)
        if saved is None or saved.model_dump() != self.pstate.model_dump():
            await self.redis.set(channels.state_key(self.agent_id), self.pstate.to_json())

    def _adopt(self, state: StrategyAgentState, runner: StrategyRunner) -> None:
        self.pstate, self.runner = state, runner
        self.strategy, self.params = runner.strategy, dict(runner.params)

    async def _warm_up(self) -> int:
        """Feed the runner every bar of our symbol this group already acknowledged."""
        assert self.redis is not None
        groups = await self.redis.xinfo_groups(channels.MARKET_DATA)
        mine = next((g for g in groups if g["name"].decode() == self.agent_id), None)
        if mine is None:
            return 0
        end = mine["last-delivered-id"].decode()
        if end == "0-0":
            return 0
        pending = await self.redis.xpending(channels.MARKET_DATA, self.agent_id)
        if pending and pending["pending"]:
            end = "(" + pending["min"].decode()  # stop before the first unacked entry
        start, n = "-", 0
        while True:
            entries = await self.redis.xrange(channels.MARKET_DATA, start, end, count=WARMUP_CHUNK)
            for _eid, fields in entries:
                try:  # entries dead-lettered when they came (hostile, malformed) are skipped
                    msg = decode(fields.get(DATA_FIELD, b""))
                except DecodeError:
                    continue
                if isinstance(msg, BarClosed) and msg.symbol == self.symbol:
                    self.runner.append(msg.open_time, msg.open, msg.high, msg.low, msg.close,
                                       msg.volume)
                    self._last_time = msg.open_time
                    n += 1
            if len(entries) < WARMUP_CHUNK:
                return n
            start = "(" + entries[-1][0].decode()

    # ------------------------------------------------------------------ inputs
    async def handle(self, delivery: Delivery, msg: AnyMessage, pipe: Pipeline) -> None:
        """Commands for our symbol and our symbol's bars; ignore everything else."""
        self._staged = None
        self.models.discard()
        if isinstance(msg, UpdateStrategyParams) and \
                compact_symbol(msg.symbol) == compact_symbol(self.symbol):
            await self._on_command(msg, pipe)
        elif isinstance(msg, BarClosed) and msg.symbol == self.symbol:
            await self._on_bar(msg, pipe)

    def after_commit(self) -> None:
        """Adopt the state, runner and bar of the input whose transaction just executed."""
        self.models.after_commit()
        st, self._staged = self._staged, None
        if st is None:
            return
        if st.runner is not None:
            self._adopt(st.state, st.runner)
        else:
            self.pstate = st.state
        if st.last_time is not None:
            self._last_time = st.last_time

    async def _on_command(self, cmd: UpdateStrategyParams, pipe: Pipeline) -> None:
        try:
            strategy = build_named(cmd.strategy, self.settings.strategy_for(self.symbol))
            params = strategy.resolve_params(cmd.params)
            self.runner.with_params(params, strategy)  # validates them against our history
        except ValueError as exc:
            await self._audit(pipe, cmd, "rejected", f"invalid parameters: {exc}")
            return
        state = self.pstate.model_copy(update={"pending": PendingParams.of(cmd, params)})
        self.stage_state(pipe, state.to_json())
        self._staged = _Staged(state)
        self.log.info("params %s %s accepted by %s; effective after bar seq %d",
                      cmd.strategy, params, cmd.actor, cmd.after_seq)

    async def _on_bar(self, bar: BarClosed, pipe: Pipeline) -> None:
        if bar.open_time <= self._last_time:
            return  # a bar we already processed (duplicate delivery)
        runner, staged = self.runner, _Staged(self.pstate, last_time=bar.open_time)
        pending = self.pstate.pending
        if switch_due(pending, bar.seq):
            assert pending is not None
            runner = self.runner.with_params(pending.params, build_named(
                pending.strategy, self.settings.strategy_for(self.symbol)))
            staged = _Staged(self._switched(pending, bar.seq), runner, bar.open_time)
            await self._record_switch(pipe, pending, bar.seq, staged.state)
        if runner.last_time != bar.open_time:  # not already fed by a failed attempt
            runner.append(bar.open_time, bar.open, bar.high, bar.low, bar.close, bar.volume)
        self._staged = staged
        model_runner = await self.models.on_bar(bar, runner, pipe)  # ML model hook
        if model_runner is None:
            return  # ml_classifier without a model yet: no signal
        if model_runner is not runner:
            runner = staged.runner = model_runner
        point = runner.latest()
        if point is None:
            return
        sig = signal_message(point, bar, runner.strategy.name, dict(runner.params))
        await asyncio.to_thread(self.store.record_signal, sig)
        self.emit(pipe, channels.SIGNALS, sig)

    def _switched(self, p: PendingParams, seq: int) -> StrategyAgentState:
        active = ActiveParams(
            strategy=p.strategy, params=p.params, source="optimizer" if p.run_id else "manual",
            since_seq=seq, run_id=p.run_id, command_id=p.command_id, actor=p.actor)
        return StrategyAgentState(active=active, pending=None)

    async def _record_switch(self, pipe: Pipeline, p: PendingParams, seq: int,
                             state: StrategyAgentState) -> None:
        old = self.pstate.active
        self.stage_state(pipe, state.to_json())
        self.emit(pipe, channels.STRATEGY_PARAMS, StrategyParamsUpdated(
            id=stable_id("params_switched", self.agent_id, p.command_id),
            source=self.agent_id, correlation_id=p.command_id, agent_id=self.agent_id,
            symbol=self.symbol, strategy=p.strategy, params=p.params,
            old_strategy=old.strategy, old_params=old.params, from_seq=seq,
            command_id=p.command_id, run_id=p.run_id))
        audit = AuditRecorded(
            id=stable_id("audit", "params_switched", self.agent_id, p.command_id),
            source=self.agent_id, actor=p.actor or self.agent_id,
            action="strategy_params_switched", decision="applied",
            reason=(f"{self.symbol}: {old.strategy} {old.params} -> {p.strategy} {p.params} "
                    f"from bar seq {seq}" + (f" (run {p.run_id})" if p.run_id else "")
                    + (f": {p.reason}" if p.reason else ""))[:1000],
            subject_id=p.command_id, correlation_id=p.run_id)
        await asyncio.to_thread(self.store.record_audit_event, audit)
        self.emit(pipe, channels.AUDIT, audit)
        self.log.warning("switched to %s %s from bar seq %d (command %s by %s)",
                         p.strategy, p.params, seq, p.command_id, p.actor)

    async def _audit(self, pipe: Pipeline, cmd: UpdateStrategyParams, decision: str,
                     reason: str) -> None:
        audit = AuditRecorded(
            id=stable_id("audit", "params_command", self.agent_id, cmd.id, decision),
            source=self.agent_id, actor=cmd.actor, action="strategy_params_command",
            decision=decision, reason=f"{self.symbol}: {reason}"[:1000], subject_id=cmd.id,
            correlation_id=cmd.run_id)
        await asyncio.to_thread(self.store.record_audit_event, audit)
        self.emit(pipe, channels.AUDIT, audit)
        await self.report_error(f"params command {cmd.id} {decision}: {reason}")
