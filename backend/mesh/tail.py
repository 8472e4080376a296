"""A read-only live subscriber for people and dashboards: ``tradingmesh tail``.

:class:`LiveTail` subscribes (pub/sub) to the mesh's channels, turns every message into a
one-line summary (:func:`summarize`), counts messages per channel and keeps going when
Redis drops it: a subscriber that reads too slowly is disconnected by Redis once its
output buffer passes ``client-output-buffer-limit pubsub``; the tail then logs the drop,
reconnects with exponential backoff and subscribes again.  Pub/sub is at-most-once, so
what was published while it was away is gone (the durable history is in the streams).

It only sends SUBSCRIBE / PSUBSCRIBE / PING, so a read-only ACL user (``dashboard``) is
enough.  With ``status_path`` it keeps a JSON status file (written atomically)::

    {"connected": true, "reconnects": 1, "drops": 1, "received": 5230,
     "received_since_connect": 12, "addr": "127.0.0.1:53012", "pid": 4242,
     "last_drop": "ConnectionError: Connection closed by server.",
     "channels": {"agent:status": 310, ...}, "updated_ns": 1700000000000000000}

``addr`` is the local address of the current connection, i.e. the ``addr=`` of this
client in the server's ``CLIENT LIST``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from backend import channels
from backend.messages import DecodeError, decode

log = logging.getLogger(__name__)

#: Errors that mean "the connection is gone": reconnect.
DROP_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
#: Fields shown (when a message has them) after the type in a summary line.
SUMMARY_FIELDS = (
    "agent_id", "state", "symbol", "side", "quantity", "price", "close", "approved",
    "rule", "client_order_id", "equity", "command", "reason", "error",
)
_GLOB = set("*?[")


def is_pattern(target: str) -> bool:
    """True if ``target`` is a glob pattern (PSUBSCRIBE), False for a channel name."""
    return bool(_GLOB & set(target))


def _text(v: bytes | str) -> str:
    return v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v


def summarize(channel: str, data: bytes | str, width: int = 160) -> str:
    """One line describing one pub/sub message.

    Parameters
    ----------
    channel
        Channel the message arrived on.
    data
        The raw payload.
    width
        The line is cut to this many characters.

    Returns
    -------
    str
        ``"<channel> <type> <id prefix> k=v ..."``, or ``"<channel> UNDECODABLE (<n>
        bytes): <reason>"`` for a payload :func:`backend.messages.decode` refuses on this
        channel.
    """
    raw = data.encode("utf-8", errors="replace") if isinstance(data, str) else data
    try:
        msg = decode(raw, channel)
    except DecodeError as exc:
        return f"{channel} UNDECODABLE ({len(raw)} bytes): {exc}"[:width]
    parts = [channel, msg.type, msg.id[:8]]
    for name in SUMMARY_FIELDS:
        v = getattr(msg, name, None)
        if v is None or v == "":
            continue
        if isinstance(v, float):
            v = f"{v:.8g}"
        parts.append(f"{name}={v}")
    return " ".join(str(p) for p in parts)[:width]


@dataclass
class TailStatus:
    """What the tail has seen so far (also the status file's content).

    Attributes
    ----------
    connected
        Subscribed right now.
    reconnects
        Successful subscriptions after the first one.
    drops
        Connections lost (closed by the server, reset, timed out).
    received
        Messages received in total; ``received_since_connect`` on the current connection.
    addr
        Local ``host:port`` of the current connection (the server's ``CLIENT LIST addr``).
    last_drop
        The error of the last drop.
    channels
        Messages received per channel.
    """

    connected: bool = False
    reconnects: int = 0
    drops: int = 0
    received: int = 0
    received_since_connect: int = 0
    addr: str = ""
    last_drop: str = ""
    pid: int = field(default_factory=os.getpid)
    channels: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> bytes:
        """The status as JSON bytes (with ``updated_ns``, ns UTC)."""
        return orjson.dumps({
            "connected": self.connected, "reconnects": self.reconnects, "drops": self.drops,
            "received": self.received, "received_since_connect": self.received_since_connect,
            "addr": self.addr, "pid": self.pid, "last_drop": self.last_drop,
            "channels": dict(self.channels), "updated_ns": time.time_ns(),
        })


def _local_addr(pubsub: object) -> str:
    """``host:port`` of the pub/sub connection's socket, ``""`` if it cannot be told."""
    writer = getattr(getattr(pubsub, "connection", None), "_writer", None)
    try:
        host, port = writer.get_extra_info("sockname")[:2]  # type: ignore[union-attr]
    except (AttributeError, TypeError, ValueError):
        return ""
    return f"{host}:{port}"


class LiveTail:
    """Subscribe to mesh channels and summarize every message; survive being dropped.

    Parameters
    ----------
    url
        Redis URL (a read-only user is enough).
    targets
        Channel names (SUBSCRIBE) and glob patterns (PSUBSCRIBE, e.g. ``"*"``); default
        every channel of :data:`backend.channels.ALL_CHANNELS`.
    on_line
        Called with each summary line (e.g. ``print``); ``None`` to only count.
    status_path
        JSON status file, rewritten on every state change and at most every
        ``status_every_s`` seconds while messages flow.
    backoff_s, max_backoff_s
        First and largest wait (s) before reconnecting; doubles per failed attempt.
    ping_every_s
        PING after this many idle seconds, so a dead connection is noticed.
    """

    def __init__(
        self,
        url: str,
        targets: Sequence[str] = channels.ALL_CHANNELS,
        on_line: Callable[[str], None] | None = None,
        status_path: Path | None = None,
        *,
        backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
        ping_every_s: float = 5.0,
        status_every_s: float = 0.2,
    ) -> None:
        self.url = url
        self.names = [t for t in targets if not is_pattern(t)]
        self.patterns = [t for t in targets if is_pattern(t)]
        if not self.names and not self.patterns:
            raise ValueError("nothing to subscribe to")
        self.on_line = on_line
        self.status_path = status_path
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.ping_every_s = ping_every_s
        self.status_every_s = status_every_s
        self.status = TailStatus()
        self._written = 0.0

    def write_status(self, force: bool = False) -> None:
        """Rewrite the status file (atomically: temp file + rename), if one is set."""
        if self.status_path is None:
            return
        now = time.monotonic()
        if not force and now - self._written < self.status_every_s:
            return
        self._written = now
        tmp = self.status_path.with_name(self.status_path.name + ".tmp")
        try:
            tmp.write_bytes(self.status.to_json())
            os.replace(tmp, self.status_path)
        except OSError as exc:
            log.warning("cannot write the status file %s: %s", self.status_path, exc)

    def _client(self) -> Redis:
        # No retries inside redis-py: a drop must surface here, to be logged and counted.
        return Redis.from_url(self.url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=5)

    async def run(self, stop: asyncio.Event | None = None, count: int | None = None) -> TailStatus:
        """Tail until ``stop`` is set or ``count`` messages were received.

        Returns
        -------
        TailStatus
            The final counts.
        """
        stop = stop or asyncio.Event()
        delay = self.backoff_s
        first = True
        while not stop.is_set() and not self._done(count):
            client = self._client()
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                if self.names:
                    await pubsub.subscribe(*self.names)
                if self.patterns:
                    await pubsub.psubscribe(*self.patterns)
                st = self.status
                st.connected, st.received_since_connect = True, 0
                st.addr = _local_addr(pubsub)
                if not first:
                    st.reconnects += 1
                    log.warning("resubscribed (reconnect %d) from %s", st.reconnects, st.addr)
                first, delay = False, self.backoff_s
                self.write_status(force=True)
                await self._read(pubsub, stop, count)
            except AuthenticationError:
                raise  # wrong or missing credentials: retrying cannot help
            except DROP_ERRORS as exc:
                was = self.status.connected
                self.status.connected = False
                if was:
                    self.status.drops += 1
                    self.status.last_drop = f"{type(exc).__name__}: {exc}"[:300]
                    log.warning("dropped by redis after %d messages on this connection "
                                "(%s); reconnecting in %.1fs", self.status.received_since_connect,
                                self.status.last_drop, delay)
                else:
                    log.warning("cannot subscribe (%s: %s); retrying in %.1fs",
                                type(exc).__name__, exc, delay)
                self.write_status(force=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, self.max_backoff_s)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()
        self.status.connected = False
        self.write_status(force=True)
        return self.status

    def _done(self, count: int | None) -> bool:
        return count is not None and self.status.received >= count

    async def _read(self, pubsub: object, stop: asyncio.Event, count: int | None) -> None:
        idle_since = time.monotonic()
        while not stop.is_set() and not self._done(count):
            m = await pubsub.get_message(timeout=0.5)  # type: ignore[attr-defined]
            if m is None:
                if time.monotonic() - idle_since >= self.ping_every_s:
                    await pubsub.ping()  # type: ignore[attr-defined]
                    idle_since = time.monotonic()
                self.write_status()
                continue
            if m.get("type") not in ("message", "pmessage"):
                continue  # a PONG
            idle_since = time.monotonic()
            channel = _text(m["channel"])
            st = self.status
            st.received += 1
            st.received_since_connect += 1
            st.channels[channel] += 1
            if self.on_line is not None:
                self.on_line(summarize(channel, m["data"]))
            self.write_status()
