"""Prometheus metrics of the mesh and the pipeline-latency tracker that feeds two of them.

:class:`MeshMetrics` holds every metric on a private ``CollectorRegistry`` (never the
process-global one, so several apps and tests do not clash); the control plane sets
the gauges from the supervisor's and the store's view before each scrape and serves
:meth:`MeshMetrics.render` on ``/metrics``.

:class:`LatencyTracker` measures signal -> order and order -> fill latency from the
order-path Redis Streams.  It reads them with plain ``XREAD`` (no consumer group, so the
agents' groups are untouched) and times each message by its stream **entry id**, whose
first part is the Redis server's clock in ms when the entry was added: message ``ts``
fields are market time for fills in a replay, so they are not used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, get_args

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Enum,
    Gauge,
    Histogram,
    generate_latest,
)

from backend import channels
from backend.api_models import AgentInfo, AgentStatus
from backend.bus import DATA_FIELD
from backend.messages import DecodeError, OrderFilled, SignalGenerated, SubmitOrder, decode

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


# ====================================================================== latency
TRACKED_STREAMS: tuple[str, ...] = (channels.SIGNALS, channels.ORDERS, channels.TRADING_EVENTS)


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def entry_ms(entry_id: bytes | str) -> int | None:
    """Millisecond part of a stream entry id (``"1700000000123-0"`` -> 1700000000123)."""
    try:
        return int(_s(entry_id).split("-", 1)[0])
    except ValueError:
        return None


def _stream_entries(resp: Any) -> list[tuple[Any, list[Any]]]:
    """``(stream, [(id, fields), ...])`` pairs of an XREAD reply (RESP2 or RESP3 shapes)."""
    items = resp.items() if isinstance(resp, dict) else resp
    out = []
    for stream, entries in items:
        # RESP3 parsers may wrap the entry list in one more list
        if (entries and len(entries) == 1 and isinstance(entries[0], list)
                and entries[0] and isinstance(entries[0][0], (list, tuple))):
            entries = entries[0]
        out.append((stream, list(entries or ())))
    return out


def _put(d: OrderedDict[str, Any], key: str, value: Any, cap: int) -> None:
    d[key] = value
    while len(d) > cap:
        d.popitem(last=False)


class LatencyTracker:
    """Pipeline latency from the ``signals``, ``orders`` and ``trading_events`` streams.

    * signal -> order: for each new ``SubmitOrder`` (first entry per ``client_order_id``),
      ``(order entry ms - signal entry ms) / 1000`` with the signal found by ``signal_id``.
    * order -> fill: for the first ``OrderFilled`` of a ``client_order_id`` seen as a
      ``SubmitOrder``, ``(fill entry ms - order entry ms) / 1000``.  Fills of other ids
      (venue-originated exits such as ``<coid>-flat``, stop-loss) are not timed.

    The two ends may be read in either order (a capped ``XREAD`` can return an order
    before a backlog of signals): an end whose partner is not known yet is kept and the
    latency is observed when the partner arrives.  A pair whose later end has the
    smaller entry id is not observed: it cannot be causal (a redelivered copy of an order
    first sent before the tracker started, or the server clock stepped back).  Every
    lookup table is bounded by ``max_tracked`` (oldest dropped), so fills of ids never
    ordered (venue exits) only occupy a bounded table.  Entries that do not decode are
    skipped (counted in :attr:`skipped`).

    Parameters
    ----------
    metrics
        Where the latencies are observed.
    max_tracked
        Bound of each lookup table (entries).
    start_ids
        Stream -> entry id to read after; ``"$"`` (default for every stream) means the
        stream's last entry when :meth:`poll` first runs.
    count
        Most entries per stream per ``XREAD``.
    """

    def __init__(
        self,
        metrics: MeshMetrics,
        max_tracked: int = 100_000,
        *,
        start_ids: Mapping[str, str] | None = None,
        count: int = 1000,
    ) -> None:
        self.metrics = metrics
        self.max_tracked = max(1, int(max_tracked))
        self.count = count
        self.last_ids: dict[str, str] = {s: "$" for s in TRACKED_STREAMS}
        if start_ids:
            self.last_ids.update({s: i for s, i in start_ids.items() if s in self.last_ids})
        self.skipped = 0
        self._signals: OrderedDict[str, int] = OrderedDict()  # signal id -> entry ms
        self._orders: OrderedDict[str, int | None] = OrderedDict()  # coid -> ms; None: filled
        self._early_orders: OrderedDict[str, list[int]] = OrderedDict()  # signal id -> ms
        self._early_fills: OrderedDict[str, int] = OrderedDict()  # coid -> first fill ms

    # ------------------------------------------------------------------ reading
    async def _resolve_dollar(self, redis: Any) -> None:
        """Replace ``"$"`` start ids by the stream's last entry id (``0-0`` if empty)."""
        todo = [s for s, i in self.last_ids.items() if i == "$"]
        for stream in todo:
            last = await redis.xrevrange(stream, count=1)
            self.last_ids[stream] = _s(last[0][0]) if last else "0-0"

    async def poll(self, redis: Any, block_ms: int | None = None) -> int:
        """One ``XREAD`` over the three streams; process what it returns.

        Parameters
        ----------
        redis
            A ``redis.asyncio.Redis`` client (bytes or decoded responses).
        block_ms
            Block up to this many ms for new entries; ``None`` does not block.

        Returns
        -------
        int
            Number of stream entries processed (including skipped ones).
        """
        await self._resolve_dollar(redis)
        resp = await redis.xread(dict(self.last_ids), count=self.count, block=block_ms)
        if not resp:
            return 0
        batch: dict[str, list[tuple[int | None, Any]]] = {}
        n = 0
        for stream, entries in _stream_entries(resp):
            name = _s(stream)
            for eid, fields in entries:
                self.last_ids[name] = _s(eid)
                raw = (fields or {}).get(DATA_FIELD) or (fields or {}).get(DATA_FIELD.decode())
                batch.setdefault(name, []).append((entry_ms(eid), raw))
                n += 1
        for stream in TRACKED_STREAMS:  # causal order within the batch
            for ms, raw in batch.get(stream, ()):
                self._handle(ms, raw)
        return n

    async def run(
        self, redis: Any, stop: asyncio.Event, block_ms: int = 500, retry_s: float = 1.0,
    ) -> None:
        """Poll until ``stop`` is set; on a Redis (or any) error, log and retry after ``retry_s``.

        Parameters
        ----------
        redis
            A ``redis.asyncio.Redis`` client.
        stop
            Set it to end the loop (noticed within ``block_ms``).
        block_ms
            ``XREAD`` block time in ms.
        retry_s
            Wait in seconds after a failed poll (cut short by ``stop``).
        """
        while not stop.is_set():
            try:
                await self.poll(redis, block_ms=block_ms)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep measuring whatever happened
                log.warning("latency tracker: poll failed (%s); retrying in %.1fs", exc, retry_s)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=retry_s)

    # ------------------------------------------------------------------ matching
    def _handle(self, ms: int | None, raw: Any) -> None:
        if ms is None or not raw:
            self.skipped += 1
            return
        try:
            msg = decode(raw)
        except DecodeError:
            self.skipped += 1
            return
        if isinstance(msg, SignalGenerated):
            self._on_signal(msg.id, ms)
        elif isinstance(msg, SubmitOrder):
            self._on_order(msg.signal_id, msg.client_order_id, ms)
        elif isinstance(msg, OrderFilled):
            self._on_fill(msg.client_order_id, ms)

    def _signal_to_order(self, sig_ms: int, order_ms: int) -> None:
        if order_ms >= sig_ms:
            self.metrics.observe_signal_to_order((order_ms - sig_ms) / 1000.0)

    def _order_to_fill(self, order_ms: int, fill_ms: int) -> None:
        if fill_ms >= order_ms:
            self.metrics.observe_order_to_fill((fill_ms - order_ms) / 1000.0)

    def _on_signal(self, signal_id: str, ms: int) -> None:
        if signal_id in self._signals:
            return  # a redelivered copy: the first entry is the time it reached Redis
        _put(self._signals, signal_id, ms, self.max_tracked)
        for order_ms in self._early_orders.pop(signal_id, ()):
            self._signal_to_order(ms, order_ms)

    def _on_order(self, signal_id: str, coid: str, ms: int) -> None:
        if coid in self._orders:
            return  # a redelivered copy
        _put(self._orders, coid, ms, self.max_tracked)
        sig_ms = self._signals.get(signal_id)
        if sig_ms is not None:
            self._signal_to_order(sig_ms, ms)
        else:
            self._early_orders.setdefault(signal_id, []).append(ms)
            self._early_orders.move_to_end(signal_id)
            while len(self._early_orders) > self.max_tracked:
                self._early_orders.popitem(last=False)
        fill_ms = self._early_fills.pop(coid, None)
        if fill_ms is not None:
            self._orders[coid] = None
            self._order_to_fill(ms, fill_ms)

    def _on_fill(self, coid: str, ms: int) -> None:
        if coid in self._orders:
            order_ms = self._orders[coid]
            if order_ms is not None:  # first fill of this order
                self._orders[coid] = None
                self._order_to_fill(order_ms, ms)
        elif coid not in self._early_fills:
            _put(self._early_fills, coid, ms, self.max_tracked)
