"""backend.redisctl.server without a redis-server binary: free ports and the embedded fallback."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest
import redis
import redis.asyncio

from backend.redisctl import server as redisproc
from backend.redisctl.server import (
    EmbeddedRedis,
    RedisServer,
    RedisStartError,
    ensure_redis,
    free_port,
)


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))


def test_free_ports_differ() -> None:
    assert len({free_port() for _ in range(5)}) > 1


@pytest.fixture
def embedded() -> EmbeddedRedis:
    server = EmbeddedRedis(warn=False)
    yield server
    server.stop()


def test_embedded_answers_ping(embedded: EmbeddedRedis) -> None:
    assert embedded.url == f"redis://127.0.0.1:{embedded.port}/0"
    with redis.Redis.from_url(embedded.url) as client:
        assert client.ping() is True
        client.set("k", "v")
        assert client.get("k") == b"v"


def test_embedded_streams_and_consumer_groups(embedded: EmbeddedRedis) -> None:
    with redis.Redis.from_url(embedded.url, decode_responses=True) as client:
        try:
            client.xgroup_create("orders", "execution", id="0", mkstream=True)
        except redis.ResponseError as exc:  # pragma: no cover - depends on fakeredis
            pytest.skip(f"this fakeredis has no consumer groups: {exc}")
        first = client.xadd("orders", {"payload": "{}"})
        client.xadd("orders", {"payload": "[]"})
        got = client.xreadgroup("execution", "c1", {"orders": ">"}, count=1)
        assert got[0][1][0][0] == first
        assert client.xack("orders", "execution", first) == 1
        pending = client.xpending("orders", "execution")
        assert pending["pending"] == 0
        rest = client.xreadgroup("execution", "c1", {"orders": ">"}, count=10)
        assert [entry[1] for entry in rest[0][1]] == [{"payload": "[]"}]


def test_embedded_async_blocking_read(embedded: EmbeddedRedis) -> None:
    """A consumer loop blocked in XREADGROUP gets an entry added by another connection.

    fakeredis may wake the blocked read with an empty reply and hand the entry to the next
    read; consumer loops read again anyway, so the loop below is what agents do.
    """

    async def scenario() -> list:
        reader = redis.asyncio.Redis.from_url(embedded.url)
        writer = redis.asyncio.Redis.from_url(embedded.url)
        try:
            await reader.xgroup_create("signals", "g", id="$", mkstream=True)

            async def consume() -> list:
                while True:
                    got = await reader.xreadgroup("g", "c", {"signals": ">"}, count=1, block=2000)
                    if got:
                        return got

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.1)
            await writer.xadd("signals", {"a": "1"})
            return await asyncio.wait_for(task, 5)
        finally:
            await reader.aclose()
            await writer.aclose()

    got = asyncio.run(scenario())
    assert got[0][1][0][1] == {b"a": b"1"}


def test_embedded_stop_frees_port() -> None:
    server = EmbeddedRedis(warn=False)
    port = server.port
    server.stop()
    assert not server.running
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_embedded_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="backend.redisctl.server"), EmbeddedRedis() as srv:
        assert srv.running
    assert "EMBEDDED" in caplog.text and "NOT for production" in caplog.text


def test_ensure_redis_prefers_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example:6390/2")
    assert ensure_redis(tmp_path) == ("redis://example:6390/2", None)


def test_ensure_redis_falls_back_to_embedded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("TRADINGMESH_REDIS_URL", raising=False)
    monkeypatch.setattr(redisproc.shutil, "which", lambda name: None)
    with caplog.at_level(logging.WARNING, logger="backend.redisctl.server"):
        url, handle = ensure_redis(tmp_path)
    try:
        assert isinstance(handle, EmbeddedRedis)
        assert url == handle.url
        assert "EMBEDDED" in caplog.text
        with redis.Redis.from_url(url) as client:
            assert client.ping()
    finally:
        handle.stop()


def test_redis_server_without_binary_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(redisproc.shutil, "which", lambda name: None)
    with pytest.raises(RedisStartError, match="redis-server not found"):
        RedisServer(tmp_path).start()


def test_url_carries_password(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, 6399, password="p@ss/word")
    assert server.url == "redis://:p%40ss%2Fword@127.0.0.1:6399/0"
    assert server.pid is None and not server.running
    assert "--requirepass" in server.command() if server.binary else True
