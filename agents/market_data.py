"""market_data agent: replays the configured symbols' candles onto ``market_data``.

Bars of all symbols are published one at a time in (open time, symbol) order, each
with a global ``seq``.  At ``replay_speed = "max"`` the next bar is released only when
every consumer group on the order path has read and acknowledged everything
(back-pressure: as fast as the mesh takes it, never dropping a bar, and the same
order of events on every run).  At a numeric speed N the replay sleeps
``(t_next - t_prev) / N`` between bars.

The replay cursor (last published ``seq``) is written in the same transaction as each
bar, so a restarted agent resumes with the next bar: nothing is skipped or repeated.

With ``market_data_source = "ccxt"`` it publishes live closed candles polled through ccxt
instead (:mod:`backend.marketdata.live_feed`), with the same messages and the same cursor rule.
"""

from __future__ import annotations

import asyncio

from agents.base import REDIS_ERRORS, Agent
from backend import channels
from backend.bus import pipeline_caught_up
from backend.marketdata.candles import load_dir
from backend.marketdata.replay_order import limit_per_symbol, merge_bars
from backend.mesh import topology
from backend.mesh.pipeline import bar_message
from backend.messages import AgentState, BarClosed, ReplayFinished
from backend.persistence import Store, make_engine
from backend.venues.broker import VenueUnavailable


class MarketDataAgent(Agent):
    """Publishes ``BarClosed`` messages from the sample (or any) CSV data."""

    role = "market_data"

    async def main(self) -> None:
        """Replay to the end (or until stopped), then idle with heartbeats."""
        assert self.redis is not None and self.bus is not None
        s = self.settings
        if s.market_data_source == "ccxt":
            await self._live()
            return
        candles = load_dir(s.data_dir, s.symbols, s.timeframe)
        order = limit_per_symbol(list(merge_bars(candles)), s.replay_limit)
        epoch = await self._epoch()
        cursor = int(await self.redis.get(channels.REPLAY_CURSOR_KEY) or 0)
        groups = topology.consumer_groups(s)
        self.log.info(
            "replaying %d bars of %s at speed %s from seq %d",
            len(order), ",".join(s.symbols), s.replay_speed, cursor + 1,
        )
        prev_time: int | None = None
        published = 0
        for seq, (t, symbol, i) in enumerate(order, start=1):
            if seq <= cursor:
                prev_time = t
                continue
            if self.stopping:
                return
            if s.replay_speed == "max":
                if not await self._wait_quiescent(groups):
                    return
            elif (
                prev_time is not None
                and t > prev_time
                and await self.wait_stop((t - prev_time) / 1e9 / float(s.replay_speed))
            ):
                return
            prev_time = t
            bar = bar_message(candles[symbol], i, seq, s.timeframe, epoch=epoch)
            if not await self._publish_bar(bar, seq):
                return
            published += 1
        last_seq = len(order)
        if s.replay_speed == "max":
            await self._wait_quiescent(groups)
        if not await self.redis.exists(channels.REPLAY_DONE_KEY):
            await self.redis.set(channels.REPLAY_DONE_KEY, last_seq)
            done = ReplayFinished(source=self.agent_id, bars=last_seq, last_seq=last_seq)
            await self.bus.publish(channels.AGENT_BROADCAST, done)
        self.log.info("replay finished: %d bars (%d this run)", last_seq, published)
        await self._stop.wait()

    async def _epoch(self) -> int:
        """The deployment epoch of the bar sequence: the one in Redis while its cursor is
        there, else (a sequence starting afresh: a new mesh, or Redis lost its data) the
        next one from the database, so ``(epoch, seq)`` -- and every id derived from it --
        never repeats for the life of the database."""
        assert self.redis is not None
        have = await self.redis.get(channels.REPLAY_EPOCH_KEY)
        if have is not None and await self.redis.exists(channels.REPLAY_CURSOR_KEY):
            return int(have)
        store = Store(make_engine(self.settings.db_url()))
        try:
            epoch = await asyncio.to_thread(store.next_epoch)
        finally:
            store.close()
        await self.redis.set(channels.REPLAY_EPOCH_KEY, epoch)
        if epoch > 1:
            self.log.warning("bar sequence starts afresh: deployment epoch %d", epoch)
        return epoch

    async def _live(self) -> None:
        """Poll live candles through ccxt (``backend.marketdata.live_feed``) until stopped.

        Each closed candle is published with the next ``seq``; the feed's cursor (agent
        state) and ``market_data:cursor`` are written in the same transaction.  With
        ``replay_limit`` > 0 it stops after that many bars per symbol and reports the
        end like a finished replay.  An unreachable exchange degrades the agent and is
        retried with backoff (up to 30 s).
        """
        # here, not at the top: a replay does not load ccxt (70 MiB of the agent's RSS)
        from backend.marketdata.live_feed import CandleFeed, FeedCursor

        assert self.redis is not None and self.bus is not None
        s = self.settings
        cfg = s.venue.ccxt
        feed = CandleFeed(cfg, s.symbols, s.timeframe, cfg.history_bars)
        epoch = await self._epoch()
        seq0 = int(await self.redis.get(channels.REPLAY_CURSOR_KEY) or 0)
        cursor = FeedCursor.from_json(await self.load_state(), seq0)
        limit = s.replay_limit
        self.log.info("live candles of %s (%s) from %s, seq %d", ",".join(s.symbols),
                      s.timeframe, cfg.exchange, cursor.seq + 1)
        delay = cfg.poll_s
        try:
            while not self.stopping:
                if limit and all(cursor.emitted.get(x, 0) >= limit for x in s.symbols):
                    await self._finished(cursor.seq)
                    break
                try:
                    rows = await feed.poll(cursor)
                except VenueUnavailable as exc:
                    self.state = AgentState.DEGRADED
                    await self.report_error(f"live candles: {exc}; retrying in {delay:g}s")
                    await self.wait_stop(delay)
                    delay = min(delay * 2, 30.0)
                    continue
                if self.state is AgentState.DEGRADED:
                    self.state = AgentState.RUNNING
                delay = cfg.poll_s
                for symbol, row in rows:
                    if self.stopping or (limit and cursor.emitted.get(symbol, 0) >= limit):
                        continue
                    bar = feed.bar(symbol, row, cursor.seq + 1).model_copy(
                        update={"epoch": epoch})
                    nxt = FeedCursor.from_json(cursor.to_json())
                    nxt.advance(bar)
                    pipe = self.redis.pipeline(transaction=True)
                    self.emit(pipe, channels.MARKET_DATA, bar)
                    pipe.set(channels.REPLAY_CURSOR_KEY, bar.seq)
                    self.stage_state(pipe, nxt.to_json())
                    await pipe.execute()
                    cursor = nxt
                if not (limit and all(cursor.emitted.get(x, 0) >= limit for x in s.symbols)):
                    await self.wait_stop(cfg.poll_s)
        finally:
            await feed.close()
        await self._stop.wait()

    async def _finished(self, last_seq: int) -> None:
        """Report the end of a finite feed once (as a finished replay does)."""
        assert self.redis is not None and self.bus is not None
        if not await self.redis.exists(channels.REPLAY_DONE_KEY):
            await self.redis.set(channels.REPLAY_DONE_KEY, last_seq)
            done = ReplayFinished(source=self.agent_id, bars=last_seq, last_seq=last_seq)
            await self.bus.publish(channels.AGENT_BROADCAST, done)
        self.log.info("live feed finished: %d bars", last_seq)

    async def _publish_bar(self, bar: BarClosed, seq: int) -> bool:
        """Publish ``bar`` and move the cursor to ``seq`` in one transaction, riding out
        Redis outages; False if a stop came first.

        After a connection error the transaction may or may not have been applied; the
        cursor (written in it) tells which, so the bar is never published twice.
        """
        assert self.redis is not None
        delay = 0.1
        while not self.stopping:
            try:
                pipe = self.redis.pipeline(transaction=True)
                self.emit(pipe, channels.MARKET_DATA, bar)
                pipe.set(channels.REPLAY_CURSOR_KEY, seq)
                await pipe.execute()
                return True
            except REDIS_ERRORS as exc:
                self.state = AgentState.DEGRADED
                self.log.warning("redis error publishing bar %d (%s); retrying", seq, exc)
            while not self.stopping:
                await self.wait_stop(delay)
                delay = min(delay * 2, 2.0)
                try:
                    if int(await self.redis.get(channels.REPLAY_CURSOR_KEY) or 0) >= seq:
                        self.state = AgentState.RUNNING
                        return True  # applied before the connection dropped
                    break
                except REDIS_ERRORS:
                    continue
            self.state = AgentState.RUNNING
        return False

    async def _wait_quiescent(self, groups: dict[str, list[str]]) -> bool:
        """Poll until the order path is idle (Redis outages wait too); False if a stop
        came first."""
        assert self.redis is not None
        delay = 0.0002
        while not self.stopping:
            try:
                if await pipeline_caught_up(self.redis, groups):
                    return True
            except REDIS_ERRORS as exc:
                self.log.warning("redis unreachable while waiting for consumers (%s)", exc)
                await self.wait_stop(0.5)
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.001)
        return False
