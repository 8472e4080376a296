"""Prometheus metrics of the mesh.

:class:`MeshMetrics` holds every metric on a private ``CollectorRegistry`` (never the
process-global one, so several apps and tests do not clash); the control plane sets
the gauges from the supervisor's and the store's view before each scrape and serves
:meth:`MeshMetrics.render` on ``/metrics``.  The two latency histograms are fed by
:class:`orchestrator.latency.LatencyTracker`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterable, Mapping
from typing import get_args

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Enum,
    Gauge,
    Histogram,
    generate_latest,
)

from backend.rest.models import AgentInfo, AgentStatus

log = logging.getLogger(__name__)

PREFIX = "tradingmesh_"
#: Every value of ``AgentInfo.state``, the states of ``tradingmesh_agent_state``.
AGENT_STATES: tuple[str, ...] = get_args(AgentStatus)
#: Histogram buckets in seconds: 1 ms .. 5 min.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)
_AGENT_LABELS = ("agent_id", "role")


def _num(x: float | None) -> float:
    """``x`` as a float, NaN for ``None``."""
    return math.nan if x is None else float(x)


class MeshMetrics:
    """The mesh's Prometheus metrics, on their own registry.

    Parameters
    ----------
    registry
        Registry to register on; a new private ``CollectorRegistry`` by default.

    Notes
    -----
    Per agent (labels ``agent_id``, ``role``): ``tradingmesh_agent_up`` (1 running, else
    0), ``tradingmesh_agent_heartbeat_age_seconds`` (s, NaN without heartbeat),
    ``tradingmesh_agent_restarts`` (the supervisor's count; a gauge because it restarts
    from 0 with the orchestrator), ``tradingmesh_agent_messages_in`` / ``_messages_out`` /
    ``_errors`` / ``_dead_letters`` (the agent's own counters from its heartbeat; gauges
    because they restart from 0 with the agent) and ``tradingmesh_agent_state`` (enum).
    Trading: ``tradingmesh_orders{status}`` (count), ``tradingmesh_equity`` (quote
    currency), ``tradingmesh_drawdown`` and ``tradingmesh_daily_drawdown`` (fractions),
    ``tradingmesh_breaker_halted`` (0/1).  Latency histograms (s):
    ``tradingmesh_signal_to_order_seconds``, ``tradingmesh_order_to_fill_seconds``.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry

        def agent_gauge(name: str, doc: str) -> Gauge:
            return Gauge(PREFIX + name, doc, _AGENT_LABELS, registry=reg)

        self.agent_up = agent_gauge("agent_up", "1 if the agent's state is running, else 0.")
        self.agent_heartbeat_age = agent_gauge(
            "agent_heartbeat_age_seconds",
            "Seconds since the agent's last heartbeat (NaN when there is none).",
        )
        self.agent_restarts = agent_gauge(
            "agent_restarts",
            "Restarts by the supervisor (resets when the orchestrator restarts).",
        )
        self.agent_messages_in = agent_gauge(
            "agent_messages_in", "Messages the agent has read (its own counter).")
        self.agent_messages_out = agent_gauge(
            "agent_messages_out", "Messages the agent has emitted (its own counter).")
        self.agent_errors = agent_gauge(
            "agent_errors", "Errors the agent has caught (its own counter).")
        self.agent_dead_letters = agent_gauge(
            "agent_dead_letters", "Payloads the agent dead-lettered (its own counter).")
        self.agent_state = Enum(
            PREFIX + "agent_state", "Agent state (heartbeat or supervisor view).",
            _AGENT_LABELS, states=list(AGENT_STATES), registry=reg,
        )
        self._agent_metrics: tuple[Gauge | Enum, ...] = (
            self.agent_up, self.agent_heartbeat_age, self.agent_restarts,
            self.agent_messages_in, self.agent_messages_out, self.agent_errors,
            self.agent_dead_letters, self.agent_state,
        )
        self._agent_labels: set[tuple[str, str]] = set()

        self.orders = Gauge(PREFIX + "orders", "Orders by status.", ("status",), registry=reg)
        self._order_statuses: set[str] = set()
        self.equity = Gauge(
            PREFIX + "equity", "Mark-to-market equity in quote currency (NaN if unknown).",
            registry=reg)
        self.drawdown = Gauge(
            PREFIX + "drawdown", "Drawdown of equity from its peak, fraction (NaN if unknown).",
            registry=reg)
        self.daily_drawdown = Gauge(
            PREFIX + "daily_drawdown",
            "Drawdown of equity from the UTC day's start, fraction (NaN if unknown).",
            registry=reg)
        self.breaker_halted = Gauge(
            PREFIX + "breaker_halted", "1 if trading is HALTED (kill switch or breaker).",
            registry=reg)

        self.signal_to_order = Histogram(
            PREFIX + "signal_to_order_seconds",
            "Seconds from a signal entering Redis to its order entering Redis.",
            buckets=LATENCY_BUCKETS, registry=reg)
        self.order_to_fill = Histogram(
            PREFIX + "order_to_fill_seconds",
            "Seconds from an order entering Redis to its first fill entering Redis.",
            buckets=LATENCY_BUCKETS, registry=reg)

    # ------------------------------------------------------------------ agents
    def set_agents(self, agents: Iterable[AgentInfo]) -> None:
        """Set the per-agent metrics to ``agents``; agents not in it are removed.

        Parameters
        ----------
        agents
            Every agent now (the last entry wins if an ``agent_id`` repeats with the
            same role).
        """
        current: set[tuple[str, str]] = set()
        for a in agents:
            labels = (a.agent_id, a.role)
            current.add(labels)
            self.agent_up.labels(*labels).set(1.0 if a.state == "running" else 0.0)
            self.agent_heartbeat_age.labels(*labels).set(_num(a.heartbeat_age_s))
            self.agent_restarts.labels(*labels).set(a.restarts)
            self.agent_messages_in.labels(*labels).set(a.messages_in)
            self.agent_messages_out.labels(*labels).set(a.messages_out)
            self.agent_errors.labels(*labels).set(a.errors)
            self.agent_dead_letters.labels(*labels).set(a.dead_letters)
            self.agent_state.labels(*labels).state(a.state)
        for labels in self._agent_labels - current:
            for metric in self._agent_metrics:
                with contextlib.suppress(KeyError):
                    metric.remove(*labels)
        self._agent_labels = current

    # ------------------------------------------------------------------ trading
    def set_trading(
        self,
        orders_by_status: Mapping[str, int],
        equity: float | None,
        drawdown: float | None,
        daily_drawdown: float | None,
        halted: bool,
    ) -> None:
        """Set the trading gauges; order statuses not in ``orders_by_status`` are removed.

        Parameters
        ----------
        orders_by_status
            Number of orders per ``OrderStatus`` value.
        equity
            Mark-to-market equity in quote currency (``None`` -> NaN).
        drawdown
            Drawdown from the equity peak, fraction >= 0 (``None`` -> NaN).
        daily_drawdown
            Drawdown from the UTC day's starting equity, fraction (``None`` -> NaN).
        halted
            Whether the halt latch is set.
        """
        statuses = {str(s) for s in orders_by_status}
        for status, n in orders_by_status.items():
            self.orders.labels(str(status)).set(n)
        for status in self._order_statuses - statuses:
            with contextlib.suppress(KeyError):
                self.orders.remove(status)
        self._order_statuses = statuses
        self.equity.set(_num(equity))
        self.drawdown.set(_num(drawdown))
        self.daily_drawdown.set(_num(daily_drawdown))
        self.breaker_halted.set(1.0 if halted else 0.0)

    # ------------------------------------------------------------------ latency
    def observe_signal_to_order(self, seconds: float) -> None:
        """Record one signal -> order latency in seconds."""
        self.signal_to_order.observe(seconds)

    def observe_order_to_fill(self, seconds: float) -> None:
        """Record one order -> first fill latency in seconds."""
        self.order_to_fill.observe(seconds)

    # ------------------------------------------------------------------ exposition
    def render(self) -> tuple[bytes, str]:
        """The registry in the Prometheus text format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
