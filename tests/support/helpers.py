"""Test helpers: poll for a condition with a deadline instead of sleeping.

Import as ``from tests.support.helpers import eventually``
(``tests/conftest.py`` puts the repo root on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _fail(message: str, timeout: float, last: Any, error: BaseException | None) -> AssertionError:
    text = message or "condition not met"
    detail = f"{text} (within {timeout:g}s; last result {last!r}"
    if error is not None:
        detail += f"; last error {type(error).__name__}: {error}"
    return AssertionError(detail + ")")


def eventually(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "",
) -> T:
    """Call ``predicate`` until it returns something truthy; return that value.

    An exception raised by ``predicate`` counts as "not yet" (it is reported if the deadline
    passes).  Raises :class:`AssertionError` with ``message`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    error: BaseException | None = None
    while True:
        try:
            last = predicate()
            error = None
            if last:
                return last
        except Exception as exc:  # retried until the deadline
            error = exc
        if time.monotonic() >= deadline:
            raise _fail(message, timeout, last, error)
        time.sleep(interval)


async def aeventually(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "",
) -> T:
    """Async :func:`eventually`: ``predicate`` may be a plain or an async callable."""
    deadline = time.monotonic() + timeout
    last: Any = None
    error: BaseException | None = None
    while True:
        try:
            result = predicate()
            last = await result if inspect.isawaitable(result) else result
            error = None
            if last:
                return last
        except Exception as exc:  # retried until the deadline
            error = exc
        if time.monotonic() >= deadline:
            raise _fail(message, timeout, last, error)
        await asyncio.sleep(interval)


def need_redis_server() -> None:
    """Skip the calling test when ``redis-server`` is not on PATH (fail under ``CI``)."""
    import os
    import shutil

    import pytest

    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("CI=true but redis-server is not on PATH")
        pytest.skip("redis-server not on PATH (scripts/test.sh installs it)")


def run_drill_cli(var: Any, *args: str, timeout: float) -> tuple[dict, Any]:
    """Run ``tradingmesh drill ARGS --out <var>/drill/drill.json`` in a clean environment
    (its var dir ``var``); the JSON report and the finished process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import orjson

    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "TRADINGMESH_"))}
    env["TRADINGMESH_VAR_DIR"] = str(var)
    out = Path(var) / "drill" / "drill.json"
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "drill", *args, "--out", str(out)],
        cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True,
        timeout=timeout)
    assert out.exists(), proc.stdout[-4000:] + proc.stderr[-4000:]
    return orjson.loads(out.read_bytes()), proc
