"""Compliance rules as pure functions (shared by the compliance agent and the backtester).

Every decision is a function of the signal, the compliance state and the config only:
no clock reads, no I/O.  Time is the signal's ``bar_time`` (market time, ns since the
Unix epoch, UTC), so a replay of the same bars makes the same decisions.

Rules, in order (the first that fails decides):

1. ``restricted_symbol``   -- the symbol is on the restricted list (compared compactly,
   so ``ETH/BTC``, ``ETH-BTC`` and ``ETHBTC`` are the same symbol).
2. ``trading_hours``       -- the UTC hour of ``bar_time`` is outside ``[start, end)``.
   ``(0, 24)`` is always open; ``start > end`` is an overnight window, e.g. ``(22, 6)``
   is open 22:00-05:59 UTC; ``start == end`` is an empty window (never open).
3. ``max_trades_per_day``  -- approved signals this UTC day ``>= max``.
4. ``max_notional_per_day``-- traded notional this UTC day (quote currency, supplied by
   the caller from the execution's portfolio) ``>= max``.
5. ``duplicate_signal``    -- a signal for the same symbol and side was approved at most
   ``duplicate_window_s`` seconds before (``0 <= bar_time - last <= window``).

An approved signal has rule ``"ok"``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from backend.channels import compact_symbol
from backend.compliance.config import ComplianceConfig
from backend.messages import NS_PER_DAY, SignalGenerated

#: Nanoseconds per UTC day / hour.
NS_PER_HOUR = 3_600_000_000_000
NS_PER_SECOND = 1_000_000_000


class ComplianceState(BaseModel):
    """Durable state of the compliance rules (persisted as JSON by the agent).

    Attributes
    ----------
    day
        UTC day index (``bar_time // 86_400e9``) the counters refer to; ``-1`` = none yet.
    trades_today
        Signals approved during ``day``.
    last_approved
        ``"<symbol>|<side>"`` -> ``bar_time`` (ns, UTC) of the last approved signal.
    """

    day: int = -1
    trades_today: int = Field(default=0, ge=0)
    last_approved: dict[str, int] = Field(default_factory=dict)


class Decision(BaseModel):
    """Outcome of :func:`check_signal`.

    ``rule`` is ``"ok"`` when approved, else the name of the rule that rejected;
    ``reason`` is human-readable and carries the numbers.
    """

    approved: bool
    rule: str
    reason: str


def utc_day(t_ns: int) -> int:
    """UTC day index of a time in ns since the epoch (``t_ns // 86_400e9``)."""
    return t_ns // NS_PER_DAY


def utc_hour(t_ns: int) -> int:
    """Hour of the UTC day (0-23) of a time in ns since the epoch."""
    return (t_ns // NS_PER_HOUR) % 24


def in_trading_hours(hour: int, hours: tuple[int, int]) -> bool:
    """Whether ``hour`` (0-23, UTC) lies in the window ``[start, end)``.

    ``start < end`` is a same-day window (``(0, 24)`` = always); ``start > end`` wraps
    over midnight (``(22, 6)`` = 22:00-05:59); ``start == end`` is empty (never).
    """
    start, end = hours
    if start < end:
        return start <= hour < end
    if start > end:
        return hour >= start or hour < end
    return False


def duplicate_key(symbol: str, side: str) -> str:
    """Key of ``ComplianceState.last_approved``: ``"<symbol>|<side>"``."""
    return f"{symbol}|{side}"


def roll_day(state: ComplianceState, bar_time: int) -> ComplianceState:
    """Return ``state`` with the daily counter reset if ``bar_time`` is on another UTC day."""
    day = utc_day(bar_time)
    if day == state.day:
        return state
    return ComplianceState(day=day, trades_today=0, last_approved=dict(state.last_approved))


def check_signal(
    signal: SignalGenerated,
    state: ComplianceState,
    cfg: ComplianceConfig,
    traded_notional_today: float,
) -> tuple[Decision, ComplianceState]:
    """Approve or reject one signal; return the decision and the new state.

    Parameters
    ----------
    signal
        The strategy's signal; ``signal.bar_time`` (ns, UTC) is the decision time.
    state
        Compliance state before this signal (not mutated).
    cfg
        Compliance limits.
    traded_notional_today
        Notional traded so far this UTC day (quote currency), from the execution's
        portfolio.

    Returns
    -------
    tuple[Decision, ComplianceState]
        The decision, and the state after it: on approval ``trades_today + 1`` and
        ``last_approved`` updated; on rejection only the day roll (if any) applies.
    """
    rolled = roll_day(state, signal.bar_time)
    decision = _first_failure(signal, rolled, cfg, traded_notional_today)
    if decision is not None:
        if rolled is state:
            rolled = state.model_copy(deep=True)
        return decision, rolled

    key = duplicate_key(signal.symbol, signal.side.value)
    last = dict(rolled.last_approved)
    last[key] = signal.bar_time
    new_state = ComplianceState(
        day=rolled.day, trades_today=rolled.trades_today + 1, last_approved=last
    )
    reason = (
        f"approved {signal.side.value} {signal.symbol}: trade {new_state.trades_today} "
        f"of max {cfg.max_trades_per_day} today"
    )
    return Decision(approved=True, rule="ok", reason=reason), new_state


def _first_failure(
    signal: SignalGenerated,
    state: ComplianceState,
    cfg: ComplianceConfig,
    traded_notional_today: float,
) -> Decision | None:
    """The decision of the first failing rule, or ``None`` if every rule passes."""
    restricted = {compact_symbol(s) for s in cfg.restricted_symbols}
    if compact_symbol(signal.symbol) in restricted:
        return _reject("restricted_symbol", f"symbol {signal.symbol} is restricted")

    hour = utc_hour(signal.bar_time)
    start, end = cfg.trading_hours_utc
    if not in_trading_hours(hour, (start, end)):
        return _reject(
            "trading_hours", f"hour {hour:02d} UTC outside trading hours [{start}, {end})"
        )

    if state.trades_today >= cfg.max_trades_per_day:
        return _reject(
            "max_trades_per_day",
            f"trades today {state.trades_today} >= max {cfg.max_trades_per_day}",
        )

    if traded_notional_today >= cfg.max_notional_per_day:
        return _reject(
            "max_notional_per_day",
            f"traded notional today {traded_notional_today:.8g} >= max "
            f"{cfg.max_notional_per_day:.8g}",
        )

    last = state.last_approved.get(duplicate_key(signal.symbol, signal.side.value))
    if last is not None:
        age_ns = signal.bar_time - last
        if 0 <= age_ns <= cfg.duplicate_window_s * NS_PER_SECOND:
            return _reject(
                "duplicate_signal",
                f"{signal.side.value} {signal.symbol} already approved {age_ns / NS_PER_SECOND:g}s "
                f"ago (window {cfg.duplicate_window_s:g}s)",
            )
    return None


def _reject(rule: str, reason: str) -> Decision:
    return Decision(approved=False, rule=rule, reason=reason)
