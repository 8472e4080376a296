"""The floor for ``benchmarks/mesh.py``: a bare 4-hop relay through 5 plain redis-py processes.

Process 0 publishes a payload of the byte size of a real ``BarClosed`` JSON, processes
1-3 relay it, process 4 receives it; no code of the mesh runs in the workers (plain
synchronous redis-py, the payload forwarded as bytes, never decoded).  Two primitives:

``stream``
    What the mesh's order path does per hop, without our code: read with
    ``XREADGROUP`` (``COUNT 200 BLOCK 500``, as :meth:`backend.bus.Bus.read`), then one
    ``MULTI/EXEC`` holding ``XADD`` (``MAXLEN ~``) of the next stream, ``PUBLISH`` on the
    next channel and the ``XACK`` of the input (process 0: ``XADD`` + ``PUBLISH``;
    process 4: ``XACK`` only).
``pubsub``
    ``SUBSCRIBE`` to the previous channel, ``PUBLISH`` on the next one (at-most-once).

Latency of a message: ``time.time_ns()`` in process 4 when the read returned it minus
``time.time_ns()`` in process 0 just before the publishing call (carried in the
payload's ``ts`` field).  Process 0 paces on an absolute schedule (``t0 + k / rate``).

Worker command line (started by :func:`run_floor`)::

    python benchmarks/relay.py --url URL --mode stream --hop 2 --count N --rate R \
        --payload FILE --ts-offset K [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

HOPS = 4  # relays between publisher and receiver: 5 processes
STOP = b"STOP"
READY_KEY = "relay:ready"
MAXLEN = 200_000


def _name(hop: int) -> str:
    """Stream/channel written by process ``hop`` (read by ``hop + 1``)."""
    return f"relay:{hop}"


def _stamp(payload: bytes, offset: int) -> bytes:
    """``payload`` with its 19-digit ``ts`` (at ``offset``) set to now (ns)."""
    return payload[:offset] + b"%019d" % time.time_ns() + payload[offset + 19:]


def _publisher(r: redis.Redis, a: argparse.Namespace, payload: bytes) -> None:
    while r.scard(READY_KEY) < HOPS:  # every downstream process listens
        time.sleep(0.01)
    out = _name(0)
    t0 = time.perf_counter() + 0.05
    for k in range(a.count + 1):
        if k < a.count:
            delay = t0 + k / a.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            data = _stamp(payload, a.ts_offset)
        else:
            data = STOP
        if a.mode == "stream":
            pipe = r.pipeline(transaction=True)
            pipe.xadd(out, {b"data": data}, maxlen=MAXLEN, approximate=True)
            pipe.publish(out, data)
            pipe.execute()
        else:
            r.publish(out, data)


def _stream_hop(r: redis.Redis, a: argparse.Namespace) -> list[tuple[int, int]]:
    src, group = _name(a.hop - 1), f"g{a.hop}"
    r.xgroup_create(src, group, id="0", mkstream=True)
    r.sadd(READY_KEY, a.hop)
    got: list[tuple[int, int]] = []
    while True:
        resp = r.xreadgroup(group, "c", {src: ">"}, count=200, block=500)
        now = time.time_ns()
        for _stream, entries in resp or ():
            for eid, fields in entries:
                data = fields[b"data"]
                pipe = r.pipeline(transaction=True)
                if a.hop < HOPS:
                    out = _name(a.hop)
                    pipe.xadd(out, {b"data": data}, maxlen=MAXLEN, approximate=True)
                    pipe.publish(out, data)
                pipe.xack(src, group, eid)
                pipe.execute()
                if data == STOP:
                    return got
                if a.hop == HOPS:
                    got.append((int(data[a.ts_offset:a.ts_offset + 19]), now))


def _pubsub_hop(r: redis.Redis, a: argparse.Namespace) -> list[tuple[int, int]]:
    sub = r.pubsub()
    sub.subscribe(_name(a.hop - 1))
    got: list[tuple[int, int]] = []
    for msg in sub.listen():
        now = time.time_ns()
        if msg["type"] == "subscribe":
            r.sadd(READY_KEY, a.hop)
            continue
        data = msg["data"]
        if a.hop < HOPS:
            r.publish(_name(a.hop), data)
        if data == STOP:
            break
        if a.hop == HOPS:
            got.append((int(data[a.ts_offset:a.ts_offset + 19]), now))
    sub.close()
    return got


def worker(argv: list[str] | None = None) -> int:
    """One relay process (see the module docstring)."""
    p = argparse.ArgumentParser(description="one process of the bare relay")
    p.add_argument("--url", required=True)
    p.add_argument("--mode", choices=("stream", "pubsub"), required=True)
    p.add_argument("--hop", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--payload", type=Path, required=True)
    p.add_argument("--ts-offset", type=int, required=True)
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    r = redis.Redis.from_url(a.url)
    if a.hop == 0:
        _publisher(r, a, a.payload.read_bytes())
        return 0
    got = _stream_hop(r, a) if a.mode == "stream" else _pubsub_hop(r, a)
    if a.out is not None:
        a.out.write_text(json.dumps(got))
    return 0


def run_floor(url: str, mode: str, rate: float, count: int, payload: bytes,
              timeout_s: float = 120.0) -> list[tuple[int, int]]:
    """Relay ``count`` messages at ``rate`` per second through 5 processes.

    Parameters
    ----------
    url
        An empty, private Redis (it is FLUSHALLed first).
    mode
        ``"stream"`` or ``"pubsub"`` (module docstring).
    payload
        The message; must hold ``"ts":`` followed by 19 digits (a ``BarClosed`` JSON).

    Returns
    -------
    list of (int, int)
        ``(published ns, received ns)`` per message, in arrival order (wall clock, UTC).
    """
    offset = payload.index(b'"ts":') + 5
    with redis.Redis.from_url(url) as r:
        r.flushall()
    with tempfile.TemporaryDirectory() as tmp:
        pfile, out = Path(tmp) / "payload", Path(tmp) / "out.json"
        pfile.write_bytes(payload)
        procs = []
        for hop in range(HOPS, -1, -1):  # receiver first, publisher last
            cmd = [sys.executable, __file__, "--url", url, "--mode", mode, "--hop", str(hop),
                   "--count", str(count), "--rate", str(rate), "--payload", str(pfile),
                   "--ts-offset", str(offset)]
            if hop == HOPS:
                cmd += ["--out", str(out)]
            procs.append(subprocess.Popen(cmd))  # noqa: S603 - our own script
        try:
            for proc in procs:
                proc.wait(timeout_s)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if any(proc.returncode for proc in procs):
            raise RuntimeError(f"relay {mode}: a worker failed "
                               f"({[proc.returncode for proc in procs]})")
        return [tuple(x) for x in json.loads(out.read_text())]


if __name__ == "__main__":
    sys.exit(worker())
