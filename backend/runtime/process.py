"""Small process helpers shared by the processes the mesh starts."""

from __future__ import annotations

import signal
from collections.abc import Callable


def die_with_parent_preexec(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """Linux: a ``preexec_fn`` that has the kernel send ``sig`` to the child when the
    thread that started it dies (``prctl(PR_SET_PDEATHSIG)``); None where unavailable.

    Everything is resolved here, in the parent, so the child makes one foreign call between
    fork and exec (no imports, no locks).  Only use it from a long-lived (e.g. main)
    thread: the signal follows the starting *thread*, not the process.
    """
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:  # pragma: no cover - runs in the child
        prctl(1, int(sig))  # PR_SET_PDEATHSIG

    return preexec
