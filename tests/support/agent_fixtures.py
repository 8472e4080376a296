"""In-process agents on fakeredis for unit tests (not a test module).

:func:`wire` gives an agent a fakeredis client and a bus and creates its consumer groups,
as :meth:`agents.base.Agent.run` would; :func:`drain` dispatches everything queued for it;
:func:`publish_bars` appends sample bars to ``market_data`` and moves the replay cursor,
as the market_data agent does.
"""

from __future__ import annotations

from pathlib import Path

from agents.base import Agent
from backend import channels
from backend.bus import Bus
from backend.marketdata.candles import Candles, load_dir
from backend.mesh.pipeline import bar_message
from backend.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    """Settings of a one-symbol test mesh (ETH/BTC) with its SQLite file under ``tmp_path``."""
    base: dict[str, object] = {
        "symbols": ["ETH/BTC"], "var_dir": tmp_path,
        "database_url": f"sqlite:///{tmp_path / 'unit.db'}",
        "data_dir": ROOT / "data" / "sample",
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


def eth_candles(settings: Settings) -> Candles:
    """The shipped ETH/BTC sample candles."""
    return load_dir(settings.data_dir, ["ETH/BTC"])["ETH/BTC"]


async def wire(agent: Agent, redis) -> Agent:  # noqa: ANN001
    """Connect ``agent`` to ``redis`` and create its groups (no heartbeat task)."""
    agent.redis = redis
    agent.bus = Bus(redis, agent.agent_id)
    for stream in agent.inputs:
        await agent.bus.ensure_group(stream, agent.agent_id)
    return agent


async def drain(agent: Agent) -> int:
    """Dispatch every entry waiting for ``agent`` (batches in its priority order)."""
    assert agent.bus is not None
    n = 0
    while True:
        batch = await agent.bus.read(agent.inputs, agent.agent_id, block_ms=None)  # type: ignore[arg-type]
        if not batch:
            return n
        batch.sort(key=lambda d: agent.stream_priority(d.stream))
        for d in batch:
            await agent.dispatch(d)
        n += len(batch)


async def publish_bars(redis, candles: Candles, rows: range, first_seq: int) -> int:  # noqa: ANN001
    """Publish ``candles`` rows as bars ``first_seq, first_seq + 1, ...``; the last seq."""
    bus = Bus(redis, "market_data")
    seq = first_seq - 1
    for seq, i in enumerate(rows, start=first_seq):
        pipe = redis.pipeline(transaction=True)
        bus.stage(pipe, channels.MARKET_DATA, bar_message(candles, i, seq, "5m"))
        pipe.set(channels.REPLAY_CURSOR_KEY, seq)
        await pipe.execute()
    return seq
