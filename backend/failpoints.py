"""Failpoints: named places where a test or a fault drill can crash a process on purpose.

``TRADINGMESH_FAILPOINTS`` holds comma-separated ``<agent id>:<point>[@<stream>]``
entries, e.g. ``execution:before_ack@orders`` (only while handling an ``orders``
entry).  When an agent reaches that point it SIGKILLs itself, once: a marker file
``<TRADINGMESH_FAILPOINT_DIR>/<agent id>.<point>.fired`` keeps the restarted process
from dying again.
Unset in production; then it costs one set lookup.

Points:

* ``before_ack`` (every agent): outputs computed and database written, the Redis
  transaction with the outputs and the XACK not yet executed;
* ``after_submit`` (execution, stream ``orders``): the venue accepted the order
  (``venue.submit`` returned), nothing recorded yet but the intent, nothing acknowledged;
* ``poll_before_commit`` (execution, live venues): a poll's fills persisted to the
  database, its events and the venue ledger not yet saved in Redis.
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
