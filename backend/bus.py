"""The Redis message bus: PUBLISH on every channel, Streams + consumer groups on the order path.

Writing
    :meth:`Bus.stage` adds a message to a Redis pipeline: ``PUBLISH`` on its channel,
    ``XADD`` when the channel is also a stream, and a counter in ``stats:messages``.
    History streams (nobody's consumer group reads them) are capped at the ``XADD``
    (``MAXLEN ~``); a stream consumer groups read is never cut there -- an entry a group
    has not read or acknowledged would be lost -- but trimmed by :func:`trim_consumed`,
    only below what every group has acknowledged.  Agents stage all outputs of one input
    *plus* the ``XACK`` of that input in one ``MULTI/EXEC`` transaction, so an effect and
    its acknowledgement are atomic (a crash before EXEC redelivers the input, a crash
    after it loses nothing).

Reading
    :meth:`Bus.read` uses ``XREADGROUP``: first the consumer's own pending entries
    (``0``: what it read but did not acknowledge before a crash), then new ones (``>``).
    The consumer name is the agent id, so a restarted agent finds its own pending
    entries; no other consumer's entries need claiming while each group has one consumer.

Entries hold one field, ``data``: the JSON payload (``redis-cli XRANGE orders - +``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError, ResponseError

from backend import channels
from backend.messages import AgentHeartbeat, DeadLettered, DecodeError, Message, decode

STATS_KEY = channels.STATS_KEY
DATA_FIELD = b"data"
#: Bytes of an unusable payload kept in its ``dead_letter`` record.
DEAD_LETTER_PREFIX = 4000


#: :attr:`Delivery.problem` of a pending entry whose payload is gone.
LOST_PROBLEM = ("payload gone from the stream before it was acknowledged (trimmed, deleted "
                "or lost by Redis): data loss")


@dataclass(frozen=True, slots=True)
class Delivery:
    """One stream entry handed to a consumer.

    Attributes
    ----------
    stream
        Stream (= channel) name.
    entry_id
        Redis stream entry id (``"<ms>-<n>"``).
    raw
        The payload bytes (``b""`` if the entry had no ``data`` field).
    problem
        Why the entry is unusable before decoding (``""`` if it is not): an entry whose
        fields are not exactly ``data`` was not written by :class:`Bus`.
    lost
        The entry is in the group's pending list but its payload is gone from the stream
        (deleted or trimmed before it was acknowledged, or Redis lost data): data loss,
        not junk -- the consumer must raise the alarm (:meth:`agents.base.Agent.on_data_loss`).
    """

    stream: str
    entry_id: str
    raw: bytes
    problem: str = ""
    lost: bool = False


def as_text(v: bytes | str) -> str:
    """A Redis reply item as ``str`` (clients without ``decode_responses`` give bytes)."""
    return v.decode() if isinstance(v, bytes) else v


_s = as_text


class Bus:
    """Publish and consume mesh messages over one ``redis.asyncio`` connection pool.

    Parameters
    ----------
    redis
        A ``redis.asyncio.Redis`` client (``decode_responses=False``).
    agent_id
        Id of the owning agent; used as consumer name and ``source`` of dead letters.
    maxlen
        Approximate cap of every stream (``XADD MAXLEN ~``).
    """

    def __init__(self, redis: Redis, agent_id: str, maxlen: int = 200_000) -> None:
        self.redis = redis
        self.agent_id = agent_id
        self.maxlen = maxlen
        self._pending_done: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ writing
    def stage(self, pipe: Pipeline, channel: str, msg: Message) -> None:
        """Queue ``msg`` on ``channel`` in ``pipe`` (PUBLISH, XADD if a stream, count)."""
        data = msg.to_json()
        if channel in channels.HISTORY_STREAMS:  # read by nobody's group: capped here
            pipe.xadd(channel, {DATA_FIELD: data}, maxlen=self.maxlen, approximate=True)
        elif channel in channels.STREAMS:  # consumed: trimmed only behind every group
            pipe.xadd(channel, {DATA_FIELD: data})
        pipe.publish(channel, data)
        pipe.hincrby(STATS_KEY, channel, 1)

    def stage_ack(self, pipe: Pipeline, stream: str, group: str, entry_id: str) -> None:
        """Queue the ``XACK`` of one entry in ``pipe``."""
        pipe.xack(stream, group, entry_id)

    async def publish(self, channel: str, msg: Message) -> str | None:
        """Publish one message now (its own transaction); its stream entry id, if any."""
        pipe = self.redis.pipeline(transaction=True)
        self.stage(pipe, channel, msg)
        res = await pipe.execute()
        return _s(res[0]) if channel in channels.STREAMS else None

    def stage_dead_letter(
        self, pipe: Pipeline, channel: str, raw: bytes, reason: str, entry_id: str = "",
    ) -> DeadLettered:
        """Queue the record of an unusable payload on ``dead_letter`` in ``pipe``.

        The record keeps at most :data:`DEAD_LETTER_PREFIX` bytes of ``raw`` (so a 20 MB
        junk payload does not become a 20 MB record) and its full ``size`` in bytes.
        """
        text = raw[:DEAD_LETTER_PREFIX].decode("utf-8", errors="replace")
        msg = DeadLettered(
            source=self.agent_id,
            agent_id=self.agent_id,
            channel=channel,
            reason=reason[:2000],
            payload=text,
            size=len(raw),
            entry_id=entry_id,
        )
        self.stage(pipe, channels.DEAD_LETTER, msg)
        return msg

    async def dead_letter(
        self, channel: str, raw: bytes, reason: str, entry_id: str = "",
    ) -> DeadLettered:
        """Record an undecodable payload on the dead-letter channel and return the record."""
        pipe = self.redis.pipeline(transaction=True)
        msg = self.stage_dead_letter(pipe, channel, raw, reason, entry_id)
        await pipe.execute()
        return msg

    # ------------------------------------------------------------------ groups
    async def ensure_group(self, stream: str, group: str, start_id: str = "0") -> None:
        """Create consumer group ``group`` on ``stream`` (and the stream) if missing.

        ``start_id="0"`` makes a new group read the stream from its beginning, so
        messages published before the consumer first started are not missed.
        """
        try:
            await self.redis.xgroup_create(stream, group, id=start_id, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def recheck_pending(self) -> None:
        """Make the next :meth:`read` return this consumer's pending entries first again.

        Call it after a failed read: Redis may have delivered entries (they are in the
        group's pending list) whose reply never arrived, and ``>`` reads never return
        them again.
        """
        self._pending_done.clear()

    async def read(
        self,
        streams: list[str],
        group: str,
        count: int = 200,
        block_ms: int = 500,
    ) -> list[Delivery]:
        """Read the next batch for this consumer from ``streams`` through ``group``.

        Own pending entries (read before but never acknowledged, e.g. before a crash)
        are returned first, stream by stream; then new entries, blocking up to
        ``block_ms``.  Returns ``[]`` on timeout.
        """
        pending: dict[Any, Any] = {s: "0" for s in streams
                                   if (s, group) not in self._pending_done}
        if pending:
            resp = await self.redis.xreadgroup(group, self.agent_id, pending, count=count)
            out = self._deliveries(resp)
            got = {d.stream for d in out}
            for s in pending:
                if s not in got:
                    self._pending_done.add((s, group))
            if out:
                return out
        resp = await self.redis.xreadgroup(
            group, self.agent_id, {s: ">" for s in streams}, count=count, block=block_ms
        )
        return self._deliveries(resp)

    @staticmethod
    def _deliveries(resp: object) -> list[Delivery]:
        out: list[Delivery] = []
        if not resp:
            return out
        items = resp.items() if isinstance(resp, dict) else cast(Iterable[Any], resp)
        for stream, entries in items:
            name = _s(stream)
            for eid, fields in entries:
                if not fields:  # a pending entry whose payload was deleted
                    out.append(Delivery(name, _s(eid), b"", LOST_PROBLEM, lost=True))
                    continue
                problem = ""
                if list(fields) != [DATA_FIELD]:
                    names = ", ".join(
                        repr(k.decode("utf-8", "replace") if isinstance(k, bytes) else k)
                        for k in list(fields)[:8]) or "none"
                    problem = f"stream entry fields {names}: expected exactly 'data'"
                out.append(Delivery(name, _s(eid), fields.get(DATA_FIELD, b""), problem))
        return out

    # ------------------------------------------------------------------ inspection
    async def message_counts(self) -> dict[str, int]:
        """Messages published per channel since the stats were last reset."""
        raw = await self.redis.hgetall(STATS_KEY)
        return {_s(k): int(v) for k, v in raw.items()}



#: :func:`pipeline_caught_up` on the server: one round trip, one integer back (the same
#: check through XINFO replies parsed by redis-py cost about 1.6 ms of client CPU per call,
#: this about 0.3 ms: ``market_data`` asks it after every bar of a ``max``-speed replay).
#: ARGV: the parked-agents set, then per stream its name, the number of groups and their
#: names.  No KEYS: a declared key must be writable by the ACL user, while the commands
#: the script calls (XINFO, SMEMBERS: reads) are checked against its read-only keys.
CAUGHT_UP_LUA = """
local parked = {}
for _, a in ipairs(redis.call('SMEMBERS', ARGV[1])) do parked[a] = true end
local ai = 2
while ai <= #ARGV do
  local stream = ARGV[ai]
  local n = tonumber(ARGV[ai + 1])
  ai = ai + 2
  local ok, info = pcall(redis.call, 'XINFO', 'STREAM', stream)
  if not ok then return 0 end
  local last
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1]; break end
  end
  local seen = {}
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local t = {}
    for i = 1, #g, 2 do t[g[i]] = g[i + 1] end
    seen[t['name']] = t
  end
  for _ = 1, n do
    local name = ARGV[ai]; ai = ai + 1
    if not parked[name] then
      local g = seen[name]
      if g == nil or tonumber(g['pending']) > 0 or g['last-delivered-id'] ~= last then
        return 0
      end
    end
  end
end
return 1
"""
_CAUGHT_UP_SHA = hashlib.sha1(CAUGHT_UP_LUA.encode()).hexdigest()


async def pipeline_caught_up(redis: Redis, groups: dict[str, list[str]]) -> bool:
    """True when every named group on every stream has read and acked everything.

    ``groups`` maps stream -> group names, in pipeline order.  The check runs on the
    server as one script (:data:`CAUGHT_UP_LUA`, atomic like a MULTI/EXEC), so the answer
    is a consistent snapshot: if it is True, no message is in flight anywhere on the
    order path.  A missing stream or group counts as not caught up.  Groups of agents an
    operator stopped (the set ``mesh:parked``) are skipped: a parked agent must not hold
    the replay back.

    Raises
    ------
    redis.exceptions.RedisError
        Redis is unreachable, or refuses the script (the ACL user needs ``EVALSHA``,
        ``EVAL``, XINFO STREAM/GROUPS, SMEMBERS and read access to the streams and
        ``mesh:parked``).
    """
    args: list[str | int] = [channels.PARKED_AGENTS_KEY]
    for stream, names in groups.items():
        args += [stream, len(names), *names]
    try:
        res = await redis.evalsha(_CAUGHT_UP_SHA, 0, *args)  # type: ignore[misc]
    except NoScriptError:  # not cached on this server yet (or it restarted): EVAL loads it
        res = await redis.eval(CAUGHT_UP_LUA, 0, *args)  # type: ignore[misc]
    return bool(res)


def entry_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id (``"<ms>-<seq>"``) as a comparable ``(ms, seq)``."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def read_heartbeats(redis: Redis, agent_ids: list[str]) -> dict[str, AgentHeartbeat | None]:
    """Each agent's current heartbeat (``agent:health:<id>``), None where the key expired,
    never existed or does not hold a heartbeat.

    Raises
    ------
    redis.exceptions.RedisError, OSError
        Redis cannot be read (callers decide what an unknown state means).
    """
    raws = await redis.mget([channels.health_key(a) for a in agent_ids]) if agent_ids else []
    out: dict[str, AgentHeartbeat | None] = {}
    for agent_id, raw in zip(agent_ids, raws, strict=True):
        hb = None
        if raw:
            try:
                msg = decode(raw)
            except DecodeError:
                msg = None
            hb = msg if isinstance(msg, AgentHeartbeat) else None
        out[agent_id] = hb
    return out


@dataclass(frozen=True)
class TrimResult:
    """What :func:`trim_consumed` did to one stream: entries before and after, and the
    group holding the oldest entry it had to keep (``""``: none held it back)."""

    stream: str
    before: int
    after: int
    held_by: str = ""


async def trim_consumed(redis: Redis, stream: str, keep: int) -> TrimResult:
    """Trim ``stream`` to about its ``keep`` newest entries, but never an entry a consumer
    group has not read or has read and not acknowledged (``XTRIM MINID`` below the
    slowest group: its oldest pending entry, else its last delivered one).

    A stream with no group is left alone.  ``held_by`` names the group that kept more
    than ``keep`` entries alive (a lagging consumer: worth an alarm).
    """
    length = int(await redis.xlen(stream))
    if length <= keep:
        return TrimResult(stream, length, length)
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        return TrimResult(stream, length, length)
    if not groups:
        return TrimResult(stream, length, length)
    newest = await redis.xrevrange(stream, "+", "-", count=keep)
    floor = _s(cast(bytes, newest[-1][0])) if newest else "0-0"
    cut, held_by = floor, ""
    for g in groups:
        name = _s(g["name"])
        safe = _s(g["last-delivered-id"])
        if int(g["pending"]):
            summary = await redis.xpending(stream, name)
            safe = _s(summary["min"])
        if entry_key(safe) < entry_key(cut):
            cut, held_by = safe, name
    await redis.xtrim(stream, minid=cut, approximate=False)
    return TrimResult(stream, length, int(await redis.xlen(stream)), held_by)
