"""Mixin for agents that decide on signals against the execution agent's portfolio.

Compliance and risk read ``trading_events`` through their own consumer group and keep
the last :class:`PortfolioMarked`.  Before deciding on a signal computed at bar ``seq``
they *catch up* until they hold the portfolio as of that bar, so a decision never
depends on which process happened to run first: the same data gives the same decisions
in every run and in the backtester.
"""

from __future__ import annotations

from agents.base import Agent, monotonic
from backend import channels
from backend.messages import PortfolioMarked, SignalGenerated
from backend.rules.risk import PortfolioView, PositionView


class PortfolioFollower(Agent):
    """Adds ``self.mark`` (last PortfolioMarked) and :meth:`catch_up`."""

    mark: PortfolioMarked | None = None

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
        deadline = monotonic() + wait if wait > 0 else None
        while self.mark is None or self.mark.bar_seq < bar_seq:
            if self.stopping or (deadline is not None and monotonic() > deadline):
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

    @staticmethod
    def signal_day(signal: SignalGenerated) -> int:
        """UTC day index of the signal's bar."""
        return signal.bar_time // 86_400_000_000_000
