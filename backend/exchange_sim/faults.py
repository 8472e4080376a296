"""The simulator's fault model: what can go wrong with a request, and when.

A :class:`Fault` matches requests by ``method`` and ``path`` (either may be ``"*"``: any)
and is either **counted** -- used by the next ``count`` matching requests, then gone -- or
**random** -- used by each matching request with probability ``rate`` (drawn from one
``random.Random(seed)`` per simulator) until cleared.  At most one fault acts on a request:
the first armed one that matches (and, for a random one, whose draw hits).

=========  ===============================================================================
kind       effect
=========  ===============================================================================
late       hold the request ``delay_s`` s *before* applying it (the client times out; the
           request lands afterwards, still subject to ``recvWindow``), then apply, answer
stall      apply, then hold the answer ``delay_s`` s
500 502    answer that HTTP status, apply nothing
503
429        HTTP 429, ``{"code": -1003, ...}``, header ``Retry-After: 1``; apply nothing
drop       close the connection without an answer: before applying (``apply=False``) or
           after (``apply=True``)
expire     a MARKET order creation fills only ``fill_ratio`` of its quantity (truncated to
           the lot step; nothing below ``minQty``); the rest expires (``EXPIRED``).  Only
           matches ``POST /api/v3/order`` with ``type=MARKET``
=========  ===============================================================================
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

KINDS = ("late", "stall", "500", "502", "503", "429", "drop", "expire")
ANY = "*"
ORDER_PATH = "/api/v3/order"


@dataclass
class Fault:
    """One armed fault (see the module docstring).

    ``delay_s`` is in seconds (``late``, ``stall``); ``count`` the uses left (``None`` for
    a random fault); ``rate`` the probability per matching request (``None`` for a counted
    one); ``fill_ratio`` the part of a MARKET order that fills (``expire``); ``hits`` how
    many requests it has acted on; ``fault_id`` its number in this simulator.
    """

    kind: str
    method: str = "POST"
    path: str = ORDER_PATH
    apply: bool = True
    delay_s: float = 2.0
    count: int | None = 1
    rate: float | None = None
    fill_ratio: float = 0.5
    fault_id: int = 0
    hits: int = 0

    @property
    def stall_s(self) -> float:
        """Alias of :attr:`delay_s` (the name of the original ``inject`` argument)."""
        return self.delay_s

    def matches(self, method: str, path: str, params: Mapping[str, str]) -> bool:
        """Whether this fault can act on ``method path`` with ``params``."""
        if self.method not in (ANY, method) or self.path not in (ANY, path):
            return False
        if self.kind == "expire":
            return method == "POST" and path == ORDER_PATH and params.get("type") == "MARKET"
        return True

    def to_json(self) -> dict[str, Any]:
        """The fault as JSON (the admin API's shape)."""
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Fault:
        """A fault from :meth:`to_json` output."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def make_fault(
    kind: str, method: str = "POST", path: str = ORDER_PATH, *, apply: bool = True,
    delay_s: float = 2.0, count: int | None = None, rate: float | None = None,
    fill_ratio: float = 0.5,
) -> Fault:
    """A validated :class:`Fault`.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    method, path : str
        Request to match (``"*"``: any), e.g. ``"POST"``, ``"/api/v3/order"``.
    apply : bool
        ``drop`` only: apply the request before dropping the connection.
    delay_s : float
        Seconds to hold (``late``, ``stall``), >= 0.
    count : int, optional
        Requests it acts on before it is gone (default 1 when ``rate`` is not given).
    rate : float, optional
        Probability 0..1 per matching request, until cleared (instead of ``count``).
    fill_ratio : float
        ``expire`` only: the part of the order that fills, 0..1.

    Raises
    ------
    ValueError
        An unknown kind, a bad method/path, both ``count`` and ``rate``, or a value out of
        range.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown fault {kind!r} (one of {', '.join(KINDS)})")
    method = method.upper()
    if method != ANY and not method.isalpha():
        raise ValueError(f"bad method {method!r}")
    if path != ANY and not path.startswith("/"):
        raise ValueError(f"path must start with '/' or be '*', not {path!r}")
    if count is not None and rate is not None:
        raise ValueError("give count or rate, not both")
    if rate is not None and not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be within 0..1, not {rate}")
    if count is not None and count < 1:
        raise ValueError(f"count must be >= 1, not {count}")
    if delay_s < 0 or not 0.0 <= fill_ratio <= 1.0:
        raise ValueError("delay_s must be >= 0 and fill_ratio within 0..1")
    return Fault(kind, method, path, bool(apply), float(delay_s),
                 None if rate is not None else (count or 1),
                 None if rate is None else float(rate), float(fill_ratio))


class FaultSet:
    """The armed faults of one simulator.

    Parameters
    ----------
    lock : threading.RLock
        The simulator's one lock (shared with its book).
    seed : int
        Seed of the ``random.Random`` that random faults draw from.
    """

    def __init__(self, lock: threading.RLock, seed: int = 0) -> None:
        self._lock = lock
        self._rng = random.Random(seed)
        self._faults: list[Fault] = []
        self._next_id = 0

    def arm(self, fault: Fault) -> Fault:
        """Add ``fault`` (after the ones already armed); returns it with its id."""
        with self._lock:
            self._next_id += 1
            fault.fault_id = self._next_id
            self._faults.append(fault)
            return fault

    def clear(self) -> int:
        """Disarm every fault; returns how many were armed."""
        with self._lock:
            n = len(self._faults)
            self._faults.clear()
            return n

    def armed(self) -> list[Fault]:
        """The armed faults, in arming order."""
        with self._lock:
            return list(self._faults)

    def take(self, method: str, path: str, params: Mapping[str, str]) -> Fault | None:
        """The fault that acts on this request, if any (a counted one is used up by it)."""
        with self._lock:
            for i, f in enumerate(self._faults):
                if not f.matches(method, path, params):
                    continue
                if f.rate is not None:
                    if self._rng.random() >= f.rate:
                        continue
                else:
                    assert f.count is not None
                    f.count -= 1
                    if f.count <= 0:
                        del self._faults[i]
                f.hits += 1
                return f
            return None
