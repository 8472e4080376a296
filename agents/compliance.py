"""compliance agent: approves or rejects every signal, with the rule and the reason.

Reads ``signals`` (and ``trading_events`` for the day's traded notional), applies the
pure rules of :mod:`backend.compliance.rules`, and publishes a
:class:`ComplianceDecided` on ``signals:approved`` or ``signals:rejected``.  Every
decision is written to the audit log (database table and ``audit`` channel) before it
is published; the decision, the rule state and the input's XACK are one transaction.
"""

from __future__ import annotations

import asyncio

from redis.asyncio.client import Pipeline

from agents.portfolio_follower import PortfolioFollower
from backend import channels
from backend.bus import Delivery
from backend.compliance.rules import ComplianceState, check_signal, utc_day
from backend.messages import (
    AnyMessage,
    AuditRecorded,
    ComplianceDecided,
    PortfolioMarked,
    SignalGenerated,
    stable_id,
)
from backend.persistence import Store, make_engine


class ComplianceAgent(PortfolioFollower):
    """Applies trading limits and the audit trail to signals."""

    role = "compliance"
    rules: ComplianceState

    async def setup(self) -> None:
        """Open the store and restore rule state and last portfolio mark."""
        self.store = Store(make_engine(self.settings.db_url()))
        await self.restore(ComplianceState(day=-1, trades_today=0, last_approved={}))

    async def handle(self, delivery: Delivery, msg: AnyMessage, pipe: Pipeline) -> None:
        """Track portfolio marks; decide on signals."""
        if isinstance(msg, PortfolioMarked):
            self.mark = msg
            self.stage_rule_state(pipe)
            return
        if not isinstance(msg, SignalGenerated):
            return  # other trading events are not compliance's business
        if await self.already_handled(msg.id):
            return
        fresh = await self.catch_up(msg.bar_seq)
        notional = self.portfolio_view().traded_notional_on(utc_day(msg.bar_time))
        decision, new_rules = check_signal(msg, self.rules, self.settings.compliance, notional)
        if not fresh:  # the daily limits would be judged on an old portfolio: fail closed
            decision = decision.model_copy(update={
                "approved": False, "rule": "stale_portfolio", "reason": (
                    f"no portfolio for bar {msg.bar_seq} within "
                    f"{self.settings.risk.portfolio_wait_s}s (fail closed)")})
            new_rules = self.rules
        out = ComplianceDecided(
            id=stable_id("compliance", msg.id),
            source=self.agent_id,
            correlation_id=msg.correlation_id or msg.id,
            approved=decision.approved,
            rule=decision.rule,
            reason=decision.reason,
            signal=msg,
        )
        audit = AuditRecorded(
            id=stable_id("audit", "compliance", msg.id),
            source=self.agent_id,
            correlation_id=out.correlation_id,
            actor=self.agent_id,
            action="compliance_check",
            decision="approved" if decision.approved else "rejected",
            reason=f"{decision.rule}: {decision.reason}",
            subject_id=msg.id,
        )
        await asyncio.to_thread(self._persist, msg, out, audit)
        target = channels.SIGNALS_APPROVED if out.approved else channels.SIGNALS_REJECTED
        self.emit(pipe, target, out)
        self.emit(pipe, channels.AUDIT, audit)
        self.stage_handled(pipe, msg.id)
        self.stage_rule_state(pipe, new_rules)

    def _persist(self, sig: SignalGenerated, out: ComplianceDecided, audit: AuditRecorded) -> None:
        with self.store.unit_of_work():  # one write transaction for the three rows
            self.store.record_signal(sig)
            self.store.record_decision(out, "compliance")
            self.store.record_audit_event(audit)
