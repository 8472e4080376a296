"""Memoised indicators for scoring many parameter sets on the same bars (the optimizer).

A parameter set of ``sma_cross`` costs five :func:`backend.indicators.rolling_sum` calls,
most of them of the close with a window length another parameter set already asked for.
Inside ``with memoised(memo):`` the functions decorated with :func:`memoisable` return
the stored result of a call whose array arguments are arrays ``memo`` knows (the bars it
was built with, and every result it returned) and whose other arguments are equal; a
result is computed once, by the same function, so it is the same bits.  Results are
read-only (a strategy that wrote into an indicator's output would raise instead of
spoiling the next parameter set's).  Outside such a block nothing changes.

The active memo is a :class:`contextvars.ContextVar`: each thread (Dask's, say) sees its
own block.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import numpy as np

__all__ = ["IndicatorMemo", "memoisable", "memoised"]

F = TypeVar("F", bound=Callable[..., np.ndarray])
_ACTIVE: ContextVar[IndicatorMemo | None] = ContextVar("indicator_memo", default=None)


class IndicatorMemo:
    """Results of memoisable indicators over known arrays, least recently used out.

    Parameters
    ----------
    arrays : iterable of numpy.ndarray
        The bars' arrays (e.g. a window's ``close``, ``high``, ``low``); kept referenced,
        so their identity names them for the memo's life.
    max_items : int
        Results kept (each the size of one input array).
    """

    def __init__(self, arrays: Iterable[np.ndarray], max_items: int = 512) -> None:
        self._known: dict[int, np.ndarray] = {id(a): a for a in arrays}
        self._results: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.max_items = max_items
        self.hits = 0
        self.misses = 0

    def key(self, name: str, args: tuple[Any, ...]) -> Hashable | None:
        """The memo key of ``name(*args)``, or ``None`` when an argument is an unknown
        array or not hashable (then the call is not memoised)."""
        parts: list[Hashable] = [name]
        for a in args:
            if isinstance(a, np.ndarray):
                if self._known.get(id(a)) is not a:
                    return None
                parts.append(("array", id(a)))
            elif isinstance(a, bool | int | float | str) or a is None:
                parts.append((type(a).__name__, a))
            elif isinstance(a, np.integer | np.floating):
                parts.append((type(a).__name__, a.item()))
            else:
                return None
        return tuple(parts)

    def get(self, key: Hashable) -> np.ndarray | None:
        """The stored result of ``key`` (``None``: not computed yet)."""
        with self._lock:
            got = self._results.get(key)
            if got is not None:
                self._results.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
            return got

    def put(self, key: Hashable, result: np.ndarray) -> np.ndarray:
        """Store ``result`` (made read-only, and known as an input from now on)."""
        result.setflags(write=False)
        with self._lock:
            self._results[key] = result
            self._known[id(result)] = result
            while len(self._results) > self.max_items:
                _, old = self._results.popitem(last=False)
                if self._known.get(id(old)) is old:
                    del self._known[id(old)]
        return result


@contextmanager
def memoised(memo: IndicatorMemo) -> Iterator[IndicatorMemo]:
    """Use ``memo`` for the memoisable indicators called in this block (this thread)."""
    token = _ACTIVE.set(memo)
    try:
        yield memo
    finally:
        _ACTIVE.reset(token)


def memoisable(fn: F) -> F:
    """Decorate an indicator (arrays and scalars in, a new array out) so that it is
    memoised inside :func:`memoised`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> np.ndarray:
        memo = _ACTIVE.get()
        if memo is None or kwargs:
            return fn(*args, **kwargs)
        key = memo.key(fn.__qualname__, args)
        if key is None:
            return fn(*args)
        got = memo.get(key)
        if got is None:
            got = memo.put(key, fn(*args))
        return got

    return wrapper  # type: ignore[return-value]
