"""The daily drawdown circuit breaker of the risk rules, as pure functions (no I/O).

:func:`update_breaker` measures the daily drawdown of mark-to-market equity from the
equity at the start of the UTC day (the usual prop-desk "daily loss limit"); at or past
``risk.daily_drawdown_limit`` it latches HALTED in :class:`RiskState` until
:func:`reset_breaker`.  No clock reads: a replay trips at the same bar.

Units: equity in quote currency, drawdowns and limits as fractions, days as UTC day
indices (``bar_time // 86_400e9``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from backend.risk.config import RiskConfig
from backend.risk.portfolio_view import PortfolioView

__all__ = ["RiskState", "daily_drawdown", "reset_breaker", "update_breaker"]

#: Relative tolerance for "drawdown at exactly the limit" (float round-off).
_LIMIT_RTOL = 1e-12


class RiskState(BaseModel):
    """Durable state of the circuit breaker (persisted as JSON by the risk agent).

    ``day`` is the UTC day index ``day_start_equity`` (quote currency) belongs to;
    ``-1`` = none yet.  ``halted`` is latched until :func:`reset_breaker`.
    ``var_alert`` is the portfolio-VaR alert level (:func:`backend.risk.var_limit.
    alert_level`, with hysteresis); ``var``/``var_ratio``/``var_bar_seq`` the last
    portfolio VaR (fraction of equity), its ratio to the limit and the mark it was
    computed at (``None`` when unknown or the limit is off).
    """

    halted: bool = False
    halt_reason: str = ""
    #: When the breaker latched (ns, wall clock; 0 = unknown): only a reset after it ends it.
    halted_ts: int = 0
    #: Time (ns) of the newest halt latch risk has seen: a latch missing from Redis with no
    #: reset after it counts as halted (Redis lost its data; not a reset).
    latch_seen_ts: int = 0
    day: int = -1
    day_start_equity: float = 0.0
    var_alert: Literal["ok", "warning", "breach"] = "ok"
    var: float | None = None
    var_ratio: float | None = None
    var_bar_seq: int | None = None


# ----------------------------------------------------------------- circuit breaker
def daily_drawdown(equity: float, day_start_equity: float) -> float:
    """Drawdown of equity from the start-of-day equity, as a fraction (>= 0).

    ``max(0, (day_start_equity - equity) / day_start_equity)``: the fall of
    mark-to-market equity since the start of the UTC day.  Gains give 0.  A
    non-positive ``day_start_equity`` (undefined) gives 0.
    """
    if day_start_equity <= 0:
        return 0.0
    return max(0.0, (day_start_equity - equity) / day_start_equity)


def update_breaker(
    state: RiskState, portfolio: PortfolioView, cfg: RiskConfig
) -> tuple[RiskState, bool]:
    """Roll the day and trip the breaker when the daily drawdown reaches the limit.

    Parameters
    ----------
    state
        Breaker state before this portfolio update (not mutated).
    portfolio
        Latest marked portfolio; on a new UTC day ``portfolio.day_start_equity`` becomes
        the reference equity.
    cfg
        ``cfg.daily_drawdown_limit`` is the fraction that trips (at exactly the limit
        it trips).

    Returns
    -------
    tuple[RiskState, bool]
        The new state and whether the breaker tripped on *this* call.  Once halted the
        state stays halted (latched) until :func:`reset_breaker`.
    """
    new = state.model_copy()
    if portfolio.day != state.day or state.day_start_equity <= 0:
        new = new.model_copy(
            update={"day": portfolio.day, "day_start_equity": portfolio.day_start_equity}
        )
    if new.halted:
        return new, False
    dd = daily_drawdown(portfolio.equity, new.day_start_equity)
    limit = cfg.daily_drawdown_limit
    if dd >= limit * (1 - _LIMIT_RTOL):
        reason = (
            f"daily drawdown {dd:.4%} >= limit {limit:.4%} "
            f"(equity {portfolio.equity:.8g} vs day start {new.day_start_equity:.8g})"
        )
        return new.model_copy(update={"halted": True, "halt_reason": reason}), True
    return new, False


def reset_breaker(
    state: RiskState, reason: str, rebase_equity: float | None = None
) -> RiskState:
    """Manual reset: a new, un-halted state.

    ``reason`` (who/why) is recorded in ``halt_reason`` as ``"reset: <reason>"``.  With
    ``rebase_equity`` (quote currency; the equity when the reset is adopted) the rest of
    the day's drawdown is measured from there, so a reset on a day already past the limit
    does not trip again on the next bar; without it the day's reference is kept.
    """
    update: dict[str, object] = {"halted": False, "halt_reason": f"reset: {reason}"}
    if rebase_equity is not None and rebase_equity > 0:
        update["day_start_equity"] = rebase_equity
    return state.model_copy(update=update)
