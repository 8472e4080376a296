"""Pipeline latency (signal -> order, order -> fill) from the order-path Redis Streams.

:class:`LatencyTracker` reads them with plain ``XREAD`` (no consumer group, so the
agents' groups are untouched) and times each message by its stream **entry id**, whose
first part is the Redis server's clock in ms when the entry was added: message ``ts``
fields are market time for fills in a replay, so they are not used.  It observes into
:class:`orchestrator.metrics.MeshMetrics`' histograms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from backend import channels
from backend.bus import DATA_FIELD
from backend.messages import DecodeError, OrderFilled, SignalGenerated, SubmitOrder, decode
from orchestrator.metrics import MeshMetrics

log = logging.getLogger(__name__)


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
