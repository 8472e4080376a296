"""risk agent: sizes approved signals into orders, or rejects them; owns the breaker.

Reads ``signals:approved`` and ``trading_events``.  On every :class:`PortfolioMarked` it
evaluates the circuit breaker (daily drawdown of mark-to-market equity >= limit latches
HALTED in ``mesh:halt`` until a manual reset).  On an approved signal it catches up to
the portfolio of the signal's bar, applies :func:`backend.risk.rules.decide` and emits
a :class:`SubmitOrder` on ``orders`` (client order id derived from the signal id) or a
:class:`RiskDecided` rejection on ``signals:rejected``.  Every decision is audited.

Portfolio VaR (when ``risk.var_limit > 0``): an approved order must also pass
:func:`backend.risk.var_limit.check_var_limit`, and after every mark that holds a
position the portfolio VaR is compared with the limit; a change of alert level
(warning / breach, with hysteresis, :func:`backend.risk.var_limit.alert_level`) is
published as a :class:`RiskAlertRaised` on ``risk_alerts`` and audited (a return to
``ok`` is audited only).  The level and the last VaR are part of the durable rule state.
The symbols' recent closes come from the ``market_data`` stream: a bounded
:class:`~backend.marketdata.history.CloseHistory` (``var_window + var_horizon + 1`` closes per
symbol) read forward up to the bar seq of the mark or decision that needs it, and
rebuilt backwards from the stream when the agent (re)starts, so it always holds the
bars the backtester holds at that seq.
"""

from __future__ import annotations

import asyncio

from pydantic import Field
from redis.asyncio.client import Pipeline

from agents.portfolio_follower import PortfolioFollower
from backend import channels
from backend.bus import Delivery
from backend.marketdata.history import CloseHistory, Series, load_history, read_bars_after
from backend.mesh.halt import HALT_STATE, HaltState, read_halt, read_reset
from backend.mesh.pipeline import order_message
from backend.mesh.symbol_halt import symbol_halt
from backend.messages import (
    AnyMessage,
    AuditRecorded,
    CancelAllOrders,
    CircuitBreakerTripped,
    ComplianceDecided,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PortfolioMarked,
    RiskAlertRaised,
    RiskDecided,
    stable_id,
)
from backend.persistence import Store, make_engine
from backend.risk import var_limit
from backend.risk.in_flight import InFlight, after_event, after_mark, with_in_flight
from backend.risk.rules import (
    RiskState,
    daily_drawdown,
    decide,
    reset_breaker,
    update_breaker,
)


class RiskAgentState(RiskState):
    """The risk agent's durable state: the breaker's (:class:`RiskState`) and the orders
    it approved that no mark shows yet (:mod:`backend.risk.in_flight`)."""

    in_flight: dict[str, InFlight] = Field(default_factory=dict)


class RiskAgent(PortfolioFollower):
    """Position sizing, exposure caps, confidence gate and the circuit breaker."""

    role = "risk"
    may_latch = True
    rules: RiskAgentState
    #: Recent closes per symbol (only while the VaR limit is on); see the module docstring.
    closes: CloseHistory | None = None
    _closes_cursor: str = "0"

    async def setup(self) -> None:
        """Open the store; restore breaker state and last mark."""
        self.store = Store(make_engine(self.settings.db_url()))
        await self.restore(RiskAgentState())

    async def handle(self, delivery: Delivery, msg: AnyMessage, pipe: Pipeline) -> None:
        """Marks drive the breaker; approved signals become orders or rejections; the
        venue's answers to our orders settle them in flight."""
        if isinstance(msg, PortfolioMarked):
            await self._on_mark(msg, pipe)
        elif isinstance(msg, OrderFilled | OrderRejected | OrderCancelled):
            if msg.client_order_id in self.rules.in_flight:
                self.stage_rule_state(pipe, self.rules.model_copy(update={
                    "in_flight": after_event(self.rules.in_flight, msg)}))
        elif (
            isinstance(msg, ComplianceDecided)
            and msg.approved
            and not await self.already_handled(msg.id)
        ):
            await self._on_approved(msg, pipe)

    async def _on_mark(self, mark: PortfolioMarked, pipe: Pipeline) -> None:
        assert self.redis is not None
        self.mark = mark
        rules = self.rules
        if rules.halted and await read_halt(self.redis) is None:
            # The latch is gone: adopt that only as an audited reset newer than our trip
            # (Redis losing its data is not a reset: stay halted, the orchestrator
            # re-latches from the database).
            last = await read_reset(self.redis)
            if last is not None and last.ts > rules.halted_ts:
                rules = reset_breaker(rules, f"reset #{last.generation} by {last.by}",
                                      rebase_equity=mark.equity)
                self.log.warning("circuit breaker reset #%d adopted; day reference %.8g",
                                 last.generation, mark.equity)
        new, tripped = update_breaker(rules, self.portfolio_view(), self.settings.risk)
        if tripped:
            dd = daily_drawdown(mark.equity, mark.day_start_equity)
            limit = self.settings.risk.daily_drawdown_limit
            reason = (
                f"daily drawdown {dd:.4%} >= limit {limit:.2%} "
                f"(equity {mark.equity:.8f}, day start {mark.day_start_equity:.8f})"
            )
            alert = CircuitBreakerTripped(
                id=stable_id("breaker", mark.bar_seq), source=self.agent_id,
                reason=reason, drawdown=dd, limit=limit,
            )
            audit = AuditRecorded(
                id=stable_id("audit", "breaker", mark.bar_seq), source=self.agent_id,
                actor=self.agent_id, action="circuit_breaker", decision="halted",
                reason=reason, subject_id=str(mark.bar_seq),
            )
            halt = HaltState(kind="circuit_breaker", by=self.agent_id, reason=reason, ts=alert.ts)
            new = new.model_copy(update={"halted_ts": alert.ts})
            await asyncio.to_thread(self._persist_trip, audit, halt)
            pipe.set(channels.HALT_KEY, halt.to_json())
            # resting entries would fill after the trip: cancelled, durably (on `orders`)
            self.emit(pipe, channels.ORDERS, CancelAllOrders(
                id=stable_id("breaker-cancel", mark.bar_seq), source=self.agent_id,
                correlation_id=alert.id, reason=f"circuit breaker: {reason}"[:500],
                entries_only=True))
            self.emit(pipe, channels.RISK_ALERTS, alert)
            self.emit(pipe, channels.AUDIT, audit)
            self.log.warning("circuit breaker tripped: %s", reason)
        if var_limit.enabled(self.settings.risk):
            new = await self._var_alert(mark, new, pipe)
        new = new.model_copy(update={"in_flight": after_mark(new.in_flight)})
        self.stage_rule_state(pipe, new)

    async def _history(self, until_seq: int) -> dict[str, Series]:
        """Closes of the bars with ``seq <= until_seq`` (read from ``market_data``)."""
        assert self.redis is not None
        if self.closes is None or self.closes.last_seq > until_seq:
            self.closes, self._closes_cursor = await load_history(
                self.redis, var_limit.history_len(self.settings.risk), self.settings.symbols,
                until_seq)
        else:
            bars, self._closes_cursor = await read_bars_after(
                self.redis, self._closes_cursor, until_seq)
            self.closes.extend(bars)
        return self.closes.series()

    async def _var_alert(self, mark: PortfolioMarked, state: RiskState,
                         pipe: Pipeline) -> RiskState:
        """Portfolio VaR after ``mark`` against the limit; alert on a change of level."""
        cfg = self.settings.risk
        view = self.portfolio_view()
        held = var_limit.notionals(view)
        hist = await self._history(mark.bar_seq) if held else {}
        res = var_limit.portfolio_var(held, view.equity, hist, cfg)
        ratio = None if res.var is None else res.var / cfg.var_limit
        level = var_limit.alert_level(state.var_alert, ratio, cfg)
        new = state.model_copy(update={"var_alert": level, "var": res.var, "var_ratio": ratio,
                                       "var_bar_seq": mark.bar_seq})
        if level == state.var_alert or res.var is None or ratio is None:
            return new
        reason = (f"portfolio {cfg.var_method} VaR {cfg.var_level:.4g} over {cfg.var_horizon} "
                  f"bar(s) {res.var:.4%} of equity = {ratio:.1%} of the limit "
                  f"{cfg.var_limit:.4%} at bar {mark.bar_seq} ({state.var_alert} -> {level}; "
                  f"{res.observations} bar returns of {', '.join(res.symbols) or 'no position'})")
        audit = AuditRecorded(
            id=stable_id("audit", "var_alert", mark.bar_seq), source=self.agent_id,
            actor=self.agent_id, action="var_alert",
            decision=level if level != "ok" else "cleared", reason=reason[:1000],
            subject_id=str(mark.bar_seq))
        await asyncio.to_thread(self.store.record_audit_event, audit)
        if level != "ok":
            alert = RiskAlertRaised(
                id=stable_id("var_alert", mark.bar_seq), source=self.agent_id,
                metric=f"var_{round(cfg.var_level * 100)}", level=level, value=res.var,
                limit=cfg.var_limit, ratio=ratio, method=cfg.var_method, reason=reason[:500])
            self.emit(pipe, channels.RISK_ALERTS, alert)
            self.log.warning("VaR alert: %s", reason)
        self.emit(pipe, channels.AUDIT, audit)
        return new

    async def _on_approved(self, approval: ComplianceDecided, pipe: Pipeline) -> None:
        assert self.redis is not None
        sig = approval.signal
        fresh = await self.catch_up(sig.bar_seq)
        rules = state = self.rules
        latch = await read_halt(self.redis)
        if latch is not None:  # the latch rules, whoever set it
            state = state.model_copy(update={
                "halted": True, "halt_reason": f"{latch.kind}: {latch.reason}",
            })
            if latch.ts > rules.latch_seen_ts:  # remembered: Redis may lose it
                rules = rules.model_copy(update={"latch_seen_ts": latch.ts})
        elif rules.latch_seen_ts:
            last = await read_reset(self.redis)
            if last is None or last.ts < rules.latch_seen_ts:  # lost, not reset
                state = state.model_copy(update={
                    "halted": True, "halt_reason": "halt latch missing from Redis and "
                    "no reset since it was seen: fail closed until it is restored"})
        # what is approved but not yet in the mark counts against every limit
        view = with_in_flight(self.portfolio_view(), rules.in_flight.values(),
                              self.settings.paper.fee_rate)
        d = None
        if fresh:
            d = decide(sig, view, state, self.settings.risk, self.settings.paper.fee_rate)
            if d.approved and not d.reduce_only and var_limit.enabled(self.settings.risk):
                d = var_limit.check_var_limit(sig, d, view, await self._history(view.bar_seq),
                                              self.settings.risk)
            approved, rule, reason = d.approved, d.rule, d.reason
            if approved and not d.reduce_only:
                halt = await symbol_halt(self.redis, sig.symbol)
                if halt is not None:  # only exits pass until a person resolves it
                    approved, rule, reason = False, "symbol_halted", (
                        f"{sig.symbol} halted ({halt.kind}): {halt.reason}")[:500]
        else:
            approved, rule, reason = False, "stale_portfolio", (
                f"no portfolio for bar {sig.bar_seq} within "
                f"{self.settings.risk.portfolio_wait_s}s (fail closed)"
            )
        cid = approval.correlation_id or sig.id
        out = RiskDecided(
            id=stable_id("risk", sig.id), source=self.agent_id, correlation_id=cid,
            approved=approved, rule=rule, reason=reason, signal=sig,
            quantity=d.quantity if approved else 0.0,
            notional=d.notional if approved else 0.0, equity=view.equity,
        )
        audit = AuditRecorded(
            id=stable_id("audit", "risk", sig.id), source=self.agent_id,
            correlation_id=cid, actor=self.agent_id, action="risk_check",
            decision="approved" if approved else "rejected",
            reason=f"{rule}: {reason}", subject_id=sig.id,
        )
        await asyncio.to_thread(self._persist, out, audit)
        if approved:
            order = order_message(sig, d, cid, ttl_s=self.settings.risk.order_ttl_s)
            self.emit(pipe, channels.ORDERS, order)
            rules = rules.model_copy(update={"in_flight": {
                **rules.in_flight, order.client_order_id: InFlight(
                    symbol=order.symbol, side=order.side, quantity=order.quantity,
                    price=sig.entry_price, reduce_only=order.reduce_only)}})
        else:
            self.emit(pipe, channels.SIGNALS_REJECTED, out)
        self.emit(pipe, channels.AUDIT, audit)
        if rules is not self.rules:
            self.stage_rule_state(pipe, rules)
        self.stage_handled(pipe, approval.id)

    def _persist_trip(self, audit: AuditRecorded, halt: HaltState) -> None:
        with self.store.unit_of_work():  # the trip's audit row and its latch together
            self.store.record_audit_event(audit)
            self.store.put_state_if_absent(HALT_STATE, halt.model_dump(mode="json"))

    def _persist(self, out: RiskDecided, audit: AuditRecorded) -> None:
        with self.store.unit_of_work():  # one write transaction for both rows
            self.store.record_decision(out, "risk")
            self.store.record_audit_event(audit)
