"""An external Redis that may evict keys is refused at start (issue 15), on a real
redis-server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from backend.redisctl.checks import eviction_problem, maxmemory_policy
from backend.settings import Settings
from orchestrator.mesh import MeshError, start_mesh


@pytest.fixture
def evicting(redis_url: str):  # noqa: ANN201
    with redis.Redis.from_url(redis_url) as c:
        c.config_set("maxmemory-policy", "allkeys-lru")
    yield redis_url
    with redis.Redis.from_url(redis_url) as c:
        c.config_set("maxmemory-policy", "noeviction")


def test_the_policy_is_read_and_judged(evicting: str) -> None:
    async def go() -> tuple[str | None, str]:
        r = aioredis.Redis.from_url(evicting)
        try:
            return await maxmemory_policy(r), await eviction_problem(r, "here")
        finally:
            await r.aclose()

    policy, problem = asyncio.run(go())
    assert policy == "allkeys-lru"
    assert "maxmemory-policy 'allkeys-lru'" in problem and "noeviction" in problem


def test_start_refuses_an_evicting_external_redis(evicting: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", evicting)
    s = Settings(var_dir=tmp_path, symbols=["ETH/BTC"])
    with pytest.raises(MeshError, match="allkeys-lru"):
        asyncio.run(start_mesh(s, tmp_path / "run", fresh=True))
    with redis.Redis.from_url(evicting) as c:
        assert c.dbsize() == 0  # nothing was written before the refusal


def test_a_safe_external_redis_passes_the_check(redis_url: str) -> None:
    async def go() -> str:
        r = aioredis.Redis.from_url(redis_url)
        try:
            return await eviction_problem(r, "here")
        finally:
            await r.aclose()

    assert asyncio.run(go()) == ""
