"""Unit costs of what each agent does per message, for ``benchmarks/mesh.py``.

Where a tick's time goes, one building block at a time, each timed alone (median of
``n`` calls, no other load from us):

* ``sqlite_commit_ms``: one :class:`backend.persistence.Store` write (``record_signal``:
  ``BEGIN IMMEDIATE``, insert, commit; WAL, ``synchronous=NORMAL``) on a fresh file;
* ``redis_exec_ms``: one agent output transaction on the bench's redis-server
  (``MULTI`` XADD + PUBLISH + HINCRBY + XACK ``EXEC``, as ``Agent.dispatch`` stages it);
* ``redis_roundtrip_ms``: one ``SISMEMBER`` (the idempotency checks, the halt check);
* ``to_thread_ms``: one ``asyncio.to_thread`` hop (how agents call the database);
* ``decode_ms``: ``backend.messages.decode`` of a ``SignalGenerated`` JSON.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from backend.messages import Side, SignalGenerated, decode
from backend.persistence import Store, make_engine


def _signal(i: int) -> SignalGenerated:
    return SignalGenerated(
        source="strategy:ETHBTC", symbol="ETH/BTC", side=Side.BUY, confidence=1.0,
        entry_price=0.09, stop_loss=0.0899, take_profit=0.0901, reason="benchmark",
        strategy="every_tick", params={"bracket_frac": 1e-9}, bar_seq=i, bar_time=i)


def _median_ms(fn: Callable[[int], object], n: int) -> float:
    times = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def unit_costs(redis_url: str, n: int = 300) -> dict[str, float]:
    """Median cost in ms of each building block (module docstring)."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(make_engine(f"sqlite:///{Path(tmp) / 'costs.db'}"))
        sigs = [_signal(i) for i in range(n)]
        out["sqlite_commit_ms"] = _median_ms(lambda i: store.record_signal(sigs[i]), n)
        store.close()
    raw = _signal(0).to_json()
    out["decode_ms"] = _median_ms(lambda i: decode(raw), n)
    with redis.Redis.from_url(redis_url) as r:
        r.xgroup_create("costs:in", "g", id="0", mkstream=True)

        def execute(i: int) -> None:
            eid = r.xadd("costs:in", {b"data": raw})
            pipe = r.pipeline(transaction=True)
            pipe.xadd("costs:out", {b"data": raw}, maxlen=200_000, approximate=True)
            pipe.publish("costs:out", raw)
            pipe.hincrby("costs:stats", "costs:out", 1)
            pipe.xack("costs:in", "g", eid)
            pipe.execute()

        t_add = _median_ms(lambda i: r.xadd("costs:in", {b"data": raw}), n)
        out["redis_exec_ms"] = _median_ms(execute, n) - t_add
        out["redis_roundtrip_ms"] = _median_ms(lambda i: r.sismember("costs:set", i), n)
        r.delete("costs:in", "costs:out", "costs:stats")

    async def hops() -> float:
        times = []
        for _ in range(n):
            t = time.perf_counter()
            await asyncio.to_thread(int)
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1e3

    out["to_thread_ms"] = asyncio.run(hops())
    return out
