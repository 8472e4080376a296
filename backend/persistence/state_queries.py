"""Small durable key -> JSON values of the mesh (``mesh_state``): halt latches, the epoch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from backend.messages import now_ns
from backend.persistence.base import StoreBase, dialect_insert
from backend.persistence.schema import mesh_state

#: ``mesh_state`` key of the deployment epoch (:meth:`Store.next_epoch`).
EPOCH_STATE = "deployment_epoch"


class StateQueries(StoreBase):
    """:class:`~backend.persistence.Store` queries of the ``mesh_state`` table."""

    def put_state(self, key: str, value: dict[str, Any]) -> None:
        """Insert or replace the durable value ``key`` (JSON object)."""
        self.swap_states({key: value})

    def put_state_if_absent(self, key: str, value: dict[str, Any]) -> dict[str, Any]:
        """Store ``value`` under ``key`` unless a value is there; the value in force."""
        with self._write() as conn:
            stmt = dialect_insert(conn, mesh_state).values(key=key, value=value,
                                                           updated_ts=now_ns())
            conn.execute(stmt.on_conflict_do_nothing())
            row = conn.execute(sa.select(mesh_state.c.value).where(mesh_state.c.key == key))
            return dict(row.scalar_one())

    def swap_states(self, put: dict[str, dict[str, Any]],
                    delete: Sequence[str] = ()) -> None:
        """Write ``put`` and remove ``delete`` in one transaction (e.g. a halt reset:
        the latch goes, the reset record comes, never one without the other)."""
        with self._write() as conn:
            for key in delete:
                conn.execute(mesh_state.delete().where(mesh_state.c.key == key))
            for key, value in put.items():
                stmt = dialect_insert(conn, mesh_state).values(key=key, value=value,
                                                               updated_ts=now_ns())
                conn.execute(stmt.on_conflict_do_update(
                    index_elements=["key"],
                    set_={"value": stmt.excluded.value, "updated_ts": stmt.excluded.updated_ts},
                ))

    def delete_state(self, key: str) -> bool:
        """Remove ``key``; ``False`` if it was not there."""
        with self._write() as conn:
            return conn.execute(mesh_state.delete().where(mesh_state.c.key == key)).rowcount > 0

    def next_epoch(self) -> int:
        """Take the next deployment epoch (1 for a new database), atomically: a bar
        sequence that starts afresh gets a number no earlier sequence of this database
        had (``BarClosed.epoch``)."""
        with self._write() as conn:
            row = conn.execute(sa.select(mesh_state.c.value).where(
                mesh_state.c.key == EPOCH_STATE)).first()
            epoch = int(dict(row[0]).get("epoch", 0)) + 1 if row else 1
            stmt = dialect_insert(conn, mesh_state).values(
                key=EPOCH_STATE, value={"epoch": epoch}, updated_ts=now_ns())
            conn.execute(stmt.on_conflict_do_update(
                index_elements=[mesh_state.c.key],
                set_={"value": {"epoch": epoch}, "updated_ts": now_ns()}))
        return epoch

    def states(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Every durable value whose key starts with ``prefix`` (key -> value)."""
        stmt = sa.select(mesh_state.c.key, mesh_state.c.value).where(
            mesh_state.c.key.startswith(prefix, autoescape=True))
        with self._read() as conn:
            return {k: dict(v) for k, v in conn.execute(stmt)}

    def get_state(self, key: str) -> dict[str, Any] | None:
        """The durable value of ``key`` or ``None``."""
        with self._read() as conn:
            row = conn.execute(
                sa.select(mesh_state.c.value).where(mesh_state.c.key == key)).first()
        return None if row is None else dict(row[0])
