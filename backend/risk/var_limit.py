"""Portfolio VaR limit and VaR alerts as pure functions (risk agent and backtester).

The **limit** (:func:`check_var_limit`) runs after :func:`backend.risk.rules.decide`
approved an order: it computes the portfolio VaR the account would have *with the order
filled* (:func:`backend.risk.portfolio_var.position_var`: the positions' signed notionals,
the order's symbol moved by ``side * quantity * entry_price``, over the symbols' last
``var_window`` bar returns, by ``var_method`` at ``var_level`` over ``var_horizon``
bars) and rejects with rule ``var_limit`` when it is **above** ``var_limit`` (a fraction
of equity; at exactly the limit the order passes).  It never blocks:

* a reduce-only close (``close_position``), which only lowers risk;
* an order that does not raise the VaR (e.g. a hedge when the account is already over
  the limit): ``var_after <= var_before`` passes.

When the VaR cannot be computed (a symbol without ``var_min_obs`` joint bar returns, at
the start of a replay for instance) the order is rejected (**fail closed**) and the
reason says why.  ``var_limit = 0`` turns the rule off (the default).

The **alert level** (:func:`alert_level`) of the current positions' VaR: ``ratio = var
/ var_limit``; ``warning`` from ``alert_ratio``, ``breach`` from 1.  Levels go up as
soon as the ratio reaches the threshold and come down only once it is
``alert_hysteresis`` below it, so a ratio hovering at a threshold does not flap.

History: ``symbol -> (open_times, closes)`` of bars up to the decision's bar (the
risk agent rebuilds it from the ``market_data`` stream, the backtester from its
candles: :class:`backend.marketdata.history.CloseHistory`), so both decide the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from backend.messages import SignalGenerated
from backend.risk.config import RiskConfig
from backend.risk.rules import PortfolioView, RiskDecision

if TYPE_CHECKING:  # the VaR machinery (NumPy, SciPy, empyrical) loads when the limit is on
    from backend.risk.portfolio_var import PositionVaR, Series

Level = Literal["ok", "warning", "breach"]
_RANK = {"ok": 0, "warning": 1, "breach": 2}


def enabled(cfg: RiskConfig) -> bool:
    """True when the VaR limit (and its alerts) is configured."""
    return cfg.var_limit > 0


def history_len(cfg: RiskConfig) -> int:
    """Closes to keep per symbol: ``var_window`` returns over ``var_horizon`` bars."""
    return cfg.var_window + cfg.var_horizon + 1


def notionals(portfolio: PortfolioView) -> dict[str, float]:
    """Signed notional ``quantity * mark`` of every position (quote currency)."""
    return {s: p.quantity * p.mark for s, p in portfolio.positions.items() if p.quantity}


def notionals_after(
    portfolio: PortfolioView, signal: SignalGenerated, quantity: float,
) -> dict[str, float]:
    """Signed notionals once an order of ``quantity`` on ``signal`` filled at its entry.

    The order's symbol is valued at ``signal.entry_price`` (the close of the signal's
    bar, i.e. its mark): ``(position + side * quantity) * entry_price``.
    """
    out = notionals(portfolio)
    key = signal.symbol
    pos = portfolio.position(signal.symbol)
    if pos is not None:
        key = next((s for s, p in portfolio.positions.items() if p is pos), key)
    qty = portfolio.quantity(signal.symbol) + signal.side.sign * quantity
    out.pop(key, None)
    if qty:
        out[key] = qty * signal.entry_price
    return out


def portfolio_var(
    positions: Mapping[str, float], equity: float, history: Mapping[str, Series],
    cfg: RiskConfig,
) -> PositionVaR:
    """VaR of positions with signed ``positions`` notionals by the configured method."""
    from backend.risk.portfolio_var import position_var

    return position_var(
        history, positions, equity, cfg.var_level, cfg.var_method, horizon=cfg.var_horizon,
        window=cfg.var_window, min_obs=cfg.var_min_obs, paths=cfg.var_mc_paths,
        seed=cfg.var_seed)


def check_var_limit(
    signal: SignalGenerated,
    decision: RiskDecision,
    portfolio: PortfolioView,
    history: Mapping[str, Series],
    cfg: RiskConfig,
) -> RiskDecision:
    """The decision, or a ``var_limit`` rejection (see the module docstring).

    Parameters
    ----------
    signal
        The signal the decision is on.
    decision
        :func:`backend.risk.rules.decide`'s decision (returned as is unless approved,
        not reduce-only and the limit is on).
    portfolio
        The portfolio as of the signal's bar (equity in quote currency).
    history
        ``symbol -> (open_times ns, closes)`` of bars up to the signal's bar.
    cfg
        ``var_limit`` (fraction of equity, 0 = off) and the VaR settings.
    """
    if not enabled(cfg) or not decision.approved or decision.reduce_only:
        return decision
    equity = portfolio.equity
    after = portfolio_var(notionals_after(portfolio, signal, decision.quantity), equity,
                          history, cfg)
    what = f"{cfg.var_method} VaR {cfg.var_level:.4g} over {cfg.var_horizon} bar(s)"
    if after.var is None:
        reason = f"{what} with the order unknown: {after.reason} (fail closed)"
    elif after.var > cfg.var_limit:
        before = portfolio_var(notionals(portfolio), equity, history, cfg)
        if before.var is not None and after.var <= before.var:
            return decision
        reason = (f"{what} with the order {after.var:.4%} of equity > limit "
                  f"{cfg.var_limit:.4%} (before it "
                  + ("unknown" if before.var is None else f"{before.var:.4%}")
                  + f"; {after.observations} bar returns of {', '.join(after.symbols)})")
    else:
        return decision
    return RiskDecision(approved=False, rule="var_limit", reason=reason[:500],
                        side=decision.side, equity=equity)


def level_for(ratio: float, alert_ratio: float, shift: float = 0.0) -> Level:
    """``breach`` if ``ratio >= 1 - shift``, ``warning`` if ``>= alert_ratio - shift``."""
    if ratio >= 1.0 - shift:
        return "breach"
    if ratio >= alert_ratio - shift:
        return "warning"
    return "ok"


def alert_level(previous: Level, ratio: float | None, cfg: RiskConfig) -> Level:
    """The alert level after a new VaR ratio, with hysteresis.

    Up: the level of ``ratio`` as soon as it is higher than ``previous``.  Down: only
    to the level of ``ratio`` with every threshold lowered by ``alert_hysteresis``.
    ``None`` (VaR unknown) keeps ``previous``.
    """
    if ratio is None:
        return previous
    new = level_for(ratio, cfg.alert_ratio)
    if _RANK[new] >= _RANK[previous]:
        return new
    down = level_for(ratio, cfg.alert_ratio, cfg.alert_hysteresis)
    return down if _RANK[down] < _RANK[previous] else previous
