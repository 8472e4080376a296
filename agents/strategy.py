"""strategy agent: one process per symbol, turning bars into signals.

Reads ``market_data`` through its own consumer group (``strategy:<SYMBOL>``), keeps the
bars of its symbol and runs the configured strategy (the same vectorised code the
backtester runs) on every new bar.  A signal gets a deterministic id from
(strategy, symbol, bar seq), so a bar handled twice after a crash gives the same signal,
which downstream agents drop as a duplicate.

On start the bar history is rebuilt from the ``market_data`` stream (the entries this
group already acknowledged), so a restarted agent continues with the same indicator
state instead of a cold start.
"""

from __future__ import annotations

import asyncio

from redis.asyncio.client import Pipeline

from agents.base import Agent
from backend import channels
from backend.bus import Delivery
from backend.messages import AnyMessage, BarClosed, decode
from backend.persistence import Store, make_engine
from backend.pipeline import signal_message
from backend.strategies import StrategyRunner, get_strategy

WARMUP_CHUNK = 5000


class StrategyAgent(Agent):
    """Runs one strategy on one symbol."""

    role = "strategy"

    def __init__(self, settings, agent_id: str | None = None, symbol: str = "") -> None:  # noqa: ANN001
        super().__init__(settings, agent_id)
        self.symbol = symbol
        cfg = settings.strategy_for(symbol)
        self.strategy = get_strategy(cfg.name)
        self.params = self.strategy.resolve_params(cfg.params)
        self.runner = StrategyRunner(self.strategy, self.params, symbol=symbol)
        self._last_time = -1

    async def setup(self) -> None:
        """Open the store and rebuild the bar history from the stream."""
        self.store = Store(make_engine(self.settings.db_url()))
        n = await self._warm_up()
        self.log.info(
            "%s on %s params=%s (warm-up %d bars)", self.strategy.name, self.symbol,
            self.params, n,
        )

    async def _warm_up(self) -> int:
        """Feed the runner every bar of our symbol this group already acknowledged."""
        assert self.redis is not None
        groups = await self.redis.xinfo_groups(channels.MARKET_DATA)
        mine = next((g for g in groups if g["name"].decode() == self.agent_id), None)
        if mine is None:
            return 0
        end = mine["last-delivered-id"].decode()
        if end == "0-0":
            return 0
        pending = await self.redis.xpending(channels.MARKET_DATA, self.agent_id)
        if pending and pending["pending"]:
            end = "(" + pending["min"].decode()  # stop before the first unacked entry
        start, n = "-", 0
        while True:
            entries = await self.redis.xrange(channels.MARKET_DATA, start, end, count=WARMUP_CHUNK)
            for _eid, fields in entries:
                msg = decode(fields[b"data"])
                if isinstance(msg, BarClosed) and msg.symbol == self.symbol:
                    self.runner.append(msg.open_time, msg.open, msg.high, msg.low, msg.close,
                                       msg.volume)
                    self._last_time = msg.open_time
                    n += 1
            if len(entries) < WARMUP_CHUNK:
                return n
            start = "(" + entries[-1][0].decode()

    async def handle(self, delivery: Delivery, msg: AnyMessage, pipe: Pipeline) -> None:
        """Run the strategy on our symbol's bars; ignore everything else."""
        if not isinstance(msg, BarClosed) or msg.symbol != self.symbol:
            return
        if msg.open_time <= self._last_time:
            return  # a bar we already processed (duplicate delivery)
        self._last_time = msg.open_time
        point = self.runner.on_bar(msg.open_time, msg.open, msg.high, msg.low, msg.close,
                                   msg.volume)
        if point is None:
            return
        sig = signal_message(point, msg, self.strategy.name, self.params)
        await asyncio.to_thread(self.store.record_signal, sig)
        self.emit(pipe, channels.SIGNALS, sig)
