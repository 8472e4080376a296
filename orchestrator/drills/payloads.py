"""Fault drill: hostile payloads on every channel.

:func:`hostile_payloads` builds a seeded set of malformed, oversized and wrongly-typed
payloads for every channel of :data:`backend.channels.ALL_CHANNELS` (kinds in
:data:`KINDS`); :func:`publish_hostile` puts them on the wire as a producer would (``XADD``
with the Bus's ``data`` field when the channel is a stream, and ``PUBLISH``);
:func:`orchestrator.drills.payloads_check.check_hostile` waits until every payload on a
*consumed* stream has a ``dead_lettered`` record from every consumer group of that
stream, and reports what is missing, the reasons by kind, whether anything on the order
path descends from a hostile payload, and whether an agent restarted.

What "lands in the dead letter" means per channel:

* consumed streams (``ORDER_PATH_STREAMS`` and ``CONTROL_STREAMS`` that have a consumer
  group when the payload is published): each group's agent reads the entry, refuses it
  (:func:`backend.messages.decode` with the stream name; an entry whose fields are not
  exactly ``data`` is refused before decoding) and writes one ``dead_lettered`` record
  (``channel``, ``entry_id``, ``reason``, ``size``, a 4000-byte prefix) in the same
  transaction as its XACK.  ``market_data`` and ``trading_events`` have two groups each,
  so two records per payload.
* history streams (``signals:rejected``, ``audit``, ``risk_alerts``, ``dead_letter``) and
  pub/sub-only channels (``agent:status``, ``agent:errors``, ``agent:broadcast``,
  ``agent:control``, ``model_metrics``, ``retrain_status``): nothing in the mesh reads them
  (no consumer group, no subscriber), so nothing can act on a hostile payload there and
  there is no one to dead-letter it; they are counted as ``unconsumed``.  The same holds
  for a control stream whose reader is not running (``optimizer:proposals`` without the
  orchestrator).  ``tradingmesh tail`` shows such payloads as ``UNDECODABLE``.

Matching is by stream entry id (``dead_lettered.entry_id``); a record without one (a
reader that does not pass it) is matched by the payload's marker ``hostile-<seed>-<n>``,
which every JSON-shaped payload carries near its start (in ``id``, ``source``,
``correlation_id`` and the order ids), so it survives the record's prefix cut.  The same
marker is how :func:`check_hostile` sees outputs that descend from a hostile payload.

The generator never emits a ``cancel_all_orders`` (a kill-switch command), even as a
"wrong channel" message, and only ever publishes payloads that a consumer must refuse.
This module is runtime code: it does not use hypothesis (a dev-only dependency).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from backend import channels
from backend.bus import DATA_FIELD
from backend.messages import (
    CHANNEL_TYPES,
    AgentCommand,
    AgentErrorRaised,
    AgentHeartbeat,
    AgentState,
    AuditRecorded,
    BarClosed,
    ComplianceDecided,
    DeadLettered,
    DecodeError,
    Message,
    OptimizerFinished,
    OptimizerProgressed,
    OrderFilled,
    ParamsProposed,
    ReplayFinished,
    RiskAlertRaised,
    RunOptimizer,
    Side,
    SignalGenerated,
    SubmitOrder,
    UpdateStrategyParams,
    decode,
)

KINDS = (
    "not_json", "not_utf8", "json_array", "json_number", "json_null", "no_type",
    "unknown_type", "string_for_number", "negative_value", "non_finite", "huge_int",
    "extra_field", "missing_id", "wrong_channel", "no_data_field", "oversized",
)
#: Streams where an output descending from a hostile payload would show (the marker).
OUTPUT_STREAMS = (
    channels.SIGNALS, channels.SIGNALS_APPROVED, channels.SIGNALS_REJECTED, channels.ORDERS,
    channels.TRADING_EVENTS, channels.AUDIT, channels.RISK_ALERTS, channels.STRATEGY_PARAMS,
    channels.OPTIMIZER_REQUESTS, channels.OPTIMIZER_PROPOSALS,
)
MiB = 1024 * 1024
#: ns UTC of the templates' bars (2018-01-10, the sample data's start).
T0 = 1_515_560_100_000_000_000
#: Fields the schema bounds below at 0 (``ts`` is on every message).
_NON_NEGATIVE = ("quantity", "volume", "price", "close", "entry_price", "confidence", "seq",
                 "bar_seq", "population", "after_seq", "generation", "ts")
_NON_FINITE = (b"NaN", b"Infinity", b"-Infinity", b"1e999")
_HUGE = (2**63, 2**64 - 1, 10**30, -(2**63) - 1)


@dataclass(frozen=True, slots=True)
class HostilePayload:
    """One hostile payload: ``data`` for ``channel`` of kind ``kind`` (:data:`KINDS`).

    ``field`` is the stream entry's field (the Bus's ``data``, or ``foo`` for the
    ``no_data_field`` kind, which is never PUBLISHed); ``marker`` is ``hostile-<seed>-<n>``.
    """

    channel: str
    kind: str
    data: bytes
    marker: str
    field: bytes = DATA_FIELD

    @property
    def published(self) -> bool:
        """Whether it goes out with PUBLISH (everything but a stream-entry shape fault)."""
        return self.kind != "no_data_field"


@dataclass(frozen=True, slots=True)
class PublishedPayload:
    """A payload on the wire: its stream ``entry_id`` (``None`` on pub/sub-only channels)
    and the consumer ``groups`` of its stream at publish time (each must dead-letter it)."""

    payload: HostilePayload
    entry_id: str | None
    groups: tuple[str, ...]


@dataclass
class HostileBatch:
    """What :func:`publish_hostile` did, and what :func:`check_hostile` compares against."""

    published: list[PublishedPayload]
    marker_prefix: str
    start_ids: dict[str, str]
    pids: dict[str, int]


# ------------------------------------------------------------------ generating
def _template(channel: str, rng: random.Random, marker: str) -> Message:
    """A valid message of a type ``channel`` carries, tagged with ``marker``."""
    env: dict[str, Any] = {"id": marker, "ts": T0 + rng.randrange(10**15), "source": marker,
                           "correlation_id": marker}
    price = round(rng.uniform(0.01, 0.2), 6)
    sig = SignalGenerated(**env, symbol="ETH/BTC", side=Side.BUY, confidence=0.9,
                          entry_price=price, stop_loss=price * 0.95, take_profit=price * 1.1,
                          reason=marker, strategy="sma_cross", bar_seq=rng.randrange(1, 10**6),
                          bar_time=T0)
    by_channel: dict[str, Message] = {
        channels.MARKET_DATA: BarClosed(**env, symbol="ETH/BTC", open_time=sig.bar_time,
                                        open=price, high=price, low=price, close=price,
                                        volume=rng.uniform(1, 100), seq=sig.bar_seq),
        channels.SIGNALS: sig,
        channels.SIGNALS_APPROVED: ComplianceDecided(**env, approved=True, rule="ok",
                                                     reason=marker, signal=sig),
        channels.SIGNALS_REJECTED: ComplianceDecided(**env, approved=False, rule="x",
                                                     reason=marker, signal=sig),
        channels.ORDERS: SubmitOrder(**env, client_order_id=marker, symbol="ETH/BTC",
                                     side=Side.BUY, quantity=rng.uniform(0.1, 5),
                                     signal_id=marker, bar_seq=sig.bar_seq),
        channels.TRADING_EVENTS: OrderFilled(**env, fill_id=marker, client_order_id=marker,
                                             symbol="ETH/BTC", side=Side.BUY, quantity=1.0,
                                             price=price, fee=0.0, bar_seq=sig.bar_seq,
                                             fill_time=sig.bar_time),
        channels.OPTIMIZER_REQUESTS: RunOptimizer(**env, run_id=marker, symbol="ETH/BTC",
                                                  strategy="sma_cross"),
        channels.OPTIMIZER_PROPOSALS: ParamsProposed(
            **env, run_id=marker, symbol="ETH/BTC", strategy="sma_cross", params={"fast": 5},
            current_strategy="sma_cross", score=1.0),
        channels.STRATEGY_PARAMS: UpdateStrategyParams(
            **env, symbol="ETH/BTC", strategy="sma_cross", params={"fast": 5}, after_seq=0,
            actor=marker),
        channels.AGENT_STATUS: AgentHeartbeat(**env, agent_id=marker, role="x",
                                              state=AgentState.RUNNING, pid=1, started_at=0),
        channels.AGENT_ERRORS: AgentErrorRaised(**env, agent_id=marker, error=marker),
        channels.AGENT_BROADCAST: ReplayFinished(**env, bars=0, last_seq=0),
        channels.AGENT_CONTROL: AgentCommand(**env, target=marker, command="pause"),
        channels.MODEL_METRICS: OptimizerFinished(**env, run_id=marker, strategy="sma_cross",
                                                  objective="sharpe"),
        channels.RETRAIN_STATUS: OptimizerProgressed(
            **env, run_id=marker, strategy="sma_cross", objective="sharpe", fold=0, folds=1,
            generation=0, generations=1),
        channels.RISK_ALERTS: RiskAlertRaised(**env, metric="var_99", level="warning",
                                              value=0.01, limit=0.02, ratio=0.5),
        channels.AUDIT: AuditRecorded(**env, actor=marker, action="x", decision="x",
                                      reason=marker),
        channels.DEAD_LETTER: DeadLettered(**env, agent_id=marker, channel="x", reason=marker,
                                           payload=marker),
    }
    return by_channel.get(channel, ReplayFinished(**env, bars=0, last_seq=0))


def _wrong_channel(channel: str, rng: random.Random, marker: str) -> Message:
    """A valid message of a type ``channel`` does not carry (never a kill-switch command)."""
    allowed = CHANNEL_TYPES.get(channel, frozenset())
    pool = [m for c in (channels.ORDERS, channels.SIGNALS, channels.SIGNALS_APPROVED,
                        channels.MARKET_DATA, channels.STRATEGY_PARAMS,
                        channels.OPTIMIZER_REQUESTS)
            if (m := _template(c, rng, marker)).type not in allowed]
    return rng.choice(pool)


def _pick(d: dict[str, Any], rng: random.Random, names: Sequence[str], want: type) -> str:
    found = [k for k in names if isinstance(d.get(k), want) and not isinstance(d[k], bool)]
    return rng.choice(found) if found else "ts"


def _mutate(kind: str, msg: Message, channel: str, rng: random.Random, marker: str,
            oversize: tuple[int, int]) -> bytes:
    d = orjson.loads(msg.to_json())
    junk = bytes(rng.randrange(32, 127) for _ in range(rng.randrange(4, 64)))
    if kind == "not_json":
        return marker.encode() + b" {" + junk
    if kind == "not_utf8":
        return b'{"id": "' + marker.encode() + b'", "type": "\xff\xfe' + junk + b'"}'
    if kind == "json_array":
        return orjson.dumps([d])
    if kind == "json_number":
        return orjson.dumps(rng.choice([rng.randrange(-10**9, 10**9), rng.random()]))
    if kind == "json_null":
        return b"null"
    if kind == "no_type":
        d.pop("type")
    elif kind == "unknown_type":
        d["type"] = f"hostile_{rng.randrange(10**6)}"
    elif kind == "string_for_number":
        k = _pick(d, rng, [k for k in d if k != "ts"], (int, float))
        d[k] = str(d[k])
    elif kind == "negative_value":
        k = _pick(d, rng, _NON_NEGATIVE, (int, float))
        d[k] = -abs(d[k]) - rng.randrange(1, 1000)
    elif kind == "non_finite":
        k = _pick(d, rng, [k for k in d if k != "ts"], float)
        d[k] = "__non_finite__"
        return orjson.dumps(d).replace(b'"__non_finite__"', rng.choice(_NON_FINITE))
    elif kind == "huge_int":
        k = _pick(d, rng, list(d), int)
        d[k] = "__huge__"
        return orjson.dumps(d).replace(b'"__huge__"', str(rng.choice(_HUGE)).encode())
    elif kind == "extra_field":
        d[f"hostile_{rng.randrange(10**6)}"] = marker
    elif kind == "missing_id":
        d.pop("id")
    elif kind == "wrong_channel":
        return _wrong_channel(channel, rng, marker).to_json()
    elif kind == "oversized":
        d["pad"] = "x" * rng.randrange(oversize[0], oversize[1] + 1)
    return orjson.dumps(d)  # no_data_field: a valid message, in the wrong entry field


def hostile_payloads(
    seed: int,
    per_channel: int,
    *,
    channel_names: Sequence[str] = channels.ALL_CHANNELS,
    oversized: int = 3,
    oversize_bytes: tuple[int, int] = (2 * MiB, 20 * MiB),
) -> list[HostilePayload]:
    """A seeded set of hostile payloads: ``per_channel`` on every channel.

    Parameters
    ----------
    seed
        Same seed, same payloads.
    per_channel
        Payloads per channel; the kinds that apply to a channel are dealt in a shuffled
        order (again and again if ``per_channel`` is larger than their number).
    channel_names
        Channels to cover (default every mesh channel).
    oversized
        How many channels (consumed streams first) get an ``oversized`` payload, whose
        size is drawn from ``oversize_bytes`` (bytes; ``MAX_PAYLOAD_BYTES`` is 64 KiB).

    Returns
    -------
    list[HostilePayload]
        In channel order.  ``no_data_field`` only on streams.

    Raises
    ------
    RuntimeError
        A generated payload for a consumed stream would decode (a generator bug).
    """
    rng = random.Random(seed)
    consumed = [c for c in channel_names if c in CHANNEL_TYPES]
    others = [c for c in channel_names if c not in CHANNEL_TYPES]
    big = set((rng.sample(consumed, len(consumed)) + others)[:max(oversized, 0)])
    out: list[HostilePayload] = []
    for channel in channel_names:
        kinds = [k for k in KINDS if (k != "no_data_field" or channel in channels.STREAMS)
                 and (k != "oversized" or channel in big)]
        deck: list[str] = []
        for _ in range(per_channel):
            if not deck:
                deck = rng.sample(kinds, len(kinds))
            kind = deck.pop()
            if kind == "oversized":
                kinds.remove(kind)  # one oversized payload per chosen channel
            marker = f"hostile-{seed}-{len(out)}"
            data = _mutate(kind, _template(channel, rng, marker), channel, rng, marker,
                           oversize_bytes)
            p = HostilePayload(channel, kind, data, marker,
                               b"foo" if kind == "no_data_field" else DATA_FIELD)
            if channel in CHANNEL_TYPES and kind != "no_data_field" and _decodes(p):
                raise RuntimeError(f"hostile payload {marker} ({kind}) decodes on {channel}")
            out.append(p)
    return out


def _decodes(p: HostilePayload) -> bool:
    try:
        decode(p.data, p.channel)
    except DecodeError:
        return False
    return True


# ------------------------------------------------------------------ publishing
def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


async def _last_id(redis: Redis, stream: str) -> str:
    last = await redis.xrevrange(stream, count=1)
    return _s(last[0][0]) if last else "0-0"


async def _groups(redis: Redis, stream: str) -> tuple[str, ...]:
    try:
        return tuple(_s(g["name"]) for g in await redis.xinfo_groups(stream))
    except Exception:  # noqa: BLE001 - no such stream: no group
        return ()


async def agent_pids(redis: Redis) -> dict[str, int]:
    """``agent id -> pid`` from the heartbeat keys (-1 for a faulted agent)."""
    out: dict[str, int] = {}
    async for key in redis.scan_iter(match=channels.HEALTH_KEY_PREFIX + "*"):
        raw = await redis.get(key)
        try:
            hb = decode(raw or b"")
        except DecodeError:
            continue
        if isinstance(hb, AgentHeartbeat):
            out[hb.agent_id] = -1 if hb.state == AgentState.FAULTED else hb.pid
    return out


async def publish_hostile(redis: Redis, payloads: Sequence[HostilePayload]) -> HostileBatch:
    """Put ``payloads`` on the wire: XADD (streams) and PUBLISH, as a producer would.

    Parameters
    ----------
    redis
        A ``redis.asyncio`` client (bytes responses) allowed XADD/PUBLISH on every channel.

    Returns
    -------
    HostileBatch
        Entry ids, each stream's consumer groups, where :func:`check_hostile` starts
        reading ``dead_letter`` and the output streams, and the agents' pids before.
    """
    start = {s: await _last_id(redis, s) for s in (*OUTPUT_STREAMS, channels.DEAD_LETTER)}
    pids = await agent_pids(redis)
    groups = {s: await _groups(redis, s) for s in channels.STREAMS}
    published: list[PublishedPayload] = []
    prefix = payloads[0].marker.rsplit("-", 1)[0] + "-" if payloads else "hostile-"
    for p in payloads:
        pipe = redis.pipeline(transaction=False)
        is_stream = p.channel in channels.STREAMS
        if is_stream:
            pipe.xadd(p.channel, {p.field: p.data})
        if p.published:
            pipe.publish(p.channel, p.data)
        res = await pipe.execute()
        eid = _s(res[0]) if is_stream else None
        published.append(PublishedPayload(p, eid, groups.get(p.channel, ())))
    return HostileBatch(published, prefix, start, pids)
