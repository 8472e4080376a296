"""The backtest entry point: candles + strategy + sizing -> :class:`BacktestResult`.

Two sizings:

* ``"risk"`` -- the mesh's pipeline (:mod:`backend.backtest.risk`): strategy signals
  with confidence, compliance rules, risk sizing from the stop distance, the paper
  venue's fills (next open + slippage, fee, stop loss / take profit).  One account
  over every symbol.
* ``"all-in"`` -- whole equity per trade, reversal on the opposite signal, fills at
  the next open, commission per side, no slippage (:mod:`backend.backtest.allin`),
  on the strategy's direction signals (:mod:`backend.backtest.signals`).  With several
  symbols the cash is split evenly into one sub-account per symbol; the account curve
  is their sum on the union of the bar times.

Units: prices quote/base, sizes base units, cash/P&L/fees quote, times ns UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import ValidationError

from backend.backtest.allin import run_allin
from backend.backtest.models import BacktestResult, BacktestStats, Curve, Sizing
from backend.backtest.risk import run_risk
from backend.backtest.signals import signal_source
from backend.backtest.stats import compute_stats, infer_periods_per_year
from backend.marketdata.candles import Candles
from backend.settings import Settings, StrategyConfig
from backend.strategies.base import Strategy
from backend.strategies.build import build_strategy, config_of
from backend.strategies.registry import STRATEGIES, get_strategy

__all__ = ["SIZINGS", "backtest_settings", "run_backtest"]

SIZINGS: tuple[str, ...] = ("risk", "all-in")


#: Command-line options of the settings a backtest overrides (named in errors).
_OPTION = {"paper.initial_cash": "--cash", "paper.fee_rate": "--commission",
           "paper.slippage_bps": "--slippage-bps"}


def _one_line(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"])
        opt = f" ({_OPTION[loc]})" if loc in _OPTION else ""
        parts.append(f"{loc}{opt}: {e['msg']}")
    return "; ".join(parts)


def backtest_settings(
    base: Settings,
    symbols: list[str],
    strategy: str | StrategyConfig,
    params: Mapping[str, Any],
    cash: float | None = None,
    commission: float | None = None,
    slippage_bps: float | None = None,
) -> Settings:
    """``base`` with the backtest's symbols, strategy (for every symbol), cash, fee and
    slippage (``None`` keeps the base value), validated like any configuration.

    ``strategy`` is a registry name or a whole :class:`StrategyConfig` (components,
    regimes ...); ``params`` replace its ``params``.

    Raises
    ------
    ValueError
        A value out of range (one line naming the setting), or symbols with several
        quote currencies.
    """
    paper: dict[str, Any] = base.paper.model_dump()
    for key, val in (("initial_cash", cash), ("fee_rate", commission),
                     ("slippage_bps", slippage_bps)):
        if val is not None:
            paper[key] = val
    cfg = strategy if isinstance(strategy, StrategyConfig) else StrategyConfig(name=strategy)
    data = {**base.model_dump(), "symbols": symbols, "paper": paper}
    try:
        s = Settings.model_validate(data)
        chosen = StrategyConfig.model_validate({**cfg.model_dump(), "params": dict(params)})
    except ValidationError as exc:
        raise ValueError(f"invalid setting {_one_line(exc)}") from None
    # set after validation: the config file's sources would be deep-merged into a nested
    # value (its [strategies.<SYM>] and [default_strategy] keys would leak in)
    return s.model_copy(update={"strategies": {}, "default_strategy": chosen})


def run_backtest(
    candles: Mapping[str, Candles],
    strategy: str | Strategy | StrategyConfig,
    params: Mapping[str, Any] | None = None,
    *,
    sizing: Sizing = "risk",
    cash: float | None = None,
    commission: float | None = None,
    slippage_bps: float | None = None,
    settings: Settings | None = None,
    whole_units: bool = False,
    finalize: bool = False,
    periods_per_year: float | None = None,
) -> BacktestResult:
    """Backtest a strategy over historical candles.

    Parameters
    ----------
    candles : mapping of str to Candles
        Keyed by ``BASE/QUOTE`` (``backend.marketdata.candles.load_candles``).
    strategy : str or Strategy or StrategyConfig
        Registry name (``"sma_cross"``, ``"momentum"`` ...), a configuration (built with
        :func:`backend.strategies.build.build_strategy`: ``combined``, regime gates), or a
        strategy instance.  ``risk`` sizing replays the mesh's pipeline, which builds its
        strategy from configuration: an instance must come from ``build_strategy`` or be
        a plain registered strategy (:func:`backend.strategies.build.config_of`).
    params : mapping, optional
        Parameter overrides (validated against the strategy's declaration).
    sizing : {"risk", "all-in"}
    cash : float, optional
        Initial cash (quote); default ``settings.paper.initial_cash``.
    commission : float, optional
        Fee as a fraction of notional per side; default ``settings.paper.fee_rate``.
    slippage_bps : float, optional
        ``risk`` only (all-in has none); default ``settings.paper.slippage_bps``.
    settings : Settings, optional
        Compliance, risk and paper settings for ``risk`` and the defaults above;
        ``Settings()`` by default.
    whole_units, finalize : bool
        ``all-in`` only: whole base units; close an open trade at the last bar's open
        (:func:`backend.backtest.allin.run_allin`).
    periods_per_year : float, optional
        Annualisation; inferred from the bar times by default.

    Returns
    -------
    BacktestResult

    Raises
    ------
    ValueError
        Unknown strategy or sizing, a bad parameter or setting, no candles.
    """
    if sizing not in SIZINGS:
        raise ValueError(f"unknown sizing {sizing!r} (known: {', '.join(SIZINGS)})")
    if not candles:
        raise ValueError("no candles to backtest")
    instance = False
    if isinstance(strategy, StrategyConfig):
        strat, cfg = build_strategy(strategy), strategy
        params = {**strategy.params, **(params or {})}
    elif isinstance(strategy, str):
        strat, cfg = get_strategy(strategy), StrategyConfig(name=strategy)
    else:
        strat = strategy
        try:
            cfg = config_of(strategy)
        except ValueError:
            # an instance configuration cannot describe (e.g. ml_classifier with stored
            # models): the risk replay runs the instance itself for every symbol
            cfg = StrategyConfig(name=strat.name) if strat.name in STRATEGIES \
                else StrategyConfig()
            instance = True
    resolved = strat.resolve_params(params)
    base = settings or Settings()
    s = backtest_settings(base, list(candles), cfg, resolved, cash, commission,
                          slippage_bps if sizing == "risk" else None)
    if sizing == "risk":
        return run_risk(s, dict(candles), periods_per_year,
                        strategies=dict.fromkeys(candles, strat) if instance else None)
    return _run_allin(candles, strat, resolved, s.paper.initial_cash, s.paper.fee_rate,
                      whole_units, finalize, periods_per_year)


def _run_allin(
    candles: Mapping[str, Candles], strat: Strategy, params: dict[str, int | float],
    cash: float, commission: float, whole_units: bool, finalize: bool, ppy: float | None,
) -> BacktestResult:
    strategy = strat.name
    sub_cash = cash / len(candles)
    trades, opened, per_sym, curves = [], [], {}, {}
    fees = 0.0
    for sym, c in candles.items():
        side = signal_source(strat, c).side_resolved(params)
        run = run_allin(c, side, sub_cash, commission, symbol=sym, whole_units=whole_units,
                        finalize=finalize)
        trades += run.trades
        opened += run.open_trades
        fees += run.fees_paid
        in_mkt = run.position != 0
        curves[sym] = Curve(time=np.asarray(c.time), equity=run.equity, in_market=in_mkt)
        per_sym[sym] = compute_stats(c.time, run.equity, in_mkt, run.trades, sub_cash, ppy,
                                     fees_paid=run.fees_paid, open_trades=len(run.open_trades))
    trades.sort(key=lambda t: (t.exit_time or 0, t.symbol))
    total = _combine(curves, sub_cash)
    stats: BacktestStats = compute_stats(
        total.time, total.equity, total.in_market, trades, cash,
        ppy or infer_periods_per_year(total.time), fees_paid=fees, open_trades=len(opened))
    return BacktestResult(
        sizing="all-in", strategy=strategy, params=params, symbols=list(candles), cash=cash,
        commission=commission, whole_units=whole_units, stats=stats, symbol_stats=per_sym,
        trades=trades, open_trades=opened, extra={"finalize": finalize},
        curve=total, symbol_curves=curves,
    )


def _combine(curves: Mapping[str, Curve], sub_cash: float) -> Curve:
    """Sum of sub-account curves on the union of their times (each held as of its last
    bar; ``sub_cash`` and flat before its first)."""
    if len(curves) == 1:
        return next(iter(curves.values()))
    t = np.unique(np.concatenate([c.time for c in curves.values()]))
    eq = np.zeros(len(t))
    in_mkt = np.zeros(len(t), dtype=bool)
    for c in curves.values():
        idx = np.searchsorted(c.time, t, side="right") - 1
        ok = idx >= 0
        eq += np.where(ok, c.equity[np.maximum(idx, 0)], sub_cash)
        in_mkt |= ok & c.in_market[np.maximum(idx, 0)]
    return Curve(time=t, equity=eq, in_market=in_mkt)
