"""``--sizing risk``: the mesh's own pipeline over historical candles.

Runs :func:`backend.mesh.simulate.simulate` -- strategy -> compliance -> risk -> paper venue,
the same pure functions the agents call, in the order the mesh guarantees -- or, where
it models the settings (all but the portfolio-VaR limit), its compiled twin
:func:`backend.backtest.kernel_run.replay`, which gives the same fills to the bit; so a
backtest's fills are the fills a mesh replay of the same data and settings produces
(``tests/e2e/test_run_replay.py`` checks ``simulate`` against the mesh).  Trades are
:func:`backend.performance.report.extract_trades` of those fills, and the curves are those of the
mesh's report (:func:`backend.performance.report.symbol_curves`): one account over every symbol,
marked to market at each bar.

Units: prices quote/base, sizes base units, cash/P&L/fees quote, times ns UTC.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from backend.backtest.kernel_run import KernelReplay, replay, supported
from backend.backtest.models import BacktestResult, BacktestTrade, Curve
from backend.backtest.stats import compute_stats, infer_periods_per_year
from backend.marketdata.candles import Candles
from backend.marketdata.replay_order import merge_bars
from backend.mesh.simulate import SimResult, simulate
from backend.performance.report import Trade, extract_trades, symbol_curves
from backend.settings import Settings
from backend.strategies.base import Strategy

__all__ = ["equity_frame", "run_risk", "to_backtest_trade"]


def equity_frame(res: SimResult) -> pd.DataFrame:
    """The replay's marks as the mesh stores them (``Store.equity_curve`` columns
    ``bar_seq, bar_time, equity, positions``)."""
    return pd.DataFrame({
        "bar_seq": [m.bar_seq for m in res.marks],
        "bar_time": [m.bar_time for m in res.marks],
        "equity": [m.equity for m in res.marks],
        "positions": [{s: p.model_dump() for s, p in m.positions.items()} for m in res.marks],
    })


def to_backtest_trade(t: Trade, rows: Mapping[int, int]) -> BacktestTrade:
    """A report :class:`~backend.performance.report.Trade` with bar seqs mapped to file rows."""
    return BacktestTrade(
        symbol=t.symbol, side=t.side, size=t.quantity, entry_time=t.entry_time,
        exit_time=t.exit_time, entry_bar=rows[t.entry_bar_seq],
        exit_bar=None if t.exit_bar_seq is None else rows[t.exit_bar_seq],
        entry_price=t.entry_price, exit_price=t.exit_price, gross_pnl=t.gross_pnl,
        fees=t.fees, net_pnl=t.net_pnl, return_on_notional=t.return_on_notional,
        exit_reason=t.exit_reason,
    )


def run_risk(
    settings: Settings,
    candles: dict[str, Candles],
    periods_per_year: float | None = None,
    strategies: Mapping[str, Strategy] | None = None,
) -> BacktestResult:
    """Backtest ``candles`` through the mesh's pipeline with ``settings``.

    Parameters
    ----------
    settings : Settings
        Strategy (``strategy_for(symbol)``), compliance, risk and paper settings
        (``paper.initial_cash``, ``fee_rate``, ``slippage_bps``), as the mesh uses them.
    candles : dict of str to Candles
        Keyed by ``BASE/QUOTE``; one account trades them all.
    periods_per_year : float, optional
        Annualisation; inferred from the bar times by default.
    strategies : mapping of str to Strategy, optional
        Instances by symbol replacing the configured ones (see
        :func:`backend.mesh.simulate.simulate`).

    Returns
    -------
    BacktestResult
        ``stats`` of the account equity; ``symbol_stats`` of each symbol's curve
        (``initial_cash`` + its mark-to-market P&L); ``extra`` holds the signal,
        decision and order counts and the bar seq where the circuit breaker tripped.
    """
    res: SimResult | KernelReplay
    if supported(settings) is None:  # the compiled model: same fills, to the bit
        res = replay(settings, candles, strategies=strategies)
        marks = res.equity_frame()
    else:
        res = simulate(settings, candles, strategies=strategies)
        marks = equity_frame(res)
    rows = {seq: i for seq, (_, _, i) in enumerate(merge_bars(candles), start=1)}
    closed, still_open = extract_trades(res.fills)
    trades = [to_backtest_trade(t, rows) for t in closed]
    opened = [to_backtest_trade(t, rows) for t in still_open]
    tl, curves = symbol_curves(res.fills, marks)
    t = tl["bar_time"].to_numpy(np.int64)
    eq = tl["equity"].to_numpy(float)
    ppy = float(periods_per_year or infer_periods_per_year(t))
    cash = settings.paper.initial_cash
    any_open = np.zeros(len(t), dtype=bool)
    per_sym, sym_curves = {}, {}
    for sym in candles:
        pnl, pos = curves.get(sym, (np.zeros(len(t)), np.zeros(len(t))))
        in_mkt = pos != 0
        any_open |= in_mkt
        fees = sum(f.fee for f in res.fills if f.symbol == sym)
        sym_curves[sym] = Curve(time=t, equity=cash + pnl, in_market=in_mkt)
        per_sym[sym] = compute_stats(
            t, cash + pnl, in_mkt, [x for x in trades if x.symbol == sym], cash, ppy,
            fees_paid=fees, open_trades=sum(x.symbol == sym for x in opened))
    stats = compute_stats(t, eq, any_open, trades, cash, ppy,
                          fees_paid=sum(f.fee for f in res.fills), open_trades=len(opened))
    cfg = settings.strategy_for(next(iter(candles))) if candles else settings.default_strategy
    name = next(iter(strategies.values())).name if strategies else cfg.name
    return BacktestResult(
        sizing="risk", strategy=name, params=dict(cfg.params), symbols=list(candles),
        cash=cash, commission=settings.paper.fee_rate,
        slippage_bps=settings.paper.slippage_bps, stats=stats, symbol_stats=per_sym,
        trades=trades, open_trades=opened,
        extra={
            "signals": len(res.signals), "orders": len(res.orders), "fills": len(res.fills),
            "rejections": _rejections(res), "halted_at_bar_seq": res.halted_at,
        },
        curve=Curve(time=t, equity=eq, in_market=any_open), symbol_curves=sym_curves,
    )


def _rejections(res: SimResult | KernelReplay) -> dict[str, int]:
    """Rejected signals by ``stage:rule``."""
    out: dict[str, int] = {}
    for _, stage, ok, rule in res.decisions:
        if not ok:
            key = f"{stage}:{rule}"
            out[key] = out.get(key, 0) + 1
    return out
