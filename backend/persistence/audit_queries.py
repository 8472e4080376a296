"""The audit trail: who decided what about which signal or order, and why."""

from __future__ import annotations

from typing import Any

from backend.messages import AuditRecorded, now_ns, stable_id
from backend.persistence.base import StoreBase
from backend.persistence.schema import audit


class AuditQueries(StoreBase):
    """:class:`~backend.persistence.Store` queries of the ``audit`` table."""

    def record_audit(
        self, actor: str, action: str, decision: str, reason: str = "", subject_id: str = "",
        correlation_id: str = "", *, audit_id: str | None = None, ts: int | None = None,
    ) -> bool:
        """Insert an audit entry; ``False`` if ``audit_id`` is already stored.

        Without ``audit_id`` the id is derived from the content (actor, action,
        decision, reason, subject, correlation and ``ts`` if given), so recording
        the same decision again on redelivery is a no-op.  ``ts`` in ns, default now.
        """
        if audit_id is None:
            audit_id = stable_id("audit", actor, action, decision, reason, subject_id,
                                 correlation_id, ts if ts is not None else "")
        return self._insert_ignore(audit, {
            "id": audit_id, "ts": now_ns() if ts is None else ts, "actor": actor,
            "action": action, "decision": decision, "reason": reason,
            "subject_id": subject_id, "correlation_id": correlation_id,
        })

    def record_audit_event(self, msg: AuditRecorded) -> bool:
        """Insert an :class:`AuditRecorded` message (id = message id)."""
        return self.record_audit(
            msg.actor, msg.action, msg.decision, msg.reason, msg.subject_id,
            msg.correlation_id, audit_id=msg.id, ts=msg.ts,
        )

    def audit(
        self, correlation_id: str | None = None, limit: int | None = None,
        action: str | None = None,
    ) -> list[dict[str, Any]]:
        """Audit entries by time, optionally for one correlation id or action."""
        return self._select(audit, limit, correlation_id=correlation_id, action=action)
