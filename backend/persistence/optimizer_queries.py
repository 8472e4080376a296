"""GA optimizer runs: a run's start, its generations' statistics, its outcome; their reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from backend.messages import OptimizerFinished, OptimizerProgressed, now_ns
from backend.persistence.base import StoreBase, dialect_insert
from backend.persistence.schema import optimizer_generations, optimizer_runs


class OptimizerQueries(StoreBase):
    """:class:`~backend.persistence.Store` queries of the ``optimizer_runs`` and
    ``optimizer_generations`` tables."""

    def record_optimizer_run(
        self, run_id: str, strategy: str, objective: str, config: dict[str, Any],
        symbols: Sequence[str], data_start: int | None = None, data_end: int | None = None,
        *, started_ts: int | None = None,
    ) -> bool:
        """Insert a run as ``running``; ``False`` if ``run_id`` is already stored.

        ``config`` is the run's configuration (JSON object); ``data_start``/``data_end``
        the data's first bar and end (ns UTC); ``started_ts`` ns, default now.
        """
        return self._insert_ignore(optimizer_runs, {
            "id": run_id, "strategy": strategy, "objective": objective, "config": config,
            "symbols": list(symbols), "data_start": data_start, "data_end": data_end,
            "started_ts": now_ns() if started_ts is None else started_ts,
            "status": "running",
        })

    def record_optimizer_progress(self, msg: OptimizerProgressed) -> bool:
        """Insert one generation's statistics; ``False`` if (run, fold, generation) is stored."""
        return self._insert_ignore(optimizer_generations, {
            "run_id": msg.run_id, "fold": msg.fold, "generation": msg.generation,
            "best": msg.best, "mean": msg.mean, "std": msg.std,
            "evaluations": msg.evaluations, "best_params": dict(msg.best_params), "ts": msg.ts,
        })

    def finish_optimizer_run(self, msg: OptimizerFinished) -> bool:
        """Store a run's outcome (status, best parameters, scores, folds).

        Only a ``running`` run changes, so a redelivered result is a no-op (``False``);
        a run never recorded is inserted with an empty config.
        """
        values: dict[str, Any] = {
            "status": msg.status, "finished_ts": msg.finished_ns or msg.ts,
            "best_params": dict(msg.best_params), "in_sample": msg.in_sample,
            "out_of_sample": msg.out_of_sample, "mean_in_sample": msg.mean_in_sample,
            "mean_out_of_sample": msg.mean_out_of_sample, "overfit": msg.overfit,
            "folds": [f.model_dump(mode="json") for f in msg.folds],
            "evaluations": msg.evaluations, "error": msg.error,
        }
        with self._write() as conn:
            stmt = optimizer_runs.update().where(
                optimizer_runs.c.id == msg.run_id, optimizer_runs.c.status == "running")
            if conn.execute(stmt.values(**values)).rowcount == 1:
                return True
            row = {"id": msg.run_id, "strategy": msg.strategy, "objective": msg.objective,
                   "config": {}, "symbols": list(msg.symbols),
                   "started_ts": msg.started_ns or msg.ts, **values}
            ins = dialect_insert(conn, optimizer_runs).values(**row).on_conflict_do_nothing()
            return conn.execute(ins).rowcount == 1

    def optimizer_runs(
        self, strategy: str | None = None, limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Runs by start time (oldest first), optionally of one strategy; ``limit``
        keeps the last N."""
        t = optimizer_runs
        stmt = sa.select(t)
        if strategy is not None:
            stmt = stmt.where(t.c.strategy == strategy)
        order = [t.c.started_ts, t.c.id]
        if limit is None:
            stmt = stmt.order_by(*order)
        else:
            stmt = stmt.order_by(*[c.desc() for c in order]).limit(limit)
        with self._read() as conn:
            out = [dict(r._mapping) for r in conn.execute(stmt)]
        return out if limit is None else out[::-1]

    def optimizer_run(self, run_id: str) -> dict[str, Any] | None:
        """One run with its ``generations`` (by fold, generation), or ``None``."""
        t, g = optimizer_runs, optimizer_generations
        with self._read() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == run_id)).first()
            if row is None:
                return None
            gens = conn.execute(sa.select(g).where(g.c.run_id == run_id)
                                .order_by(g.c.fold, g.c.generation))
            return {**dict(row._mapping), "generations": [dict(r._mapping) for r in gens]}
