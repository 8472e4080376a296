"""Per-symbol halts from the control plane: list them, keep Redis in step with the
database, and send a person's resolution to execution (see :mod:`backend.mesh.symbol_halt`).

The database is the halts' source of truth: :func:`restore_symbol_halts` (called at start
and with every halt sync) puts back into Redis every halt the database has and Redis
lacks, audited; nothing here deletes a halt -- only execution does, after a
:class:`~backend.messages.ResolveSymbol` found nothing left unresolved.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis

from backend import channels
from backend.bus import DATA_FIELD, Bus
from backend.mesh.symbol_halt import STATE_PREFIX, SymbolHalt, read_symbol_halts
from backend.messages import AuditRecorded, ResolveSymbol, decode
from backend.persistence import Store
from backend.rest.halts import SymbolHaltView, SymbolResolveResult

__all__ = ["list_symbol_halts", "resolve_symbol", "restore_symbol_halts"]

log = logging.getLogger("orchestrator.symbol_halts")
SOURCE = "orchestrator"


async def _durable(store: Store) -> dict[str, SymbolHalt]:
    rows = await asyncio.to_thread(store.states, STATE_PREFIX)
    out = {}
    for value in rows.values():
        halt = SymbolHalt.model_validate(value)
        out[halt.symbol] = halt
    return out


async def list_symbol_halts(redis: Redis, store: Store) -> list[SymbolHaltView]:
    """Every halted symbol, from the database and Redis (sorted by symbol)."""
    latched = await read_symbol_halts(redis)
    durable = await _durable(store)
    out = []
    for sym in sorted(set(latched) | set(durable)):
        h = latched.get(sym) or durable[sym]
        out.append(SymbolHaltView(symbol=sym, kind=h.kind, reason=h.reason, by=h.by,
                                  client_order_id=h.client_order_id, ts=h.ts,
                                  latched=sym in latched))
    return out


async def restore_symbol_halts(redis: Redis, store: Store) -> list[str]:
    """Latch in Redis every symbol halt the database has and Redis lacks (Redis lost
    its data); returns the symbols restored (each audited)."""
    latched = await read_symbol_halts(redis)
    restored = []
    for sym, halt in (await _durable(store)).items():
        if sym in latched:
            continue
        if await redis.hsetnx(channels.SYMBOL_HALTS_KEY, sym, halt.to_json()):
            restored.append(sym)
            audit = AuditRecorded(
                source=SOURCE, actor=SOURCE, action="symbol_halt_restored",
                decision="halted", subject_id=sym,
                reason=f"Redis had no halt for {sym}; the database had {halt.kind}: "
                       f"{halt.reason}"[:1000])
            await asyncio.to_thread(store.record_audit_event, audit)
            await Bus(redis, SOURCE).publish(channels.AUDIT, audit)
            log.critical("%s halted again (restored from the database): %s", sym, halt.reason)
    return restored


async def resolve_symbol(redis: Redis, store: Store, *, symbol: str, reason: str, actor: str,
                         adopt_venue_position: bool = False, not_placed: list[str] | None = None,
                         wait_s: float = 10.0) -> SymbolResolveResult:
    """Queue a :class:`ResolveSymbol` on ``orders`` (durable: it runs when execution is
    up) and wait up to ``wait_s`` for execution's answer on the ``audit`` stream."""
    cmd = ResolveSymbol(source=SOURCE, symbol=symbol, reason=reason, actor=actor,
                        adopt_venue_position=adopt_venue_position,
                        not_placed=list(not_placed or []))
    cursor = "0-0"
    if await redis.exists(channels.AUDIT):  # answers come after what is there now
        last = (await redis.xinfo_stream(channels.AUDIT))["last-generated-id"]
        cursor = last.decode() if isinstance(last, bytes) else str(last)
    await Bus(redis, SOURCE).publish(channels.ORDERS, cmd)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        block = max(int((deadline - time.monotonic()) * 1000), 1)
        resp = await redis.xread({channels.AUDIT: cursor}, count=100, block=block)
        for _stream, entries in resp or []:
            for eid, fields in entries:
                cursor = eid.decode() if isinstance(eid, bytes) else eid
                msg = decode(fields[DATA_FIELD])
                if (isinstance(msg, AuditRecorded) and msg.correlation_id == cmd.id
                        and msg.action in ("symbol_resumed", "symbol_still_halted")):
                    return SymbolResolveResult(
                        symbol=symbol, command_id=cmd.id, confirmed=True,
                        resumed=msg.action == "symbol_resumed", message=msg.reason)
    return SymbolResolveResult(
        symbol=symbol, command_id=cmd.id, confirmed=False, resumed=False,
        message=f"execution did not answer within {wait_s:g}s; the command stays queued on "
                "`orders` and runs when execution is up")
