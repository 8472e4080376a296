"""Fault drill: a slow pub/sub consumer is dropped by Redis and recovers; the order path
does not notice.

:func:`slow_consumer_drill` lowers ``client-output-buffer-limit pubsub`` (admin
connection; the old value is restored afterwards), starts ``tradingmesh tail`` as a
subprocess, waits until it is subscribed and receiving, SIGSTOPs it (a paused dashboard
subscriber), and waits until Redis has dropped it.  Redis 7.0 has no INFO counter for
these disconnections (``client_output_buffer_limit_disconnections`` came later), so a drop
is seen as the tail's connection (its ``addr``, from its status file) vanishing from
``CLIENT LIST`` while the process is stopped - a stopped process cannot close its own
socket - and, when the server's log file is readable, the line ``Client ... addr=<addr>
... scheduled to be closed ASAP for overcoming of output buffer limits``.  Then it SIGCONTs
the tail and waits until the status file shows a reconnect and messages received on the
new connection.

Traffic: the running mesh publishes a heartbeat per agent per second, which takes long
to fill even a small buffer (the kernel's socket buffers hold megabytes first), so by
default the drill publishes *filler*: ``replay_finished`` messages with ``bars=0`` and
source ``drill:slowconsumer`` on ``agent:broadcast``, a pub/sub-only channel nothing in
the mesh subscribes to (no agent, the orchestrator or the dashboard reads it).

While the drill runs the lowered limit applies to every pub/sub client of the server: the
agents and the orchestrator read streams, not pub/sub, so only other live subscribers
(another ``tradingmesh tail``, a ``redis-cli SUBSCRIBE``) may be dropped too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from backend import channels
from backend.bus import Bus, pipeline_caught_up
from backend.messages import ReplayFinished, new_id

ROOT = Path(__file__).resolve().parent.parent
FILLER_SOURCE = "drill:slowconsumer"
CONFIG_KEY = "client-output-buffer-limit"
DROP_LOG_LINE = "for overcoming of output buffer limits"


@dataclass
class SlowConsumerResult:
    """Outcome and timings of one slow-consumer drill.

    Attributes
    ----------
    dropped
        Redis disconnected the stopped tail; ``drop_evidence`` says how that was seen.
    drop_detected_s
        Seconds from SIGSTOP to the drop being seen (``None``: not seen).
    recovered
        After SIGCONT the tail reconnected and received messages on the new connection.
    recovered_s
        Seconds from SIGCONT to that (``None``: did not recover).
    reconnects, received_before_stop, received_after_recovery
        From the tail's status file.
    max_omem
        Largest output buffer (bytes, ``CLIENT LIST omem``) seen for the tail's connection.
    filler_messages, filler_bytes
        Filler published on ``agent:broadcast`` (0 when ``filler=False``).
    limit, previous_limit, limit_restored
        The ``client-output-buffer-limit`` set for the drill, the one before, and whether
        the old one was put back.
    order_path_caught_up
        Every consumer group on the order-path streams had read and acknowledged everything
        at the end (``None``: the streams have no groups, nothing to check).
    error
        Why the drill stopped short (``""`` when it ran to the end).
    """

    dropped: bool = False
    drop_evidence: list[str] = field(default_factory=list)
    drop_detected_s: float | None = None
    recovered: bool = False
    recovered_s: float | None = None
    reconnects: int = 0
    received_before_stop: int = 0
    received_after_recovery: int = 0
    max_omem: int = 0
    filler_messages: int = 0
    filler_bytes: int = 0
    limit: str = ""
    previous_limit: str = ""
    limit_restored: bool = False
    order_path_caught_up: bool | None = None
    tail_exit: int | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        """Dropped, recovered, the limit restored and the order path caught up."""
        return (self.dropped and self.recovered and self.limit_restored
                and self.order_path_caught_up is not False and not self.error)


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def read_status(path: Path) -> dict[str, Any]:
    """The tail's status file as a dict (``{}`` while it does not exist or is partial)."""
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}


async def _log_path(admin: Redis) -> Path | None:
    """The server's log file, if it logs to a file this process can see."""
    try:
        cfg = await admin.config_get("logfile")
        name = _s(next(iter(cfg.values()), ""))
        if not name:
            return None
        path = Path(name)
        if not path.is_absolute():
            d = await admin.config_get("dir")
            path = Path(_s(next(iter(d.values()), "."))) / path
    except Exception:  # noqa: BLE001 - CONFIG may be refused; the log is optional evidence
        return None
    return path if path.exists() else None


def _log_size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path else 0
    except OSError:
        return 0


def _drop_logged(path: Path | None, offset: int, addr: str) -> bool:
    if path is None or not addr:
        return False
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return False
    return any(DROP_LOG_LINE in ln and f"addr={addr} " in ln for ln in text.splitlines())


class _Filler:
    """Publishes ``replay_finished`` filler on ``agent:broadcast`` through the Bus."""

    def __init__(self, redis: Redis, enabled: bool) -> None:
        self.bus = Bus(redis, FILLER_SOURCE)
        self.enabled = enabled
        self.messages = 0
        self.bytes = 0
        pad = "drill-filler-" + "x" * 100
        self._one = len(ReplayFinished(source=FILLER_SOURCE, correlation_id=pad, bars=0,
                                       last_seq=0).to_json())
        self._pad = pad

    async def publish(self, n: int) -> None:
        if not self.enabled or n <= 0:
            return
        pipe = self.bus.redis.pipeline(transaction=False)
        for _ in range(n):
            msg = ReplayFinished(id=new_id(), source=FILLER_SOURCE, correlation_id=self._pad,
                                 bars=0, last_seq=0)
            self.bus.stage(pipe, channels.AGENT_BROADCAST, msg)
        await pipe.execute()
        self.messages += n
        self.bytes += n * self._one


async def _tail_client(admin: Redis, addr: str) -> dict[str, Any] | None:
    for c in await admin.client_list():
        if _s(c.get("addr", "")) == addr:
            return c
    return None


async def _order_path_caught_up(admin: Redis, deadline: float, poll_s: float) -> bool | None:
    groups: dict[str, list[str]] = {}
    for stream in channels.ORDER_PATH_STREAMS:
        with contextlib.suppress(Exception):
            names = [_s(g["name"]) for g in await admin.xinfo_groups(stream)]
            if names:
                groups[stream] = names
    if not groups:
        return None
    while True:
        if await pipeline_caught_up(admin, groups):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(poll_s)


def _stop_tail(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGCONT)
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(timeout)


async def slow_consumer_drill(
    admin_redis: Redis,
    tail_env: Mapping[str, str],
    work_dir: Path,
    *,
    hard_bytes: int = 256 * 1024,
    soft_bytes: int = 128 * 1024,
    soft_seconds: int = 1,
    filler: bool = True,
    filler_batch: int = 500,
    max_filler_bytes: int = 256 * 1024 * 1024,
    redis_log: Path | None = None,
    timeout_s: float = 60.0,
    poll_s: float = 0.05,
) -> SlowConsumerResult:
    """Pause a live pub/sub subscriber until Redis drops it; check it recovers.

    Parameters
    ----------
    admin_redis
        ``redis.asyncio`` client allowed CONFIG GET/SET and CLIENT LIST (bytes responses).
    tail_env
        Environment of the ``tradingmesh tail`` subprocess; its ``REDIS_URL`` is the
        subscriber's connection (e.g. the read-only ``dashboard`` user).
    work_dir
        Where the tail's status file (``tail.status.json``) and log (``tail.log``) go.
    hard_bytes, soft_bytes, soft_seconds
        The drill's ``client-output-buffer-limit pubsub`` (bytes, bytes, seconds).
    filler
        Publish filler on ``agent:broadcast`` (module docstring); ``False`` relies on the
        mesh's own traffic.
    filler_batch
        Filler messages per poll (about 0.3 kB each) while waiting for the drop; a tenth
        of that while waiting for the tail to receive.
    max_filler_bytes
        Stop flooding after this much filler (the drop did not come).
    redis_log
        The server's log file; default: asked with ``CONFIG GET logfile``.
    timeout_s
        Deadline of each phase (subscribed, dropped, recovered, order path caught up).
    poll_s
        Polling interval (s).

    Returns
    -------
    SlowConsumerResult
        What happened, with timings in seconds (monotonic clock).
    """
    res = SlowConsumerResult()
    work_dir.mkdir(parents=True, exist_ok=True)
    status_path = work_dir / "tail.status.json"
    status_path.unlink(missing_ok=True)
    fill = _Filler(admin_redis, filler)
    prev = await admin_redis.config_get(CONFIG_KEY)
    res.previous_limit = _s(next(iter(prev.values())))
    res.limit = f"pubsub {hard_bytes} {soft_bytes} {soft_seconds}"
    log_path = redis_log or await _log_path(admin_redis)
    proc: subprocess.Popen[bytes] | None = None
    try:
        await admin_redis.config_set(CONFIG_KEY, res.limit)
        with (work_dir / "tail.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "orchestrator.cli", "tail", "--quiet",
                 "--status-file", str(status_path)],
                env=dict(tail_env), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

        async def wait_for(what: str, cond: Any, batch: int) -> float | None:
            start = time.monotonic()
            while time.monotonic() - start < timeout_s:
                if proc is not None and proc.poll() is not None:
                    res.error = f"the tail exited ({proc.returncode}) while waiting: {what}"
                    return None
                if await cond():
                    return time.monotonic() - start
                await fill.publish(batch)
                await asyncio.sleep(poll_s)
            res.error = f"timed out after {timeout_s:g}s waiting: {what}"
            return None

        async def receiving() -> bool:
            st = read_status(status_path)
            return bool(st.get("connected")) and st.get("received", 0) > 0
        if await wait_for("tail subscribed and receiving", receiving,
                          max(filler_batch // 10, 1)) is None:
            return res
        st = read_status(status_path)
        addr = str(st.get("addr", ""))
        if not addr:
            res.error = "the tail did not report its connection's address"
            return res
        log_offset = _log_size(log_path)
        os.kill(proc.pid, signal.SIGSTOP)
        res.received_before_stop = int(read_status(status_path).get("received", 0))

        async def dropped() -> bool:
            c = await _tail_client(admin_redis, addr)
            if c is not None:
                res.max_omem = max(res.max_omem, int(c.get("omem", 0)))
            logged = _drop_logged(log_path, log_offset, addr)
            if c is None or logged:
                res.drop_evidence = [e for e, seen in (
                    (f"CLIENT LIST no longer shows addr={addr}", c is None),
                    (f"redis log: {DROP_LOG_LINE} (addr={addr})", logged)) if seen]
                return True
            if fill.bytes >= max_filler_bytes:
                raise _Budget
            return False
        try:
            res.drop_detected_s = await wait_for("Redis drops the stopped tail", dropped,
                                                 filler_batch)
        except _Budget:
            res.error = f"no drop after {fill.bytes} bytes of filler"
        res.dropped = res.drop_detected_s is not None
        if res.dropped and log_path is not None and len(res.drop_evidence) == 1:
            # The server logs the line when it frees the client; give it the same deadline.
            start = time.monotonic()
            while time.monotonic() - start < timeout_s and not _drop_logged(
                    log_path, log_offset, addr):
                await asyncio.sleep(poll_s)
            if _drop_logged(log_path, log_offset, addr):
                res.drop_evidence.append(f"redis log: {DROP_LOG_LINE} (addr={addr})")
        os.kill(proc.pid, signal.SIGCONT)
        if not res.dropped:
            return res

        async def recovered() -> bool:
            st = read_status(status_path)
            return (bool(st.get("connected")) and st.get("reconnects", 0) >= 1
                    and st.get("received_since_connect", 0) > 0)
        res.recovered_s = await wait_for("the tail reconnects and receives", recovered,
                                         max(filler_batch // 10, 1))
        res.recovered = res.recovered_s is not None
        st = read_status(status_path)
        res.reconnects = int(st.get("reconnects", 0))
        res.received_after_recovery = int(st.get("received_since_connect", 0))
        res.order_path_caught_up = await _order_path_caught_up(
            admin_redis, time.monotonic() + timeout_s, poll_s)
        return res
    finally:
        if proc is not None:
            res.tail_exit = _stop_tail(proc)
        with contextlib.suppress(Exception):
            await admin_redis.config_set(CONFIG_KEY, res.previous_limit)
            now = await admin_redis.config_get(CONFIG_KEY)
            res.limit_restored = _s(next(iter(now.values()))) == res.previous_limit
        res.filler_messages, res.filler_bytes = fill.messages, fill.bytes


class _Budget(Exception):
    """The filler budget ran out before the drop."""
