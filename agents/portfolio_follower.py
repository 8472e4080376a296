"""Mixin for agents that decide on signals against the execution agent's portfolio.

Compliance and risk read ``trading_events`` through their own consumer group and keep
the last :class:`PortfolioMarked`.  Before deciding on a signal computed at bar ``seq``
they *catch up* until they hold the portfolio as of that bar, so a decision never
depends on which process happened to run first: the same data gives the same decisions
in every run and in the backtester.
"""

from __future__ import annotations

import time

import orjson
from pydantic import BaseModel
from redis.asyncio.client import Pipeline

from agents.base import Agent
from backend import channels
from backend.messages import PortfolioMarked
from backend.risk.rules import PortfolioView, PositionView


class PortfolioFollower(Agent):
    """Adds ``self.mark`` (last PortfolioMarked), :meth:`catch_up` and durable rule state.

    ``self.rules`` is the subclass's rule state (a pydantic model); it is saved with the
    last mark in ``agent:state:<id>`` inside the transaction of the input that changed it,
    and adopted in memory only once that transaction executed.
    """

    mark: PortfolioMarked | None = None
    rules: BaseModel
    _pending_state: BaseModel | None = None

    async def restore(self, default: BaseModel) -> None:
        """Load rule state and last mark saved by a previous run (``default`` if none)."""
        self.rules = default
        blob = await self.load_state()
        if blob:
            data = orjson.loads(blob)
            self.rules = type(default).model_validate(data["state"])
            if data.get("mark"):
                self.mark = PortfolioMarked.model_validate(data["mark"])

    def stage_rule_state(self, pipe: Pipeline, state: BaseModel | None = None) -> None:
        """Save ``state`` (default: the current one) and the last mark in this transaction."""
        self._pending_state = state if state is not None else self.rules
        self.stage_state(pipe, orjson.dumps({
            "state": self._pending_state.model_dump(mode="json"),
            "mark": self.mark.model_dump(mode="json") if self.mark else None,
        }))

    def after_commit(self) -> None:
        """Adopt the rule state the committed transaction saved."""
        if self._pending_state is not None:
            self.rules, self._pending_state = self._pending_state, None

    def stream_priority(self, stream: str) -> int:
        """Portfolio events are handled before signals in the same batch."""
        return 0 if stream == channels.TRADING_EVENTS else 1

    async def catch_up(self, bar_seq: int) -> bool:
        """Consume ``trading_events`` until the portfolio of bar ``bar_seq`` is known.

        Waits forever when ``risk.portfolio_wait_s == 0`` (deterministic replay), else
        at most that many seconds.  Returns False if it gave up (stale portfolio).
        """
        assert self.bus is not None
        wait = self.settings.risk.portfolio_wait_s
        deadline = time.monotonic() + wait if wait > 0 else None
        while self.mark is None or self.mark.bar_seq < bar_seq:
            if self.stopping or (deadline is not None and time.monotonic() > deadline):
                return False
            batch = await self.bus.read([channels.TRADING_EVENTS], self.agent_id, block_ms=200)
            for delivery in batch:
                await self.dispatch(delivery)
        return True

    def portfolio_view(self) -> PortfolioView:
        """The last mark as the pure rules' :class:`PortfolioView` (empty if none yet)."""
        m = self.mark
        if m is None:
            cash = self.settings.paper.initial_cash
            return PortfolioView(
                bar_seq=0, bar_time=0, cash=cash, equity=cash, positions={},
                traded_notional_today=0.0, day=0, day_start_equity=cash,
            )
        return PortfolioView(
            bar_seq=m.bar_seq,
            bar_time=m.bar_time,
            cash=m.cash,
            equity=m.equity,
            positions={
                sym: PositionView(quantity=p.quantity, avg_price=p.avg_price, mark=p.mark)
                for sym, p in m.positions.items()
            },
            traded_notional_today=m.traded_notional_today,
            day=m.day,
            day_start_equity=m.day_start_equity,
        )
