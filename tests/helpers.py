"""Test helpers: poll for a condition with a deadline instead of sleeping.

Import as ``from helpers import eventually`` or ``from tests.helpers import eventually``
(``tests/conftest.py`` puts both ``tests/`` and the repo root on ``sys.path``).
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
