"""Run the execution agent in-process (in the test's event loop) on a real Redis.

Used by the reconciliation and live-venue integration tests: the agent trades through a
:class:`fakebroker.FakeBroker` the test holds (or the paper venue) and the test drives
faults between and during runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import redis

from agents.execution import ExecutionAgent
from backend import channels
from backend.messages import Message, Side, SubmitOrder, client_order_id_for, decode
from backend.settings import Settings
from backend.venues.broker import BrokerClient
from tests.support.agentproc import make_settings

SYM = "ETH/BTC"

#: Fast venue timings for tests (seconds).
FAST_VENUE = {"poll_s": 0.05, "submit_timeout_s": 0.5, "resolve_attempts": 2,
              "resolve_backoff_s": 0.02, "retry_max_s": 0.2, "unknown_margin_s": 0.05,
              "unknown_window_s": 0.5, "unknown_recheck_s": 0.2, "position_check_s": 0.5}


def settings_for(tmp: Path, redis_url: str) -> Settings:
    """Test mesh settings with fast venue timings and heartbeats."""
    return make_settings(tmp, redis_url, venue=FAST_VENUE,
                         orchestrator={"heartbeat_interval_s": 0.05})


@contextlib.asynccontextmanager
async def execution(settings: Settings, client: BrokerClient | None = None
                    ) -> AsyncIterator[ExecutionAgent]:
    """Start an :class:`ExecutionAgent` task; stop it (SIGTERM path) on exit."""
    agent = ExecutionAgent(settings, client=client)
    task = asyncio.create_task(agent.run())
    try:
        yield agent
    finally:
        agent.request_stop()
        code = await asyncio.wait_for(task, 30)
        assert code == 0, f"execution agent exited with {code}"


def order(sig: str, qty: float = 2.0, side: Side = Side.BUY, **kw: Any) -> SubmitOrder:
    """The SubmitOrder risk would send for signal ``sig``."""
    return SubmitOrder(source="risk", correlation_id=sig, client_order_id=client_order_id_for(sig),
                       symbol=SYM, side=side, quantity=qty, signal_id=sig, bar_seq=1, **kw)


def xadd(r: redis.Redis, channel: str, msg: Message) -> None:
    """Append ``msg`` to a stream."""
    r.xadd(channel, {b"data": msg.to_json()})


def events(r: redis.Redis, stream: str = channels.TRADING_EVENTS) -> list[Any]:
    """Every message on ``stream``."""
    return [decode(e[1][b"data"]) for e in r.xrange(stream)]


def health(r: redis.Redis, agent_id: str = "execution") -> dict[str, Any]:
    """The agent's last heartbeat (``{}`` if none)."""
    raw = r.get(channels.health_key(agent_id))
    return orjson.loads(raw) if raw else {}


def unread(r: redis.Redis, stream: str, group: str = "execution") -> int:
    """Entries of ``stream`` the group has not acknowledged (pending + not yet read)."""
    for g in r.xinfo_groups(stream):
        if g["name"].decode() == group:
            return int(g["pending"]) + int(g["lag"] or 0)
    return -1
