"""Interactive HTML chart of a backtest (plotly): equity and drawdown, trades marked.

Top panel: the account equity (quote currency) at each bar's close, with a marker at
every entry (triangle up for a long, down for a short) and exit (cross), placed on the
curve at the fill time; hovering shows the trade.  Bottom panel: the drawdown from the
running peak, in percent.  The file is self-contained (plotly.js inlined), so it opens
offline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from backend.backtest.models import BacktestResult, BacktestTrade

__all__ = ["figure", "write_plot"]


def _at(t: np.ndarray, v: np.ndarray, when: list[int]) -> np.ndarray:
    """Curve value at the last point at or before each time."""
    idx = np.clip(np.searchsorted(t, np.asarray(when, dtype=np.int64), side="right") - 1,
                  0, len(t) - 1)
    return v[idx]


def _label(tr: BacktestTrade, exit_: bool) -> str:
    if exit_:
        return (f"exit {tr.side} {tr.symbol}<br>size {tr.size:.8g} @ {tr.exit_price:.8g}"
                f"<br>net P&L {tr.net_pnl:+.6g} ({tr.exit_reason})")
    return f"{tr.side} {tr.symbol}<br>size {tr.size:.8g} @ {tr.entry_price:.8g}"


def figure(result: BacktestResult):  # noqa: ANN201 - plotly is imported lazily
    """The plotly ``Figure`` of ``result`` (needs ``result.curve``).

    Raises
    ------
    ImportError
        plotly is not installed.
    ValueError
        The result carries no equity curve.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    curve = result.curve
    if curve is None or len(curve.time) == 0:
        raise ValueError("the backtest result has no equity curve to plot")
    x = (np.asarray(curve.time, dtype=np.int64) // 1_000_000).astype("datetime64[ms]")
    eq = np.asarray(curve.equity, dtype=float)
    dd = (eq / np.maximum.accumulate(eq) - 1.0) * 100.0
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        row_heights=[0.72, 0.28])
    fig.add_trace(go.Scatter(x=x, y=eq, name="equity", mode="lines",
                             line={"width": 1.4, "color": "#1f77b4"}), row=1, col=1)
    trades = result.trades + result.open_trades
    t = np.asarray(curve.time, dtype=np.int64)
    groups = [
        ("long entry", [tr for tr in trades if tr.side == "long"], False, "triangle-up",
         "#2ca02c"),
        ("short entry", [tr for tr in trades if tr.side == "short"], False, "triangle-down",
         "#d62728"),
        ("exit", [tr for tr in result.trades], True, "x", "#444444"),
    ]
    for name, trs, is_exit, symbol, colour in groups:
        if not trs:
            continue
        when = [int(tr.exit_time if is_exit else tr.entry_time) for tr in trs]  # type: ignore[arg-type]
        fig.add_trace(go.Scatter(
            x=(np.asarray(when, dtype=np.int64) // 1_000_000).astype("datetime64[ms]"),
            y=_at(t, eq, when), name=name, mode="markers",
            marker={"symbol": symbol, "size": 9, "color": colour},
            text=[_label(tr, is_exit) for tr in trs], hoverinfo="text+x",
        ), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=dd, name="drawdown %", mode="lines", fill="tozeroy",
                             line={"width": 1, "color": "#d62728"}), row=2, col=1)
    s = result.stats
    title = (f"{result.strategy} {result.params} on {', '.join(result.symbols)} "
             f"({result.sizing}): return {_pct(s.total_return)}, Sharpe {_num(s.sharpe)}, "
             f"max DD {_pct(s.max_drawdown)}, {s.trades} trades")
    fig.update_layout(title={"text": title, "font": {"size": 13}}, hovermode="closest",
                      template="plotly_white", height=720,
                      legend={"orientation": "h", "y": -0.08})
    fig.update_yaxes(title_text="equity (quote)", row=1, col=1)
    fig.update_yaxes(title_text="drawdown %", row=2, col=1)
    return fig


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2%}"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def write_plot(result: BacktestResult, path: Path | str) -> Path:
    """Write the chart of ``result`` as a self-contained HTML file; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure(result).write_html(str(path), include_plotlyjs=True, full_html=True)
    return path
