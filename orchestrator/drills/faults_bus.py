"""Drill faults on the bus itself: hostile payloads on every channel, a slow subscriber.

Both wrap the drills of :mod:`orchestrator.drills.payloads` and
:mod:`orchestrator.drills.slow_consumer` as :data:`orchestrator.drills.faults.Fault`\\ s, so
they run inside a replaying mesh like the process faults.
"""

from __future__ import annotations

import os
import random
import time

from backend import channels
from orchestrator.drills.faults import WINDOW, FaultEvent, Window, moments
from orchestrator.drills.mesh import DrillMesh
from orchestrator.drills.payloads import MiB, hostile_payloads, publish_hostile
from orchestrator.drills.payloads_check import check_hostile
from orchestrator.drills.slow_consumer import slow_consumer_drill

#: Hostile payloads per channel per injection (one of them oversized on some channels).
PER_CHANNEL = 3


async def hostile(mesh: DrillMesh, rng: random.Random, n: int,
                  window: Window = WINDOW) -> list[FaultEvent]:
    """Publish a seeded set of malformed, oversized and wrongly-typed payloads on every
    channel (XADD to streams, PUBLISH everywhere); every copy a consumer group reads
    must be dead-lettered with a reason, no agent may die, no output may derive from
    them.  Recovery = publication until the last dead letter."""
    events = []
    for at in moments(rng, mesh.total_bars, n, *window):
        bar = await mesh.wait_cursor(at)
        payloads = hostile_payloads(rng.randrange(2**31), PER_CHANNEL, oversized=1,
                                    oversize_bytes=(2 * MiB, 4 * MiB))
        t0 = time.monotonic()
        batch = await publish_hostile(mesh.redis, payloads)
        res = await check_hostile(mesh.redis, batch, timeout_s=90.0)
        kinds = sorted(res.reasons_by_kind)
        example = next(iter(res.reasons_by_kind.values()), [""])[0][:90]
        detail = (f"{res.published} payloads on {len(channels.ALL_CHANNELS)} channels "
                  f"({', '.join(kinds)}); {res.dead_lettered}/{res.expected} consumed copies "
                  f"dead-lettered (e.g. {example!r}); outputs {len(res.outputs)}, "
                  f"agents restarted {res.restarted or 'none'}")
        if res.missing:
            detail += f"; NOT dead-lettered: {res.missing[:3]}"
        if res.unacked:
            detail += f"; left pending: {res.unacked[:3]}"
        events.append(FaultEvent("hostile_payloads", "every channel", bar,
                                 time.monotonic() - t0 if res.ok else None, ok=res.ok,
                                 detail=detail))
    return events


async def slow_consumer(mesh: DrillMesh, rng: random.Random, n: int,
                        window: Window = WINDOW) -> list[FaultEvent]:
    """Pause a live pub/sub subscriber (``tradingmesh tail``, the dashboard's kind of
    reader) until Redis drops it past its output buffer limit; it must reconnect and
    receive again while the order path keeps flowing.  Recovery = SIGCONT until it
    receives on a new connection."""
    events = []
    for i, at in enumerate(moments(rng, mesh.total_bars, n, *window)):
        bar = await mesh.wait_cursor(at)
        env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_URL")}
        env["REDIS_URL"] = mesh.subscriber_url
        res = await slow_consumer_drill(mesh.redis, env, mesh.work_dir / f"tail-{i}",
                                        redis_log=mesh.server.log_path)
        detail = (f"dropped by Redis: {res.dropped} ({'; '.join(res.drop_evidence)[:120]}) "
                  f"after {res.drop_detected_s or 0:.2f}s paused; reconnected "
                  f"{res.reconnects}x, {res.received_after_recovery} messages after; "
                  f"limit {res.limit!r} restored: {res.limit_restored}")
        if res.error:
            detail += f"; error: {res.error}"
        events.append(FaultEvent("slow_consumer", "tail subscriber", bar, res.recovered_s,
                                 ok=res.ok, detail=detail))
    return events
