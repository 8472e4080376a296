"""Checking a hostile-payload drill: :func:`check_hostile` (see
:mod:`orchestrator.drills.payloads` for the payloads and what "dead-lettered" means per
channel)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from redis.asyncio import Redis

from backend import channels
from backend.bus import DATA_FIELD
from backend.messages import DeadLettered, DecodeError, decode
from orchestrator.drills.payloads import (
    OUTPUT_STREAMS,
    HostileBatch,
    PublishedPayload,
    agent_pids,
)


@dataclass
class HostileResult:
    """Outcome of one hostile-payload drill.

    ``expected`` counts (payload, consumer group) pairs that must be dead-lettered,
    ``dead_lettered`` those that were; ``missing`` lists the others as ``(channel, kind,
    entry id, group)``; ``unacked`` such pairs still pending in their group;
    ``reasons_by_kind`` a few distinct reasons per kind; ``unconsumed`` payloads per channel
    nothing reads; ``outputs`` order-path entries carrying a hostile marker (``stream entry
    id``); ``restarted`` agents whose heartbeat pid changed, vanished or is faulted.
    """

    published: int = 0
    expected: int = 0
    dead_lettered: int = 0
    missing: list[tuple[str, str, str, str]] = field(default_factory=list)
    unacked: list[tuple[str, str, str]] = field(default_factory=list)
    reasons_by_kind: dict[str, list[str]] = field(default_factory=dict)
    unconsumed: dict[str, int] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Everything dead-lettered and acked, nothing derived, nobody restarted."""
        return not (self.missing or self.unacked or self.outputs or self.restarted)


def _s(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


async def _dead_letters(redis: Redis, after: str) -> tuple[list[DeadLettered], str]:
    out: list[DeadLettered] = []
    for eid, fields in await redis.xrange(channels.DEAD_LETTER, "(" + after, "+", count=1000):
        after = _s(eid)
        try:
            msg = decode((fields or {}).get(DATA_FIELD, b""), channels.DEAD_LETTER)
        except DecodeError:
            continue  # a hostile payload published on dead_letter itself
        if isinstance(msg, DeadLettered):
            out.append(msg)
    return out, after


async def _derived_outputs(redis: Redis, batch: HostileBatch) -> list[str]:
    mine = {(pp.payload.channel, pp.entry_id) for pp in batch.published}
    marker = batch.marker_prefix.encode()
    found: list[str] = []
    for stream in OUTPUT_STREAMS:
        after = batch.start_ids[stream]
        while True:
            entries = await redis.xrange(stream, "(" + after, "+", count=500)
            for eid, fields in entries:
                after = _s(eid)
                if (stream, after) not in mine and any(
                        marker in v for v in (fields or {}).values()):
                    found.append(f"{stream} {after}")
            if len(entries) < 500:
                break
    return found


async def check_hostile(
    redis: Redis, batch: HostileBatch, timeout_s: float = 30.0, poll_s: float = 0.1,
) -> HostileResult:
    """Wait (up to ``timeout_s``) until every consumed hostile payload is dead-lettered.

    A payload on a stream with consumer groups must get one ``dead_lettered`` record per
    group (``agent_id`` = group name), matched by entry id or, failing that, by marker.
    Then the groups' pending lists are checked for the payloads (acked?), the output
    streams for entries carrying a hostile marker, and the heartbeats for changed pids.

    Returns
    -------
    HostileResult
        Counts, what is missing, reasons by kind, derived outputs, restarted agents.
    """
    t0 = time.monotonic()
    res = HostileResult(published=len(batch.published))
    want: dict[tuple[str, str, str], PublishedPayload] = {}
    by_marker = {pp.payload.marker: pp for pp in batch.published}
    unconsumed: Counter[str] = Counter()
    for pp in batch.published:
        if pp.entry_id is None or not pp.groups:
            unconsumed[pp.payload.channel] += 1
        for g in pp.groups:
            want[(pp.payload.channel, pp.entry_id or "", g)] = pp
    res.expected, res.unconsumed = len(want), dict(unconsumed)
    seen: set[tuple[str, str, str]] = set()
    reasons: dict[str, set[str]] = {}
    cursor = batch.start_ids[channels.DEAD_LETTER]
    while True:
        records, cursor = await _dead_letters(redis, cursor)
        for r in records:
            eid = r.entry_id
            if not eid:  # a reader that does not say which entry: find it by marker
                pp = next((p for m, p in by_marker.items() if m in r.payload
                           and p.payload.channel == r.channel), None)
                eid = (pp.entry_id or "") if pp else ""
            key = (r.channel, eid, r.agent_id)
            if key in want and key not in seen:
                seen.add(key)
                reasons.setdefault(want[key].payload.kind, set()).add(r.reason[:120])
        if len(seen) == len(want) or time.monotonic() - t0 >= timeout_s:
            break
        await asyncio.sleep(poll_s)
    res.dead_lettered = len(seen)
    res.missing = sorted((c, want[(c, e, g)].payload.kind, e, g)
                         for (c, e, g) in want.keys() - seen)
    res.reasons_by_kind = {k: sorted(v)[:5] for k, v in sorted(reasons.items())}
    for stream, group in {(c, g) for (c, _e, g) in want}:
        rows = await redis.xpending_range(stream, group, "-", "+", 10_000)
        ids = {_s(r["message_id"]) for r in rows}
        res.unacked += [(stream, e, group) for (c, e, g) in want
                        if c == stream and g == group and e in ids]
    res.outputs = await _derived_outputs(redis, batch)
    now = await agent_pids(redis)
    res.restarted = sorted(a for a, pid in batch.pids.items() if now.get(a) != pid)
    res.elapsed_s = time.monotonic() - t0
    return res
