"""The self-evaluation report: how the mesh traded, by symbol, strategy and regime, and
what the optimizer suggests changing.

Definitions (money in quote currency, times ns UTC, fractions not %):

* **Trades** are the round trips of :func:`backend.performance.report.extract_trades` (paired over
  *all* fills), kept when their entry fill is at or after ``since``.  ``win_rate``,
  ``profit_factor``, P&L and fees as in :mod:`backend.performance.report`; a trade's duration is
  ``exit_time - entry_time`` of its fills (seconds), averaged over closed trades.
* Each trade is attributed to its **entry signal**: the entry fill's ``correlation_id``
  is the id of the signal the order descends from; the signal gives the ``strategy``
  and the ``regime`` (``""``/missing -> ``"unknown"``; ``"unknown"`` strategy too when
  the signal is not in the database).
* **Curve figures** use the equity marks with ``bar_time >= since`` (one point per
  time, the last mark wins): ``max_drawdown`` (positive fraction), ``sharpe`` /
  ``sortino`` (:func:`backend.performance.report.curve_stats`, annualised with
  ``periods_per_year`` from the timeframe), ``equity_return = end / start - 1``.
* **Best / worst** symbol and strategy: highest / lowest net P&L over closed trades.
* **Suggestions**: per symbol and strategy, the latest *finished* optimizer run.  If the
  optimizer agent judged it (a :class:`~backend.optimizer.proposal.ProposalRecord`),
  the running parameters and their score on the same out-of-sample windows (the
  baseline) come from there; otherwise (a ``tradingmesh optimize`` run) the running
  parameters are the configured ones and there is no baseline.  A run is *suggested*
  when its mean out-of-sample score is defined and beats the baseline (or there is
  none), its parameters differ from the running ones, it is not flagged overfit and not
  applied yet.  ``changes`` lists the parameters that differ.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from backend.common import finite_or_none
from backend.messages import Side, now_ns
from backend.optimizer.proposal import proposal_key
from backend.performance.report import PERIODS_5M_24_7, Trade, curve_stats, extract_trades
from backend.rest.report import (
    BreakdownRow,
    EvaluationReport,
    ParamChange,
    ParamSuggestion,
    ReportPoint,
)
from backend.strategies.registry import get_strategy

Row = Mapping[str, Any]
UNKNOWN = "unknown"
#: Most points of the curve kept in the report body.
MAX_CURVE_POINTS = 500
_UNITS_PER_YEAR = {"m": 365 * 24 * 60, "h": 365 * 24, "d": 365, "w": 52}


def periods_per_year(timeframe: str) -> float:
    """Bars per year of a 24/7 market for a timeframe such as ``5m``, ``1h``, ``1d``
    (5-minute bars if it cannot be parsed)."""
    m = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", timeframe or "")
    if not m or int(m.group(1)) <= 0:
        return float(PERIODS_5M_24_7)
    return _UNITS_PER_YEAR[m.group(2)] / int(m.group(1))


def _entry_signals(fills: Iterable[Row]) -> dict[tuple[str, int, int, int], str]:
    """``(symbol, fill_time, bar_seq, sign) -> correlation_id`` of every fill."""
    out: dict[tuple[str, int, int, int], str] = {}
    for f in fills:
        key = (str(f["symbol"]), int(f.get("fill_time") or 0), int(f.get("bar_seq") or 0),
               Side(str(f["side"]).upper()).sign)
        out.setdefault(key, str(f.get("correlation_id") or ""))
    return out


def breakdown(trades: Sequence[Trade], key: Callable[[Trade], str]) -> list[BreakdownRow]:
    """Closed trades grouped by ``key``, sorted by net P&L (best first)."""
    groups: dict[str, list[Trade]] = {}
    for t in trades:
        groups.setdefault(key(t), []).append(t)
    rows = [_row(name, ts) for name, ts in groups.items()]
    return sorted(rows, key=lambda r: (-r.net_pnl, r.name))


def _row(name: str, trades: Sequence[Trade]) -> BreakdownRow:
    nets = [t.net_pnl for t in trades]
    rets = [t.return_on_notional for t in trades if t.return_on_notional is not None]
    durs = [(t.exit_time - t.entry_time) / 1e9 for t in trades if t.exit_time is not None]
    wins = sum(1 for x in nets if x > 0)
    return BreakdownRow(
        name=name, trades=len(trades), wins=wins, losses=sum(1 for x in nets if x < 0),
        win_rate=wins / len(trades) if trades else None,
        gross_pnl=float(sum(t.gross_pnl for t in trades)),
        fees=float(sum(t.fees for t in trades)), net_pnl=float(sum(nets)),
        avg_return=float(np.mean(rets)) if rets else None,
        avg_duration_s=float(np.mean(durs)) if durs else None)


def _curve(equity: pd.DataFrame | None, since: int | None) -> pd.DataFrame:
    if equity is None or len(equity) == 0:
        return pd.DataFrame({"bar_time": pd.Series(dtype="int64"), "equity": []})
    eq = equity.sort_values("bar_seq", kind="stable") if "bar_seq" in equity else equity
    eq = eq.drop_duplicates("bar_time", keep="last").sort_values("bar_time", kind="stable")
    if since is not None:
        eq = eq[eq["bar_time"] >= since]
    return eq.reset_index(drop=True)


def _points(curve: pd.DataFrame) -> list[ReportPoint]:
    if curve.empty:
        return []
    eq = curve["equity"].to_numpy(float)
    peak = np.maximum.accumulate(eq)
    dd = np.where(peak > 0, (peak - eq) / np.where(peak > 0, peak, 1.0), 0.0)
    idx = np.unique(np.linspace(0, len(eq) - 1, min(len(eq), MAX_CURVE_POINTS)).astype(int))
    # keep the deepest drawdown point so the thinned curve shows it
    idx = np.union1d(idx, [int(np.argmax(dd))])
    t = curve["bar_time"].to_numpy(np.int64)
    return [ReportPoint(bar_time=int(t[i]), equity=float(eq[i]), drawdown=float(max(dd[i], 0)))
            for i in idx]


def _params_equal(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if set(a) != set(b):
        return False
    for k, v in a.items():
        w = b[k]
        if isinstance(v, int | float) and isinstance(w, int | float) \
                and not isinstance(v, bool) and not isinstance(w, bool):
            if not math.isclose(float(v), float(w), rel_tol=1e-9, abs_tol=1e-12):
                return False
        elif v != w:
            return False
    return True


def suggestion(run: Row, proposal: Row | None, running: tuple[str, dict[str, Any]] | None,
               ) -> ParamSuggestion:
    """The suggestion of one finished run (module docstring).

    Parameters
    ----------
    run
        A row of ``Store.optimizer_runs()`` (status ``finished``).
    proposal
        Its :class:`~backend.optimizer.proposal.ProposalRecord` as a dict, if any.
    running
        ``(strategy, params)`` running now for the run's symbol when there is no
        proposal record (the configuration).
    """
    symbols = list(run.get("symbols") or [])
    params = dict(run.get("best_params") or {})
    score = finite_or_none(run.get("mean_out_of_sample"))
    if score is None:
        score = finite_or_none(run.get("out_of_sample"))
    base = {
        "run_id": str(run["id"]), "symbol": ",".join(symbols), "strategy": str(run["strategy"]),
        "objective": str(run["objective"]), "finished_ts": run.get("finished_ts"),
        "in_sample": finite_or_none(run.get("mean_in_sample")
                                    if run.get("mean_in_sample") is not None
                                    else run.get("in_sample")),
        "overfit": run.get("overfit"), "params": params,
    }
    if proposal is not None:
        cur_strategy = str(proposal.get("current_strategy") or "")
        current = dict(proposal.get("current_params") or {})
        baseline = finite_or_none(proposal.get("baseline"))
        status = str(proposal.get("status") or "unjudged")
        measured, verdict = True, str(proposal.get("reason") or "")
        if proposal.get("score") is not None:
            score = finite_or_none(proposal.get("score"))
    else:
        cur_strategy, current = running if running is not None else ("", {})
        baseline, status, measured = None, "unjudged", False
        verdict = "no baseline: the running parameters were not scored on the run's windows"
    same = cur_strategy == base["strategy"] and _params_equal(params, current)
    beats = score is not None and (baseline is None or score > baseline)
    suggested = beats and not same and not base["overfit"] and status != "applied"
    why = []
    if score is None:
        why.append("no defined out-of-sample score")
    elif baseline is not None:
        why.append(f"out-of-sample {score:.4g} vs running {baseline:.4g}")
    if same:
        why.append("same parameters as running")
    if base["overfit"]:
        why.append("flagged overfit")
    if status == "applied":
        why.append("already applied")
    if verdict:
        why.append(verdict)
    if cur_strategy == base["strategy"]:
        changes = [ParamChange(name=k, current=current.get(k), suggested=params.get(k))
                   for k in sorted(set(params) | set(current))
                   if not _params_equal({k: params.get(k)}, {k: current.get(k)})]
    else:  # another strategy: every parameter is new
        changes = [ParamChange(name=k, suggested=v) for k, v in sorted(params.items())]
    return ParamSuggestion(**base, score=score, baseline=baseline, baseline_measured=measured,
                           status=status, suggested=bool(suggested), reason="; ".join(why),
                           current_strategy=cur_strategy, current_params=current,
                           changes=changes)


def latest_runs(runs: Iterable[Row]) -> list[Row]:
    """The latest finished run per (symbols, strategy), by finish time."""
    best: dict[tuple[str, str], Row] = {}
    for r in runs:
        if r.get("status") != "finished":
            continue
        key = (",".join(r.get("symbols") or []), str(r["strategy"]))
        cur = best.get(key)
        if cur is None or (r.get("finished_ts") or 0) >= (cur.get("finished_ts") or 0):
            best[key] = r
    return [best[k] for k in sorted(best)]


def build_evaluation(
    fills: Sequence[Row],
    signals: Iterable[Row],
    equity: pd.DataFrame | None,
    initial_cash: float,
    *,
    runs: Iterable[Row] = (),
    proposals: Mapping[str, Row] | None = None,
    running: Callable[[str], tuple[str, dict[str, Any]] | None] | None = None,
    since: int | None = None,
    periods: float = PERIODS_5M_24_7,
    generated_ts: int | None = None,
) -> EvaluationReport:
    """The report from database rows (pure; see the module docstring).

    Parameters
    ----------
    fills
        Fill rows (``Store.fills()``), all of them (trades are paired over all fills).
    signals
        Signal rows (``Store.signals()``): ``id``, ``strategy`` and, when recorded,
        ``regime``.
    equity
        ``Store.equity_curve()`` (``bar_seq``, ``bar_time``, ``equity``).
    initial_cash
        Starting cash (quote currency).
    runs, proposals
        Optimizer run rows and their proposal records by run id.
    running
        ``symbol -> (strategy, params)`` running now (used without a proposal record).
    since
        Window start (ns UTC); ``None`` = everything.
    periods
        Bars per year for annualisation.
    generated_ts
        Report time (ns; default now).
    """
    closed, still_open = extract_trades(fills)
    if since is not None:
        closed = [t for t in closed if t.entry_time >= since]
        still_open = [t for t in still_open if t.entry_time >= since]
    by_id = {str(s["id"]): s for s in signals}
    entry = _entry_signals(fills)

    def signal_of(t: Trade) -> Row | None:
        cid = entry.get((t.symbol, t.entry_time, t.entry_bar_seq, 1 if t.side == "long" else -1))
        return by_id.get(cid) if cid else None

    def strategy_of(t: Trade) -> str:
        s = signal_of(t)
        return str(s.get("strategy") or UNKNOWN) if s else UNKNOWN

    def regime_of(t: Trade) -> str:
        s = signal_of(t)
        return str(s.get("regime") or UNKNOWN) if s else UNKNOWN

    total = _row("total", closed)
    nets = [t.net_pnl for t in closed]
    losses = [x for x in nets if x < 0]
    curve = _curve(equity, since)
    values = curve["equity"].to_numpy(float)
    cs = curve_stats(values, periods)
    start = finite_or_none(values[0]) if values.size else None
    end = finite_or_none(values[-1]) if values.size else None
    by_symbol = breakdown(closed, lambda t: t.symbol)
    by_strategy = breakdown(closed, strategy_of)
    proposals = proposals or {}
    suggestions = []
    for run in latest_runs(runs):
        syms = list(run.get("symbols") or [])
        now_running = running(syms[0]) if running is not None and syms else None
        suggestions.append(suggestion(run, proposals.get(str(run["id"])), now_running))
    t = curve["bar_time"].to_numpy(np.int64)
    return EvaluationReport(
        generated_ts=generated_ts if generated_ts is not None else now_ns(), since=since,
        until=int(t[-1]) if t.size else None, initial_cash=initial_cash,
        start_equity=start, end_equity=end,
        equity_return=end / start - 1 if start and end is not None else None,
        bars=int(t.size), periods_per_year=periods, trades=total.trades, wins=total.wins,
        losses=total.losses, win_rate=total.win_rate, gross_pnl=total.gross_pnl,
        fees=total.fees, net_pnl=total.net_pnl,
        profit_factor=sum(x for x in nets if x > 0) / -sum(losses) if losses else None,
        avg_trade_duration_s=total.avg_duration_s, open_trades=len(still_open),
        max_drawdown=cs["max_drawdown"], sharpe=cs["sharpe"], sortino=cs["sortino"],
        by_symbol=by_symbol, by_strategy=by_strategy,
        by_regime=breakdown(closed, regime_of),
        best_symbol=by_symbol[0].name if by_symbol else None,
        worst_symbol=by_symbol[-1].name if by_symbol else None,
        best_strategy=by_strategy[0].name if by_strategy else None,
        worst_strategy=by_strategy[-1].name if by_strategy else None,
        suggestions=suggestions, equity=_points(curve))


def evaluate(store: Any, settings: Any, since: int | None = None) -> EvaluationReport:
    """:func:`build_evaluation` over a :class:`~backend.persistence.Store` and the mesh's
    settings (initial cash, timeframe, configured strategies)."""
    runs = store.optimizer_runs()
    proposals = {}
    for r in latest_runs(runs):
        rec = store.get_state(proposal_key(str(r["id"])))
        if rec is not None:
            proposals[str(r["id"])] = rec

    def running(symbol: str) -> tuple[str, dict[str, Any]] | None:
        cfg = settings.strategy_for(symbol)
        try:
            return cfg.name, dict(get_strategy(cfg.name).resolve_params(cfg.params))
        except (KeyError, ValueError):
            return cfg.name, dict(cfg.params)

    return build_evaluation(
        store.fills(), store.signals(), store.equity_curve(), settings.paper.initial_cash,
        runs=runs, proposals=proposals, running=running, since=since,
        periods=periods_per_year(settings.timeframe))
