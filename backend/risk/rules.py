"""Risk rules as pure functions (shared by the risk agent and the backtester).

Units: prices in quote currency per base unit, quantities in base units (signed for
positions: > 0 long, < 0 short), notional, cash and equity in quote currency, times in
ns since the Unix epoch (UTC).  No clock reads, no I/O: a replay decides the same.

Two pieces:

* the **circuit breaker** (:func:`update_breaker`, in :mod:`backend.risk.breaker`): daily
  drawdown of mark-to-market equity from the equity at the start of the UTC day (the
  usual prop-desk "daily loss limit"); at or past the limit it latches HALTED until
  :func:`reset_breaker`;
* **order decisions** (:func:`decide`, here): reject, close, reverse or open, sized from
  the stop distance (risk per trade as a fraction of equity) and capped by the exposure
  limits and the cash available.

The portfolio they read is :mod:`backend.risk.portfolio_view`; :class:`PositionView`,
:class:`PortfolioView`, :class:`RiskState` and the breaker's functions are re-exported
here, so ``from backend.risk.rules import ...`` keeps working.
"""

from __future__ import annotations

from pydantic import BaseModel

from backend.messages import Side, SignalGenerated
from backend.risk.breaker import RiskState as RiskState
from backend.risk.breaker import daily_drawdown as daily_drawdown
from backend.risk.breaker import reset_breaker as reset_breaker
from backend.risk.breaker import update_breaker as update_breaker
from backend.risk.config import RiskConfig
from backend.risk.kelly import kelly_risk
from backend.risk.portfolio_view import PortfolioView as PortfolioView
from backend.risk.portfolio_view import PositionView as PositionView

#: Quantities below this (base units) count as flat.
QTY_EPS = 1e-12


class RiskDecision(BaseModel):
    """Outcome of :func:`decide`.

    Attributes
    ----------
    approved, rule, reason
        ``rule`` is ``"ok"`` (open), ``"reverse_position"``, ``"close_position"`` or the
        name of the rule that rejected; ``reason`` carries the numbers.
    quantity
        Order size in base units (> 0 when approved, 0 when rejected).
    notional
        ``quantity * signal.entry_price`` (quote currency).
    side
        Order side (the signal's side).
    reduce_only
        True for a pure close of the opposite position.
    stop_loss, take_profit
        Bracket to attach (absolute prices), ``None`` for a pure close.
    equity
        Equity the decision was sized on (quote currency).
    """

    approved: bool
    rule: str
    reason: str
    quantity: float = 0.0
    notional: float = 0.0
    side: Side
    reduce_only: bool = False
    stop_loss: float | None = None
    take_profit: float | None = None
    equity: float = 0.0


# ----------------------------------------------------------------- order decisions
def decide(
    signal: SignalGenerated,
    portfolio: PortfolioView,
    state: RiskState,
    cfg: RiskConfig,
    fee_rate: float,
    min_notional: float = 0.0,
) -> RiskDecision:
    """Decide whether and how much to trade on an approved signal.

    Parameters
    ----------
    signal
        Compliance-approved signal; ``entry_price`` is the reference price (quote/base).
    portfolio
        The portfolio as of the signal's bar.
    state
        Circuit-breaker state (halted rejects everything).
    cfg
        Risk limits.
    fee_rate
        Venue fee as a fraction of notional, per side (caps a long by cash incl. fee).
    min_notional
        Smallest order notional accepted (quote currency); smaller -> ``size_zero``.

    Returns
    -------
    RiskDecision
        Rules, first match wins: ``halted`` (except a close of the opposite position,
        which only reduces risk); ``stale_signal`` (an entry whose bar is more than
        ``cfg.max_signal_age_s`` behind ``portfolio``); ``already_in_position`` (position in the
        signal's direction); opposite position -> ``reverse_position`` (if shorts are
        allowed, confidence suffices and a new leg can be sized) else
        ``close_position`` (reduce-only, bypasses confidence and caps);
        ``short_not_allowed``; ``min_confidence``; ``invalid_stop``; ``size_zero``;
        otherwise ``ok``.
    """
    side = signal.side
    equity = portfolio.equity

    def reject(rule: str, reason: str) -> RiskDecision:
        return RiskDecision(approved=False, rule=rule, reason=reason, side=side, equity=equity)

    pos = portfolio.quantity(signal.symbol)
    if abs(pos) <= QTY_EPS:
        pos = 0.0
    if state.halted:
        if pos * side.sign < 0:  # a close only reduces risk: it passes the latch
            return _close(signal, portfolio, pos, "trading halted: close only")
        return reject("halted", f"trading halted: {state.halt_reason or 'circuit breaker'}")
    age_s = (portfolio.bar_time - signal.bar_time) / 1e9
    if cfg.max_signal_age_s > 0 and age_s > cfg.max_signal_age_s and pos * side.sign >= 0:
        return reject("stale_signal", f"signal of bar {signal.bar_seq} is {age_s:.0f}s behind "
                      f"the latest mark (limit {cfg.max_signal_age_s:g}s): its price is old")
    if pos * side.sign > 0:
        return reject(
            "already_in_position",
            f"already {'long' if pos > 0 else 'short'} {abs(pos):.8g} {signal.symbol}",
        )

    if pos != 0.0:
        return _opposite(signal, portfolio, cfg, fee_rate, min_notional, pos)

    if side is Side.SELL and not cfg.allow_short:
        return reject("short_not_allowed", f"flat {signal.symbol} and shorting is disabled")
    if signal.confidence < cfg.min_confidence:
        return reject(
            "min_confidence",
            f"confidence {signal.confidence:.4g} < min {cfg.min_confidence:.4g}",
        )
    rule, qty, reason = _size(signal, portfolio, cfg, fee_rate, min_notional, closing=0.0)
    if rule != "ok":
        return reject(rule, reason)
    return RiskDecision(
        approved=True,
        rule="ok",
        reason=reason,
        quantity=qty,
        notional=qty * signal.entry_price,
        side=side,
        reduce_only=False,
        stop_loss=signal.stop_loss,
        take_profit=signal.take_profit,
        equity=equity,
    )


def _opposite(
    signal: SignalGenerated,
    portfolio: PortfolioView,
    cfg: RiskConfig,
    fee_rate: float,
    min_notional: float,
    pos: float,
) -> RiskDecision:
    """Signal against an open position: reverse it, or close it (risk-reducing)."""
    close_qty = abs(pos)
    held = "long" if pos > 0 else "short"
    why_not = ""
    if not cfg.allow_short:
        why_not = "shorting disabled"
    elif signal.confidence < cfg.min_confidence:
        why_not = f"confidence {signal.confidence:.4g} < min {cfg.min_confidence:.4g}"
    else:
        rule, new_qty, size_reason = _size(
            signal, portfolio, cfg, fee_rate, min_notional, closing=close_qty
        )
        if rule != "ok":
            why_not = f"{rule}: {size_reason}"
        else:
            qty = close_qty + new_qty
            return RiskDecision(
                approved=True,
                rule="reverse_position",
                reason=f"reverse {held} {close_qty:.8g} {signal.symbol}: close, then "
                f"{size_reason}",
                quantity=qty,
                notional=qty * signal.entry_price,
                side=signal.side,
                reduce_only=False,
                stop_loss=signal.stop_loss,
                take_profit=signal.take_profit,
                equity=portfolio.equity,
            )
    return _close(signal, portfolio, pos, f"no reversal: {why_not}")


def _close(signal: SignalGenerated, portfolio: PortfolioView, pos: float, why: str
           ) -> RiskDecision:
    """Close the opposite position ``pos`` (reduce-only, no bracket)."""
    close_qty = abs(pos)
    return RiskDecision(
        approved=True,
        rule="close_position",
        reason=f"close {'long' if pos > 0 else 'short'} {close_qty:.8g} {signal.symbol} on "
        f"opposite signal ({why})",
        quantity=close_qty,
        notional=close_qty * signal.entry_price,
        side=signal.side,
        reduce_only=True,
        stop_loss=None,
        take_profit=None,
        equity=portfolio.equity,
    )


def _size(
    signal: SignalGenerated,
    portfolio: PortfolioView,
    cfg: RiskConfig,
    fee_rate: float,
    min_notional: float,
    closing: float,
) -> tuple[str, float, str]:
    """Size a new position from the stop distance, capped by the limits.

    The amount at risk is ``risk_per_trade`` of equity (``cfg.sizing ==
    "fixed_fractional"``) or the capped Kelly fraction (``"kelly"``,
    :func:`backend.risk.kelly.kelly_risk`; no edge -> ``size_zero``).
    ``closing`` is the quantity of an opposite position the same order closes first
    (a reversal): its exposure is freed, and a reversing BUY first spends cash on it.

    Returns ``(rule, qty, reason)``: rule ``"ok"`` with qty > 0 (base units), else the
    rejecting rule (``invalid_stop``/``size_zero``) with qty 0.
    """
    entry, stop = signal.entry_price, signal.stop_loss
    dist = (entry - stop) * signal.side.sign  # > 0 when the stop is on the right side
    if not dist > 0:
        where = "below" if signal.side is Side.BUY else "above"
        return (
            "invalid_stop",
            0.0,
            f"{signal.side.value} stop {stop:.8g} must be {where} entry {entry:.8g}",
        )
    equity = portfolio.equity
    fraction, head = cfg.risk_per_trade, ""
    if cfg.sizing == "kelly":
        fraction, head = kelly_risk(signal, cfg, dist)
        if not fraction > 0:
            return "size_zero", 0.0, f"size is zero: {head}"
        head += "; "
    risk_amount = equity * fraction
    qty = risk_amount / dist
    notional = qty * entry
    reason = head + (
        f"risk {fraction:.4g} of equity {equity:.8g} = {risk_amount:.8g} over stop "
        f"distance {dist:.8g} -> qty {qty:.8g} (notional {notional:.8g})"
    )
    sym_exposure = 0.0 if closing else portfolio.exposure(signal.symbol)
    total_exposure = portfolio.total_exposure() - (
        portfolio.exposure(signal.symbol) if closing else 0.0
    )
    caps: list[tuple[str, float]] = [
        (f"max_position_pct {cfg.max_position_pct:.4g} x equity", cfg.max_position_pct * equity),
        (
            f"symbol exposure room {cfg.max_symbol_exposure_pct:.4g} x equity - "
            f"{sym_exposure:.8g}",
            cfg.max_symbol_exposure_pct * equity - sym_exposure,
        ),
        (
            f"total exposure room {cfg.max_total_exposure_pct:.4g} x equity - "
            f"{total_exposure:.8g}",
            cfg.max_total_exposure_pct * equity - total_exposure,
        ),
    ]
    if signal.side is Side.BUY:
        cash = portfolio.cash - closing * entry * (1 + fee_rate)
        caps.append((f"cash {cash:.8g} / (1 + fee {fee_rate:.4g})", cash / (1 + fee_rate)))
    name, cap = min(caps, key=lambda c: c[1])  # first of equal caps wins
    if cap < notional:
        notional = max(cap, 0.0)
        qty = notional / entry
        reason += f"; capped by {name} = {cap:.8g} -> qty {qty:.8g} (notional {notional:.8g})"
    if qty <= 0 or notional <= 0 or notional < min_notional:
        return ("size_zero", 0.0, f"size is zero: {reason}; min notional {min_notional:.8g}")
    return "ok", qty, reason
