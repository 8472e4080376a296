"""Signals and the compliance and risk decisions on them: their writes and reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from backend.messages import ComplianceDecided, RiskDecided, SignalGenerated
from backend.persistence.base import StoreBase
from backend.persistence.schema import decisions, signals


class SignalQueries(StoreBase):
    """:class:`~backend.persistence.Store` queries of the ``signals`` and ``decisions``
    tables."""

    def record_signal(self, msg: SignalGenerated) -> bool:
        """Insert a signal; ``False`` if its id is already stored."""
        return self._insert_ignore(signals, {
            "id": msg.id, "correlation_id": msg.correlation_id or msg.id, "ts": msg.ts,
            "symbol": msg.symbol, "side": str(msg.side), "confidence": msg.confidence,
            "entry_price": msg.entry_price, "stop_loss": msg.stop_loss,
            "take_profit": msg.take_profit, "strategy": msg.strategy,
            "params": dict(msg.params), "reason": msg.reason, "bar_seq": msg.bar_seq,
            "bar_time": msg.bar_time, "source": msg.source, "regime": msg.regime,
        })

    def record_decision(
        self, msg: ComplianceDecided | RiskDecided,
        stage: Literal["compliance", "risk"] | None = None,
    ) -> bool:
        """Insert a compliance or risk decision (id = the decision message id).

        ``stage`` defaults to the message type.  ``quantity``/``notional`` are only
        stored for the risk stage.  Returns ``False`` if already stored.
        """
        is_risk = isinstance(msg, RiskDecided)
        stage = stage or ("risk" if is_risk else "compliance")
        return self._insert_ignore(decisions, {
            "id": msg.id, "signal_id": msg.signal.id,
            "correlation_id": msg.correlation_id or msg.signal.id, "stage": stage,
            "approved": msg.approved, "rule": msg.rule, "reason": msg.reason,
            "quantity": msg.quantity if isinstance(msg, RiskDecided) else None,
            "notional": msg.notional if isinstance(msg, RiskDecided) else None,
            "ts": msg.ts, "source": msg.source,
        })

    def signals(self, symbol: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Signals by time, optionally for one symbol; ``limit`` keeps the last N."""
        return self._select(signals, limit, symbol=symbol)

    def decisions(
        self, signal_id: str | None = None, limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Compliance and risk decisions by time, optionally for one signal."""
        return self._select(decisions, limit, signal_id=signal_id)

    def decisions_for(self, signal_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Decisions on any of ``signal_ids``, by time."""
        if not signal_ids:
            return []
        return self._select(decisions, None, decisions.c.signal_id.in_(list(signal_ids)))
