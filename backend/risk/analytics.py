"""Everything ``GET /api/risk`` shows, assembled from pure pieces (no I/O).

* equity-curve VaR/CVaR: :func:`backend.risk.metrics.risk_figures` (historical,
  parametric, Monte Carlo GBM; one bar);
* position VaR/CVaR, for the portfolio and per symbol:
  :func:`backend.risk.portfolio_var.position_var` over the symbols' recent bar returns
  (``var_horizon`` bars, last ``var_window`` returns) by all three methods;
* portfolio metrics: :func:`backend.risk.portfolio_metrics.portfolio_metrics`;
* the VaR limit and where the portfolio stands against it, and what the risk agent last
  computed (its durable :class:`~backend.risk.rules.RiskState`);
* a Monte Carlo forecast band of equity (:func:`backend.risk.montecarlo.equity_band`).

Money in quote currency, fractions of equity, times in ns UTC; levels 0.95 and 0.99.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from backend.messages import PortfolioMarked
from backend.rest.models import RiskFigures, VaREstimate
from backend.rest.risk import EquityBandView, RiskLimitsView
from backend.risk import var_limit
from backend.risk.config import RiskConfig
from backend.risk.metrics import DEFAULT_LEVELS, bar_returns, risk_figures
from backend.risk.montecarlo import equity_band
from backend.risk.portfolio_metrics import portfolio_metrics
from backend.risk.portfolio_var import METHODS, PositionVaR, Series, position_var
from backend.risk.rules import RiskState

#: Bars ahead of the equity forecast band.
BAND_STEPS = 100


def _estimate(v: PositionVaR, equity: float | None) -> VaREstimate:
    def quote(x: float | None) -> float | None:
        return None if x is None or equity is None else x * equity

    return VaREstimate(method=v.method, level=v.level, var=v.var, cvar=v.cvar,  # type: ignore[arg-type]
                       var_quote=quote(v.var), cvar_quote=quote(v.cvar), horizon=v.horizon)


def _limits(cfg: RiskConfig, notionals: Mapping[str, float], equity: float | None,
            history: Mapping[str, Series], agent: RiskState | None) -> RiskLimitsView:
    base: dict[str, Any] = {
        "var_limit": cfg.var_limit, "var_level": cfg.var_level, "var_method": cfg.var_method,
        "var_horizon": cfg.var_horizon, "var_window": cfg.var_window,
        "alert_ratio": cfg.alert_ratio, "sizing": cfg.sizing,
        "risk_per_trade": cfg.risk_per_trade, "kelly_fraction": cfg.kelly_fraction,
        "kelly_cap": cfg.kelly_cap,
    }
    if agent is not None and var_limit.enabled(cfg):
        base.update(agent_level=agent.var_alert, agent_var=agent.var,
                    agent_ratio=agent.var_ratio, agent_bar_seq=agent.var_bar_seq)
    now = var_limit.portfolio_var(notionals, equity or 0.0, history, cfg)
    ratio = None
    level = "off"
    if var_limit.enabled(cfg) and now.var is not None:
        ratio = now.var / cfg.var_limit
        level = var_limit.level_for(ratio, cfg.alert_ratio)
    return RiskLimitsView(**base, var=now.var, cvar=now.cvar, ratio=ratio, level=level,
                          reason=now.reason)


def risk_analytics(
    times: Sequence[int] | np.ndarray,
    equity_curve: Sequence[float] | np.ndarray,
    mark: PortfolioMarked | None,
    history: Mapping[str, Series],
    cfg: RiskConfig,
    symbols: Sequence[str] = (),
    agent: RiskState | None = None,
    levels: Sequence[float] = DEFAULT_LEVELS,
    band_steps: int = BAND_STEPS,
) -> RiskFigures:
    """The full risk figures of the account.

    Parameters
    ----------
    times, equity_curve
        Equity per bar time (ns, quote currency), one point per time, oldest first.
    mark
        The execution agent's last mark (positions, equity), ``None`` before any bar.
    history
        ``symbol -> (open_times, closes)`` of recent bars.
    cfg
        Risk settings: VaR horizon/window/min_obs/paths/seed, the limit, the benchmark.
    symbols
        Configured symbols (the default benchmark is the first).
    agent
        The risk agent's durable state (its alert level and last VaR), if known.
    levels
        Confidence levels of the estimates.
    band_steps
        Bars ahead of the equity band (0: no band).
    """
    curve = np.asarray(equity_curve, dtype=float)
    fig = risk_figures(curve, mark, levels=levels, min_obs=cfg.var_min_obs, methods=METHODS,
                       mc_paths=cfg.var_mc_paths, mc_seed=cfg.var_seed)
    equity = fig.equity
    notionals = {} if mark is None else {
        s: p.quantity * p.mark for s, p in mark.positions.items() if p.quantity}

    def estimates(positions: Mapping[str, float]) -> tuple[list[VaREstimate], int]:
        out, n = [], 0
        for method in METHODS:
            for level in levels:
                v = position_var(history, positions, equity or 0.0, level, method,
                                 horizon=cfg.var_horizon, window=cfg.var_window,
                                 min_obs=cfg.var_min_obs, paths=cfg.var_mc_paths,
                                 seed=cfg.var_seed)
                n = max(n, v.observations)
                out.append(_estimate(v, equity))
        return out, n

    position_estimates, n_obs = estimates(notionals)
    by_symbol = {sym: e.model_copy(update={
        "estimates": estimates({sym: notionals[sym]})[0] if sym in notionals else []})
        for sym, e in fig.by_symbol.items()}
    benchmark = cfg.benchmark_symbol or (symbols[0] if symbols else "")
    metrics = portfolio_metrics(times, curve, history, notionals, equity, benchmark,
                                window=cfg.var_window)
    band = None
    returns = bar_returns(curve)
    if band_steps > 0 and equity is not None:
        b = equity_band(equity, returns, steps=band_steps, paths=cfg.var_mc_paths,
                        seed=cfg.var_seed, min_obs=cfg.var_min_obs)
        if b is not None:
            band = EquityBandView(model=b.model, paths=b.paths, steps=band_steps,
                                  observations=int(returns.size), quantiles=list(b.quantiles),
                                  bands=[[float(x) for x in row] for row in b.values])
    return fig.model_copy(update={
        "by_symbol": by_symbol, "position_estimates": position_estimates,
        "position_observations": n_obs, "metrics": metrics,
        "limits": _limits(cfg, notionals, equity, history, agent), "equity_band": band,
    })
