"""Shared fixtures.

* ``redis_server`` (session): a private ``redis-server`` in a temp dir.  Skipped when the
  binary is missing, except under CI (``CI=true``), where that is an error.
* ``redis_url`` (function): that server's URL, FLUSHALLed before the test.
* ``fake_redis`` (function): a ``fakeredis.aioredis.FakeRedis`` on its own fake server.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import fakeredis.aioredis
import pytest
import redis

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
for _p in (str(TESTS), str(ROOT)):  # `import tests.support.helpers`, `import fakes`
    if _p not in sys.path:
        sys.path.insert(0, _p)

from backend.redisctl.server import RedisServer  # noqa: E402


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on 127.0.0.1 and a free port, for the whole session."""
    if shutil.which("redis-server") is None:
        reason = (
            "redis-server is not on PATH: integration tests need it "
            "(`apt-get install redis-server`, or run scripts/test.sh, which installs it)"
        )
        if _under_ci():
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    server = RedisServer(tmp_path_factory.mktemp("redis"), die_with_parent=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's redis-server, emptied (FLUSHALL) before each test."""
    if not redis_server.running:  # a test stopped or killed it (fault drill): bring it back
        redis_server.start()
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def fake_redis() -> fakeredis.aioredis.FakeRedis:
    """An async fakeredis client with a private in-memory server (unit tests)."""
    return fakeredis.aioredis.FakeRedis(server=fakeredis.FakeServer())


def pytest_configure(config: pytest.Config) -> None:
    # tests/unit/test_x.py and tests/integration/test_x.py share basenames and the test dirs
    # have no __init__.py: the default "prepend" import mode would refuse the second one.
    # importlib mode names modules by path.  (Better: `addopts = "--import-mode=importlib"`
    # in pyproject's [tool.pytest.ini_options]; then this hook is a no-op.)
    if config.option.importmode == "prepend":
        config.option.importmode = "importlib"
