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

Armed-only points of the execution agent's reconciliation (``reconcile_adopted``: orders
looked up and adopted, nothing written; ``reconcile_fills``: missed fills recorded in the
database; ``reconcile_statuses``: statuses corrected; ``reconcile_before_commit``: every
database write done, the Redis transaction not executed) let a drill kill it inside
reconciliation again and again.

Armed crashes (fault drills): :func:`crash_if_armed` makes a process exit with
:data:`ARMED_EXIT_CODE` *every* time it reaches the point while the file
``<TRADINGMESH_FAILPOINT_DIR>/<agent id>.<point>.armed`` exists (:func:`arm`,
:func:`disarm`; a file holding a number counts the crashes down), e.g. an agent that
crashes at start in a loop (point ``start``).  Unset
``TRADINGMESH_FAILPOINT_DIR`` disables them.

Database refusal (the ``db-errors`` drill): while the file
``<TRADINGMESH_FAILPOINT_DIR>/db.refuse_writes`` exists, every database write of every
process started with that directory fails like a locked database
(:func:`db_writes_refused`, checked by :class:`backend.persistence.Store`).
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


#: Exit code of a process stopped by an armed failpoint.
ARMED_EXIT_CODE = 70
FAILPOINT_DIR_ENV = "TRADINGMESH_FAILPOINT_DIR"


def armed_path(directory: Path | str, agent_id: str, point: str) -> Path:
    """The file whose existence arms ``point`` for ``agent_id`` (``:`` in ids kept)."""
    return Path(directory) / f"{agent_id}.{point}.armed"


def arm(directory: Path | str, agent_id: str, point: str, times: int | None = None) -> Path:
    """Arm ``<agent_id>:<point>`` for :func:`crash_if_armed` (every time it is reached,
    or only the next ``times`` times); returns the marker file."""
    p = armed_path(directory, agent_id, point)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("armed\n" if times is None else f"{int(times)}\n")
    return p


def disarm(directory: Path | str, agent_id: str, point: str) -> None:
    """Disarm ``<agent_id>:<point>`` (no error if it was not armed)."""
    armed_path(directory, agent_id, point).unlink(missing_ok=True)


def crash_if_armed(agent_id: str, point: str) -> None:
    """Exit at once with :data:`ARMED_EXIT_CODE` while ``<agent_id>:<point>`` is armed.

    Only when ``TRADINGMESH_FAILPOINT_DIR`` is set (one environment lookup otherwise).
    """
    directory = os.environ.get(FAILPOINT_DIR_ENV)
    if not directory:
        return
    path = armed_path(directory, agent_id, point)
    try:
        text = path.read_text().strip()
    except OSError:
        return
    if text.isdigit():  # armed for a number of crashes: count this one down
        left = int(text)
        if left <= 0:
            path.unlink(missing_ok=True)
            return
        path.write_text(f"{left - 1}\n")
    os.write(2, f"failpoint {agent_id}:{point} is armed: crashing\n".encode())
    os._exit(ARMED_EXIT_CODE)


#: File whose presence makes every database write fail (see the module docstring).
DB_REFUSE_FILE = "db.refuse_writes"
_FP_DIR = os.environ.get(FAILPOINT_DIR_ENV, "")


def db_writes_refused() -> bool:
    """True while the drill refuses database writes (never when the failpoint directory
    is not set: then it costs one string test)."""
    return bool(_FP_DIR) and (Path(_FP_DIR) / DB_REFUSE_FILE).exists()
