"""Run the compiled trading model (:mod:`backend.backtest.kernel`) from settings and candles.

:func:`replay` is :func:`backend.mesh.simulate.simulate` by way of the kernel: the same
inputs (settings, per-symbol candles, ``limit``, strategy instances) and the same signals,
decisions, orders, fills and marks, rebuilt as the mesh's messages (ids included) from
the kernel's arrays.  :func:`kernel_signals` and :func:`merged_arrays` are its two input
halves, which the optimizer's fitness (:mod:`backend.optimizer.fitness`) calls directly so
that a parameter set costs one ``generate`` and one kernel call.

Signals are each strategy's vectorised ``generate`` over the symbol's whole series (a
signal at bar ``i`` uses bars ``0..i`` only), silenced before the strategy's warm-up like
:class:`backend.strategies.runner.StrategyRunner` does; a strategy without
:attr:`~backend.strategies.base.Strategy.finite_memory` (a self-training ``ml_classifier``,
which the runner retrains on its sliding window) is fed to a runner bar by bar instead,
as ``simulate`` does.

Units: prices quote/base, sizes base units, cash/fees quote, times ns UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backend.backtest import kernel as kn
from backend.channels import compact_symbol
from backend.marketdata.candles import Candles
from backend.marketdata.replay_order import limit_per_symbol, merge_bars
from backend.mesh.pipeline import bar_message, order_message, signal_message
from backend.messages import (
    ExitReason,
    OrderFilled,
    Side,
    SignalGenerated,
    SubmitOrder,
    client_order_id_for,
    stable_id,
)
from backend.risk.rules import RiskDecision
from backend.settings import Settings
from backend.strategies.base import SignalFrame, SignalPoint, Strategy
from backend.strategies.build import build_strategy
from backend.strategies.runner import StrategyRunner
from backend.venues.paper.engine import SOURCE

__all__ = ["KernelReplay", "MergedBars", "config_arrays", "kernel_signals", "merged_arrays",
           "replay", "supported"]


def supported(settings: Settings) -> str | None:
    """Why the kernel cannot replay ``settings`` (``None``: it can).

    The portfolio-VaR limit (``risk.var_limit > 0``) is not in the kernel; callers use
    :func:`backend.mesh.simulate.simulate` then.
    """
    if settings.risk.var_limit > 0:
        return "risk.var_limit > 0 (the portfolio VaR limit is not in the compiled kernel)"
    return None


def config_arrays(settings: Settings, positions: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's ``fcfg`` (float64, 14) and ``icfg`` (int64, 6) from ``settings``
    (see :func:`backend.backtest.kernel.run_kernel`); ``positions``: fill its positions
    output (a fitness needs only the equity)."""
    p, r, c = settings.paper, settings.risk, settings.compliance
    fcfg = np.array([
        p.initial_cash, p.fee_rate, p.slippage_bps, r.risk_per_trade, r.max_position_pct,
        r.max_symbol_exposure_pct, r.max_total_exposure_pct, r.min_confidence,
        r.daily_drawdown_limit, c.max_notional_per_day, c.duplicate_window_s,
        r.kelly_fraction, r.kelly_cap, r.kelly_win_rate], dtype=np.float64)
    start, end = c.trading_hours_utc
    icfg = np.array([int(r.allow_short), c.max_trades_per_day, start, end,
                     int(r.sizing == "kelly"), int(positions)], dtype=np.int64)
    return fcfg, icfg


@dataclass(frozen=True)
class MergedBars:
    """The replay order of several symbols as arrays (what the kernel reads).

    ``symbols`` sorted (the order of :func:`merge_bars`); per bar ``sym`` (index into
    ``symbols``), ``row`` (row in that symbol's candles), ``time`` (ns UTC) and prices
    (quote/base), shape ``(n,)``; the bar's seq is its position + 1.
    """

    symbols: tuple[str, ...]
    sym: np.ndarray
    row: np.ndarray
    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray


def merged_arrays(candles: Mapping[str, Candles], limit: int = 0) -> MergedBars:
    """:func:`merge_bars` (cut by :func:`limit_per_symbol`) of ``candles`` as arrays."""
    symbols = tuple(sorted(candles))
    ix = {s: k for k, s in enumerate(symbols)}
    order = limit_per_symbol(list(merge_bars(dict(candles))), limit)
    n = len(order)
    sym = np.fromiter((ix[s] for _, s, _ in order), dtype=np.int64, count=n)
    row = np.fromiter((r for _, _, r in order), dtype=np.int64, count=n)
    out = {name: np.empty(n, dtype=np.float64) for name in ("open", "high", "low", "close")}
    for k, s in enumerate(symbols):
        mask = sym == k
        c = candles[s]
        for name, arr in out.items():
            arr[mask] = np.asarray(getattr(c, name), dtype=np.float64)[row[mask]]
    time = np.fromiter((t for t, _, _ in order), dtype=np.int64, count=n)
    return MergedBars(symbols, sym, row, time, out["open"], out["high"], out["low"],
                      out["close"])


def kernel_signals(frame: SignalFrame, warmup: int) -> tuple[np.ndarray, ...]:
    """``(side int8, confidence, stop_loss, take_profit)`` of ``frame``, shape ``(n,)``,
    with no signal before bar ``warmup - 1`` (the runner's first)."""
    side = np.asarray(frame.side, dtype=np.int8).copy()
    side[: max(warmup - 1, 0)] = 0
    return (side, np.asarray(frame.confidence, dtype=np.float64),
            np.asarray(frame.stop_loss, dtype=np.float64),
            np.asarray(frame.take_profit, dtype=np.float64))


def _frame_points(frame: SignalFrame) -> Callable[[int], SignalPoint]:
    def point_at(row: int) -> SignalPoint:
        point = frame.point(row)
        assert point is not None  # only asked for rows with a signal
        return point
    return point_at


def runner_signals(strat: Strategy, params: Mapping[str, Any], candles: Candles
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                              Callable[[int], SignalPoint]]:
    """The signals of :class:`~backend.strategies.runner.StrategyRunner` fed ``candles``
    bar by bar (for a strategy without :attr:`~backend.strategies.base.Strategy.
    finite_memory`): side, confidence, stop, target arrays ``(n,)`` and the points."""
    n = len(candles)
    side = np.zeros(n, dtype=np.int8)
    conf, stop, tp = np.zeros(n), np.full(n, np.nan), np.full(n, np.nan)
    found: dict[int, SignalPoint] = {}
    runner = StrategyRunner(strat, params, symbol=candles.symbol)
    for i in range(n):
        point = runner.on_bar(int(candles.time[i]), float(candles.open[i]),
                              float(candles.high[i]), float(candles.low[i]),
                              float(candles.close[i]), float(candles.volume[i]))
        if point is not None:
            found[i] = point
            side[i] = 1 if point.side > 0 else -1
            conf[i], stop[i], tp[i] = point.confidence, point.stop_loss, point.take_profit
    return side, conf, stop, tp, found.__getitem__


@dataclass
class KernelReplay:
    """What :func:`replay` produced, as :class:`~backend.mesh.simulate.SimResult` has it.

    ``equity`` float64 ``(n,)`` and ``positions`` float64 ``(n, len(symbols), 3)``
    (quantity, average price, mark; quantity 0 = flat) after each bar of ``bars``.
    """

    bars: MergedBars
    signals: list[SignalGenerated] = field(default_factory=list)
    #: (signal id, stage, approved, rule)
    decisions: list[tuple[str, str, bool, str]] = field(default_factory=list)
    orders: list[SubmitOrder] = field(default_factory=list)
    fills: list[OrderFilled] = field(default_factory=list)
    equity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3)))
    halted_at: int | None = None  # bar seq where the circuit breaker tripped

    def equity_frame(self) -> pd.DataFrame:
        """The marks as ``Store.equity_curve`` has them (``bar_seq, bar_time, equity,
        positions``; see :func:`backend.backtest.risk.equity_frame`)."""
        syms = self.bars.symbols
        pos = []
        for row in self.positions:
            pos.append({syms[k]: {"quantity": float(row[k, 0]), "avg_price": float(row[k, 1]),
                                  "mark": float(row[k, 2])}
                        for k in np.flatnonzero(row[:, 0])})
        return pd.DataFrame({
            "bar_seq": np.arange(1, len(self.equity) + 1, dtype=np.int64),
            "bar_time": self.bars.time, "equity": self.equity, "positions": pos,
        })


def replay(
    settings: Settings,
    candles: dict[str, Candles],
    limit: int = 0,
    strategies: Mapping[str, Strategy] | None = None,
) -> KernelReplay:
    """:func:`backend.mesh.simulate.simulate` through the compiled kernel.

    Parameters and meaning as ``simulate``'s.

    Raises
    ------
    ValueError
        The settings use what the kernel does not model (:func:`supported`).
    """
    why = supported(settings)
    if why:
        raise ValueError(f"the compiled kernel cannot replay these settings: {why}")
    bars = merged_arrays(candles, limit)
    n = len(bars.time)
    s_side = np.zeros(n, dtype=np.int8)
    s_conf, s_stop, s_tp = (np.zeros(n) for _ in range(3))
    points: dict[str, tuple[Callable[[int], SignalPoint], Strategy, dict[str, Any]]] = {}
    for k, sym in enumerate(bars.symbols):
        cfg = settings.strategy_for(sym)
        strat = strategies[sym] if strategies and sym in strategies else build_strategy(cfg)
        params = strat.resolve_params(cfg.params)
        mask = bars.sym == k
        rows = bars.row[mask]
        c = candles[sym]
        count = int(rows[-1]) + 1 if rows.size else 0
        if strat.finite_memory:
            frame = strat.generate(c.slice(0, count), params)
            side, conf, stop, tp = kernel_signals(frame, strat.warmup(params))
            point_at = _frame_points(frame)
        else:  # its signals are the runner's, bar by bar (as simulate and the mesh)
            side, conf, stop, tp, point_at = runner_signals(strat, params, c.slice(0, count))
        s_side[mask], s_conf[mask], s_stop[mask], s_tp[mask] = (
            side[rows], conf[rows], stop[rows], tp[rows])
        points[sym] = (point_at, strat, params)
    restricted = {compact_symbol(s) for s in settings.compliance.restricted_symbols}
    fcfg, icfg = config_arrays(settings)
    out = kn.run_kernel(
        bars.sym, bars.time, bars.open, bars.high, bars.low, bars.close,
        s_side, s_conf, s_stop, s_tp, len(bars.symbols),
        np.array([compact_symbol(s) in restricted for s in bars.symbols], dtype=np.bool_),
        fcfg, icfg)
    (equity, positions, f_bar, f_sym, f_side, f_qty, f_price, f_fee, f_real, f_reason, f_sig,
     f_kind, d_bar, d_comp, d_risk, d_qty, d_reduce, halted_at) = out
    res = KernelReplay(bars=bars, equity=equity, positions=positions,
                       halted_at=None if halted_at < 0 else int(halted_at) + 1)
    signals: dict[int, SignalGenerated] = {}
    for j in range(len(d_bar)):
        i = int(d_bar[j])
        sym = bars.symbols[bars.sym[i]]
        point_at, strat, params = points[sym]
        row = int(bars.row[i])
        bar = bar_message(candles[sym], row, i + 1, settings.timeframe, ts=int(bars.time[i]))
        sig = signal_message(point_at(row), bar, strat.name, params, ts=int(bars.time[i]))
        signals[i] = sig
        res.signals.append(sig)
        comp = kn.COMPLIANCE_RULES[int(d_comp[j])]
        res.decisions.append((sig.id, "compliance", comp == "ok", comp))
        if d_risk[j] < 0:
            continue
        rule = kn.RISK_RULES[int(d_risk[j])]
        approved = int(d_risk[j]) <= 2
        res.decisions.append((sig.id, "risk", approved, rule))
        if approved:
            reduce = bool(d_reduce[j])
            rd = RiskDecision(
                approved=True, rule=rule, reason="", quantity=float(d_qty[j]),
                side=sig.side, reduce_only=reduce,
                stop_loss=None if reduce else sig.stop_loss,
                take_profit=None if reduce else sig.take_profit)
            res.orders.append(order_message(sig, rd, sig.id, ts=int(bars.time[i])))
    res.fills = _fills(bars, signals, f_bar, f_sym, f_side, f_qty, f_price, f_fee, f_real,
                       f_reason, f_sig, f_kind)
    return res


_SUFFIX = {kn.KIND_SL: "-sl", kn.KIND_TP: "-tp"}


def _fills(bars: MergedBars, signals: Mapping[int, SignalGenerated],
           *arrays: Sequence[Any]) -> list[OrderFilled]:
    """The kernel's fill arrays as the paper venue's :class:`OrderFilled` messages."""
    out = []
    for seq, (i, k, side, qty, price, fee, real, reason, sig_i, kind) in enumerate(
            zip(*arrays, strict=True), start=1):
        sig = signals[int(sig_i)]
        coid = client_order_id_for(sig.id) + _SUFFIX.get(int(kind), "")
        fill_id = stable_id("paper-fill", coid, seq)
        ts = int(bars.time[i])
        out.append(OrderFilled(
            id=stable_id("paper", "order_filled", fill_id), ts=ts, source=SOURCE,
            correlation_id=sig.id, fill_id=fill_id, client_order_id=coid,
            symbol=bars.symbols[int(k)], side=Side.BUY if side > 0 else Side.SELL,
            quantity=float(qty), price=float(price), fee=float(fee),
            realized_pnl=float(real), exit_reason=ExitReason(kn.EXIT_REASONS[int(reason)]),
            bar_seq=int(i) + 1, fill_time=ts, order_done=True))
    return out
