"""market_data agent with ``market_data_source = "ccxt"``: live candles from the loopback
fake Binance onto ``market_data`` (real redis-server, real agent process, kill -9)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import redis
from fakes.binance import FakeBinance

from backend import channels
from backend.messages import BarClosed, decode
from tests.support.agentproc import agent_env, make_settings, running, start_agent, stop
from tests.support.helpers import eventually

pytestmark = pytest.mark.integration
SYMBOLS = ["ETH/BTC", "LTC/BTC", "ADA/BTC"]
LIMIT = 40


def _bars(r: redis.Redis) -> list[BarClosed]:
    out = []
    for _, fields in r.xrange(channels.MARKET_DATA):
        msg = decode(fields[b"data"])
        assert isinstance(msg, BarClosed)
        out.append(msg)
    return out


def test_live_feed_survives_kill_9_without_gaps_or_duplicates(
    redis_url: str, tmp_path: Path
) -> None:
    with FakeBinance(symbols=SYMBOLS, start_bar=50, bars_per_s=25) as fake:
        settings = make_settings(
            tmp_path, redis_url, symbols=SYMBOLS, market_data_source="ccxt",
            replay_limit=LIMIT,
            venue={"ccxt": {"urls": fake.ccxt_urls(), "rate_limit_ms": 1, "poll_s": 0.05,
                            "api_key_env": "", "secret_env": "", "password_env": ""}},
        )
        r = redis.Redis.from_url(redis_url)
        env = agent_env(settings, tmp_path)
        proc = start_agent("market_data", env, tmp_path)
        try:
            eventually(lambda: int(r.get(channels.REPLAY_CURSOR_KEY) or 0) >= 12, 30,
                       message="first live bars")
            proc.kill()  # kill -9 mid-feed
            assert proc.wait(10) != 0
            proc = start_agent("market_data", env, tmp_path)
            eventually(lambda: r.exists(channels.REPLAY_DONE_KEY), 60,
                       message="feed reached its limit")
            eventually(lambda: running(r, "market_data"), 20,
                       message="market_data still running after its limit")
        finally:
            stop(proc)
        bars = _bars(r)
        clock = fake.book.clock_ms()
    assert len(bars) == LIMIT * len(SYMBOLS)
    assert [b.seq for b in bars] == list(range(1, len(bars) + 1))
    keys = [(b.symbol, b.open_time) for b in bars]
    assert len(set(keys)) == len(keys)
    for sym in SYMBOLS:
        times = [b.open_time for b in bars if b.symbol == sym]
        assert len(times) == LIMIT and times == sorted(times)
    assert all(b.open_time // 1_000_000 + 300_000 <= clock for b in bars)  # closed ones
    state = orjson.loads(r.get(channels.state_key("market_data")))
    assert state["seq"] == len(bars) and state["emitted"] == dict.fromkeys(SYMBOLS, LIMIT)
    assert int(r.get(channels.REPLAY_DONE_KEY)) == len(bars)
