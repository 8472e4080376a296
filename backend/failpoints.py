"""Failpoints: named places where a test or a fault drill can crash a process on purpose.

``TRADINGMESH_FAILPOINTS`` holds comma-separated ``<agent id>:<point>[@<stream>]``
entries, e.g. ``execution:before_ack@orders`` (only while handling an ``orders``
entry).  When an agent reaches that point it SIGKILLs itself, once: a marker file
``<TRADINGMESH_FAILPOINT_DIR>/<agent id>.<point>.fired`` keeps the restarted process
from dying again.
Unset in production; then it costs one set lookup.

Points: ``before_ack`` (outputs computed and database written, Redis transaction with
the outputs and the XACK not yet executed).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

_ACTIVE = {
    p.strip() for p in os.environ.get("TRADINGMESH_FAILPOINTS", "").split(",") if p.strip()
}


def hit(agent_id: str, point: str, stream: str = "") -> None:
    """SIGKILL this process if ``<agent_id>:<point>[@stream]`` is armed and not yet fired."""
    if not _ACTIVE:
        return
    if f"{agent_id}:{point}" not in _ACTIVE and f"{agent_id}:{point}@{stream}" not in _ACTIVE:
        return
    marker = Path(os.environ.get("TRADINGMESH_FAILPOINT_DIR", ".")) / f"{agent_id}.{point}.fired"
    if marker.exists():
        return
    marker.write_text(str(os.getpid()))
    os.kill(os.getpid(), signal.SIGKILL)
