"""The portfolio: each symbol's position and the equity mark of every bar."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from backend.messages import PortfolioMarked, PositionChanged
from backend.persistence.base import StoreBase, dialect_insert
from backend.persistence.schema import equity, positions


class PortfolioQueries(StoreBase):
    """:class:`~backend.persistence.Store` queries of the ``positions`` and ``equity``
    tables."""

    def upsert_position(self, msg: PositionChanged) -> bool:
        """Insert or replace a symbol's position, unless the stored one is newer.

        Returns ``True`` if the row was written, ``False`` for a stale update.
        """
        row = {"symbol": msg.symbol, "quantity": msg.quantity, "avg_price": msg.avg_price,
               "realized_pnl": msg.realized_pnl, "updated_ts": msg.ts}
        with self._write() as conn:
            ins = dialect_insert(conn, positions).values(**row)
            stmt = ins.on_conflict_do_update(
                index_elements=[positions.c.symbol],
                set_={k: ins.excluded[k] for k in row if k != "symbol"},
                where=positions.c.updated_ts <= ins.excluded.updated_ts,
            )
            return conn.execute(stmt).rowcount == 1

    def record_equity_many(self, marks: Sequence[PortfolioMarked], chunk: int = 500) -> int:
        """Insert equity marks in batches, ignoring bar seqs already stored.

        Returns the number of new rows.
        """
        rows = [{"bar_seq": m.bar_seq, "bar_time": m.bar_time, "cash": m.cash,
                 "equity": m.equity, "exposure": m.exposure,
                 "positions": {k: v.model_dump() for k, v in m.positions.items()}}
                for m in marks]
        n = 0
        for i in range(0, len(rows), chunk):
            with self._write() as conn:
                # executemany of one cached statement: a multi-row VALUES built per call
                # was compiled anew every time (12% of the execution agent's CPU)
                stmt = dialect_insert(conn, equity).on_conflict_do_nothing()
                res = conn.execute(stmt, rows[i:i + chunk])
                n += max(res.rowcount, 0)
        return n

    def positions(self) -> list[dict[str, Any]]:
        """Current position per symbol (signed quantity, base units)."""
        return self._select(positions)

    def equity_curve(self) -> pd.DataFrame:
        """Equity marks by bar seq.

        Columns ``bar_seq, bar_time, cash, equity, exposure, positions`` (the last a
        dict ``symbol -> {quantity, avg_price, mark}`` of the open positions).
        """
        return pd.DataFrame(self._select(equity), columns=[c.name for c in equity.columns])
