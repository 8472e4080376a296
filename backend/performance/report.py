"""The performance report of a run: round-trip trades, per-symbol and total statistics.

Definitions (money in quote currency, times in ns since the Unix epoch, fractions not %):

* **Trade** (round trip): per symbol, a trade opens when the position leaves 0 and
  closes when it returns to 0.  A fill that flips the position closes one trade and
  opens another with the remainder; its fee is split pro rata to quantity.
  ``entry_price``/``exit_price`` are quantity-weighted averages of the entry/exit
  fills, ``quantity`` the total entered, ``gross_pnl = dir * exit_qty * (exit_price -
  entry_price)`` (``dir`` +1 long, -1 short), ``fees`` all fees of the trade's fills,
  ``net_pnl = gross_pnl - fees``, ``return_on_notional = net_pnl / (quantity *
  entry_price)``, ``exit_reason`` that of the closing fill.  Trades still open at the
  end are listed in ``open_trades`` (``quantity`` = open quantity, ``gross_pnl`` the
  part realised by partial exits at the average entry price) and not counted below.
* **Counts**: ``wins`` are closed trades with ``net_pnl > 0``, ``losses`` with
  ``net_pnl < 0``; ``win_rate = wins / trades``; ``profit_factor = sum(winning net) /
  |sum(losing net)|`` (``None`` without losing trades); ``net_return = net_pnl /
  initial_cash``.
* **Curves**: the timeline is the equity DataFrame's ``bar_time`` (one point per
  distinct time, the last mark wins: several symbols' bars share a time).  The total
  curve is the account equity.  A symbol's curve is ``initial_cash`` + its P&L: marked
  to market (``cash flows - fees + position * mark``, the mark being the last known
  one at or before the bar, else the last fill price) when marks are known (the
  ``marks`` argument or the equity's ``positions`` column), else realised net P&L
  stepping at trade exit times.  A fill counts at bars with ``bar_time >= fill_time``.
* **Curve stats**: simple returns between consecutive points; ``sharpe`` and
  ``sortino`` are :func:`empyrical.sharpe_ratio`/:func:`empyrical.sortino_ratio` with
  ``annualization=periods_per_year`` (5-minute bars 24/7: ``365*24*12``);
  ``max_drawdown = -empyrical.max_drawdown`` (a positive fraction); ``exposure`` is
  the fraction of timeline points with an open position (any symbol for the total).
  An undefined value (fewer than two points, zero variance, no downside) is ``None``,
  never NaN or infinity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import empyrical
import numpy as np
import orjson
import pandas as pd
from pydantic import BaseModel, Field
from rich import box
from rich.console import Console
from rich.table import Table

from backend.common import PERIODS_5M_24_7, finite_or_none, json_safe
from backend.messages import OrderFilled, Side
from backend.rest.trades import Trade

_EPS = 1e-9  # relative quantity tolerance for "the position is back to 0"


class Stats(BaseModel):
    """Statistics of one symbol or of the whole account (see the module docstring)."""

    trades: int = 0
    wins: int = 0
    losses: int = 0
    win_rate: float | None = None
    fees: float = 0.0
    gross_pnl: float = 0.0
    net_pnl: float = 0.0
    net_return: float = 0.0
    sharpe: float | None = None
    sortino: float | None = None
    max_drawdown: float | None = None
    exposure: float | None = None
    profit_factor: float | None = None
    open_trades: int = 0


class Report(BaseModel):
    """Performance report of one run (backtest or mesh replay)."""

    initial_cash: float
    final_equity: float | None = None
    equity_return: float | None = None  # final_equity / initial_cash - 1
    periods_per_year: float
    start_time: int | None = None  # first timeline point, ns
    end_time: int | None = None
    bars: int = 0
    curve_mode: Literal["mark_to_market", "realized"] = "realized"
    fees_paid: float = 0.0  # all fills, including those of open trades
    wall_time_s: float | None = None
    messages_per_channel: dict[str, int] = Field(default_factory=dict)
    orders_by_status: dict[str, int] = Field(default_factory=dict)
    total: Stats = Field(default_factory=Stats)
    symbols: dict[str, Stats] = Field(default_factory=dict)
    trades: list[Trade] = Field(default_factory=list)
    open_trades: list[Trade] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)

    def to_json(self, indent: bool = False) -> bytes:
        """JSON bytes (orjson); NaN and infinities become ``null``."""
        opt = orjson.OPT_INDENT_2 if indent else 0
        return orjson.dumps(json_safe(self.model_dump(mode="json")), option=opt)


# ---------------------------------------------------------------- trades
def _norm(f: OrderFilled | Mapping[str, Any]) -> dict[str, Any]:
    d = f.model_dump() if isinstance(f, OrderFilled) else dict(f)
    return {
        "symbol": str(d["symbol"]), "sign": Side(str(d["side"]).upper()).sign,
        "quantity": float(d["quantity"]), "price": float(d["price"]),
        "fee": float(d.get("fee") or 0.0), "exit_reason": str(d.get("exit_reason") or ""),
        "fill_time": int(d.get("fill_time") or 0), "bar_seq": int(d.get("bar_seq") or 0),
        "ts": int(d.get("ts") or 0),
    }


def normalize_fills(
    fills: Iterable[OrderFilled | Mapping[str, Any]], sort: bool = True,
) -> list[dict[str, Any]]:
    """Fills as plain dicts (``sign`` +1 buy / -1 sell), ordered by (bar seq, fill time, ts)."""
    out = [_norm(f) for f in fills]
    if sort:
        out.sort(key=lambda f: (f["bar_seq"], f["fill_time"], f["ts"]))
    return out


class _Open:
    """Accumulator of the trade currently open on one symbol."""

    def __init__(self, f: dict[str, Any], qty: float, fee: float) -> None:
        self.dir, self.symbol = f["sign"], f["symbol"]
        self.entry_time, self.entry_seq = f["fill_time"], f["bar_seq"]
        self.entry_qty = self.entry_val = self.exit_qty = self.exit_val = self.fees = 0.0
        self.open_qty, self.fills = 0.0, 0
        self.add(f, qty, fee)

    def add(self, f: dict[str, Any], qty: float, fee: float) -> None:
        self.entry_qty += qty
        self.entry_val += qty * f["price"]
        self.open_qty += qty
        self.fees += fee
        self.fills += 1

    def reduce(self, f: dict[str, Any], qty: float, fee: float) -> None:
        self.exit_qty += qty
        self.exit_val += qty * f["price"]
        self.open_qty -= qty
        self.fees += fee
        self.fills += 1

    def trade(self, closing: dict[str, Any] | None) -> Trade:
        entry_px = self.entry_val / self.entry_qty
        exit_px = self.exit_val / self.exit_qty if self.exit_qty > 0 else None
        gross = 0.0 if exit_px is None else self.dir * self.exit_qty * (exit_px - entry_px)
        net = gross - self.fees
        return Trade(
            symbol=self.symbol, side="long" if self.dir > 0 else "short",
            entry_time=self.entry_time, entry_bar_seq=self.entry_seq,
            exit_time=closing["fill_time"] if closing else None,
            exit_bar_seq=closing["bar_seq"] if closing else None,
            entry_price=entry_px, exit_price=exit_px if closing else None,
            quantity=self.entry_qty if closing else self.open_qty,
            gross_pnl=gross, fees=self.fees, net_pnl=net,
            return_on_notional=net / self.entry_val if closing and self.entry_val else None,
            exit_reason=closing["exit_reason"] if closing else None, fills=self.fills,
        )


def extract_trades(
    fills: Iterable[OrderFilled | Mapping[str, Any]], sort: bool = True,
) -> tuple[list[Trade], list[Trade]]:
    """Round trips from fills.

    Parameters
    ----------
    fills
        :class:`OrderFilled` messages or dicts with the same fields (e.g. rows of
        ``Store.fills()``).
    sort
        Order by (bar seq, fill time, ts) first; ``False`` keeps the given order.

    Returns
    -------
    closed, open
        Closed trades ordered by exit, then trades still open at the end.
    """
    return _trades(normalize_fills(fills, sort))


def _trades(fills: list[dict[str, Any]]) -> tuple[list[Trade], list[Trade]]:
    book: dict[str, _Open] = {}
    closed: list[Trade] = []
    for f in fills:
        q, fee, sym = f["quantity"], f["fee"], f["symbol"]
        if q <= 0:
            continue
        cur = book.get(sym)
        if cur is None:
            book[sym] = _Open(f, q, fee)
            continue
        if f["sign"] == cur.dir:
            cur.add(f, q, fee)
            continue
        close_q = min(q, cur.open_qty)
        cur.reduce(f, close_q, fee * close_q / q)
        if cur.open_qty <= _EPS * max(cur.entry_qty, q):
            closed.append(cur.trade(f))
            del book[sym]
            rest = q - close_q
            if rest > _EPS * q:
                book[sym] = _Open(f, rest, fee * rest / q)
    return closed, [t.trade(None) for t in book.values()]


# ---------------------------------------------------------------- curves and stats

def curve_stats(curve: Sequence[float] | np.ndarray, periods_per_year: float) -> dict[str, Any]:
    """Sharpe, Sortino and max drawdown (positive fraction) of a value curve.

    Returns ``None`` for each value that is undefined (fewer than two points, zero
    variance, no downside returns).
    """
    v = np.asarray(curve, dtype=float)
    if len(v) < 2:
        return {"sharpe": None, "sortino": None, "max_drawdown": None}
    r = v[1:] / v[:-1] - 1.0
    mdd = finite_or_none(empyrical.max_drawdown(r))
    return {
        "sharpe": finite_or_none(empyrical.sharpe_ratio(r, annualization=periods_per_year)),
        "sortino": finite_or_none(empyrical.sortino_ratio(r, annualization=periods_per_year)),
        "max_drawdown": None if mdd is None else abs(mdd),
    }


def _timeline(equity: pd.DataFrame | None) -> pd.DataFrame:
    if equity is None or len(equity) == 0:
        return pd.DataFrame({"bar_time": pd.Series(dtype="int64"), "equity": []})
    eq = equity.sort_values("bar_seq", kind="stable") if "bar_seq" in equity else equity
    eq = eq.drop_duplicates("bar_time", keep="last").sort_values("bar_time", kind="stable")
    return eq.reset_index(drop=True)


def marks_from_equity(equity: pd.DataFrame) -> pd.DataFrame | None:
    """``bar_time, symbol, mark`` rows from the equity's ``positions`` column, if any."""
    if equity is None or "positions" not in equity or len(equity) == 0:
        return None
    rows = [(int(t), sym, float(p["mark"]))
            for t, pos in zip(equity["bar_time"], equity["positions"], strict=True)
            if isinstance(pos, Mapping) for sym, p in pos.items()]
    return pd.DataFrame(rows, columns=["bar_time", "symbol", "mark"]) if rows else None


def _asof(times: np.ndarray, values: np.ndarray, at: np.ndarray, default: float) -> np.ndarray:
    """Value of the last ``times <= at`` (``times`` sorted), else ``default``."""
    idx = np.searchsorted(times, at, side="right") - 1
    out = np.full(len(at), default, dtype=float)
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


def _symbol_curve(
    fl: list[dict[str, Any]], closed: list[Trade], t: np.ndarray,
    marks: pd.DataFrame | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(P&L, position) of one symbol at the timeline ``t``."""
    fl = sorted(fl, key=lambda f: f["fill_time"])
    ft = np.array([f["fill_time"] for f in fl], dtype=np.int64)
    signed = np.array([f["sign"] * f["quantity"] for f in fl], dtype=float)
    px = np.array([f["price"] for f in fl], dtype=float)
    pos = _asof(ft, np.cumsum(signed), t, 0.0)
    pos[np.abs(pos) <= _EPS * np.abs(signed).max(initial=0.0)] = 0.0
    if marks is None:
        ex = sorted((tr.exit_time or 0, tr.net_pnl) for tr in closed)
        et = np.array([e[0] for e in ex], dtype=np.int64)
        pnl = _asof(et, np.cumsum([e[1] for e in ex]), t, 0.0)
        return pnl, pos
    fees = np.array([f["fee"] for f in fl], dtype=float)
    cash = _asof(ft, np.cumsum(-signed * px - fees), t, 0.0)
    mark = _asof(ft, px, t, np.nan)
    if len(marks):
        m = marks.sort_values("bar_time", kind="stable")
        mk = _asof(m["bar_time"].to_numpy(np.int64), m["mark"].to_numpy(float), t, np.nan)
        mark = np.where(np.isnan(mk), mark, mk)
    return cash + pos * np.nan_to_num(mark), pos


def symbol_curves(
    fills: Iterable[OrderFilled | Mapping[str, Any]],
    equity: pd.DataFrame | None,
    *,
    marks: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The timeline and every symbol's curves, as :func:`build_report` computes them.

    Returns
    -------
    timeline, curves
        ``timeline``: the equity rows, one per distinct ``bar_time`` (last mark wins),
        ascending; ``curves[symbol] = (pnl, position)``, float64 arrays on that
        timeline: the symbol's P&L (quote, mark to market when marks are known) and
        signed position (base units).
    """
    fl = normalize_fills(fills)
    closed, _ = _trades(fl)
    tl = _timeline(equity)
    t = tl["bar_time"].to_numpy(np.int64)
    if marks is None:
        marks = marks_from_equity(tl)
    curves = {}
    for sym in sorted({f["symbol"] for f in fl}):
        sm = None if marks is None else marks[marks["symbol"] == sym]
        curves[sym] = _symbol_curve([f for f in fl if f["symbol"] == sym],
                                    [x for x in closed if x.symbol == sym], t, sm)
    return tl, curves


def _stats(
    closed: list[Trade], n_open: int, curve: np.ndarray, open_mask: np.ndarray | None,
    initial_cash: float, ppy: float,
) -> Stats:
    nets = [t.net_pnl for t in closed]
    wins, losses = [x for x in nets if x > 0], [x for x in nets if x < 0]
    net = float(sum(nets))
    return Stats(
        trades=len(closed), wins=len(wins), losses=len(losses),
        win_rate=len(wins) / len(closed) if closed else None,
        fees=float(sum(t.fees for t in closed)), gross_pnl=float(sum(t.gross_pnl for t in closed)),
        net_pnl=net, net_return=net / initial_cash,
        exposure=float(open_mask.mean()) if open_mask is not None and len(open_mask) else None,
        profit_factor=sum(wins) / -sum(losses) if losses else None,
        open_trades=n_open, **curve_stats(curve, ppy),
    )


def build_report(
    fills: Iterable[OrderFilled | Mapping[str, Any]],
    equity: pd.DataFrame | None,
    initial_cash: float,
    periods_per_year: float = PERIODS_5M_24_7,
    extra: Mapping[str, Any] | None = None,
    *,
    marks: pd.DataFrame | None = None,
) -> Report:
    """Build the performance report of a run.

    Parameters
    ----------
    fills
        All fills of the run (:class:`OrderFilled` or dicts, e.g. ``Store.fills()``).
    equity
        Account equity marks: columns ``bar_time`` (ns) and ``equity`` (quote), and
        optionally ``bar_seq`` (orders marks sharing a time) and ``positions``
        (``{symbol: {"mark": price, ...}}``, used as marks).
    initial_cash
        Starting cash of the account (quote currency, > 0).
    periods_per_year
        Timeline points per year for annualisation (5-minute bars 24/7: 105 120).
    extra
        Mesh counters: ``messages_per_channel``, ``orders_by_status``,
        ``wall_time_s``, ``bars``; any other key is kept in ``Report.extra``.
    marks
        Optional per-symbol prices: columns ``bar_time, symbol, mark``.

    Returns
    -------
    Report
    """
    extra = dict(extra or {})
    fl = normalize_fills(fills)
    closed, still_open = _trades(fl)
    tl = _timeline(equity)
    t = tl["bar_time"].to_numpy(np.int64)
    if marks is None:
        marks = marks_from_equity(tl)
    symbols = sorted({f["symbol"] for f in fl})
    per_sym: dict[str, Stats] = {}
    any_open = np.zeros(len(t), dtype=bool)
    for sym in symbols:
        cl = [x for x in closed if x.symbol == sym]
        sm = None if marks is None else marks[marks["symbol"] == sym]
        pnl, pos = _symbol_curve([f for f in fl if f["symbol"] == sym], cl, t, sm)
        any_open |= pos != 0
        n_open = sum(x.symbol == sym for x in still_open)
        per_sym[sym] = _stats(cl, n_open, initial_cash + pnl, pos != 0, initial_cash,
                              periods_per_year)
    eq = tl["equity"].to_numpy(float)
    total = _stats(closed, len(still_open), eq, any_open, initial_cash, periods_per_year)
    final = finite_or_none(eq[-1]) if len(eq) else None
    known = {"messages_per_channel", "orders_by_status", "wall_time_s", "bars"}
    return Report(
        initial_cash=initial_cash, final_equity=final,
        equity_return=final / initial_cash - 1 if final is not None else None,
        periods_per_year=periods_per_year,
        start_time=int(t[0]) if len(t) else None, end_time=int(t[-1]) if len(t) else None,
        bars=int(extra.get("bars") or len(t)),
        curve_mode="realized" if marks is None else "mark_to_market",
        fees_paid=float(sum(f["fee"] for f in fl)),
        wall_time_s=finite_or_none(extra.get("wall_time_s")),
        messages_per_channel={str(k): int(v) for k, v in
                              (extra.get("messages_per_channel") or {}).items()},
        orders_by_status={str(k): int(v) for k, v in
                          (extra.get("orders_by_status") or {}).items()},
        total=total, symbols=per_sym, trades=closed, open_trades=still_open,
        extra=json_safe({k: v for k, v in extra.items() if k not in known}),
    )


# ---------------------------------------------------------------- rendering
def _fmt(x: float | None, spec: str = ".4g") -> str:
    return "-" if x is None else format(x, spec)


def render_table(report: Report) -> Table:
    """The per-symbol and total statistics as a :class:`rich.table.Table`."""
    table = Table(title=f"Performance ({report.bars} bars, initial cash "
                        f"{report.initial_cash:g})", box=box.SIMPLE_HEAD, pad_edge=False,
                  padding=0, show_edge=False)
    cols = ["symbol", "trades", "win", "net P&L", "return", "fees", "Sharpe",
            "Sortino", "max DD", "expo", "PF", "open"]
    for c in cols:
        table.add_column(c, justify="left" if c == "symbol" else "right", no_wrap=True)
    rows = [*report.symbols.items(), ("TOTAL", report.total)]
    for i, (name, s) in enumerate(rows):
        table.add_row(
            name, str(s.trades), _fmt(s.win_rate, ".1%"), _fmt(s.net_pnl, ".4g"),
            _fmt(s.net_return, ".2%"), _fmt(s.fees, ".4g"), _fmt(s.sharpe, ".2f"),
            _fmt(s.sortino, ".2f"), _fmt(s.max_drawdown, ".2%"), _fmt(s.exposure, ".1%"),
            _fmt(s.profit_factor, ".2f"), str(s.open_trades),
            end_section=i == len(rows) - 2, style="bold" if name == "TOTAL" else None,
        )
    return table


def print_report(report: Report, console: Console | None = None) -> None:
    """Print the statistics table and the run's counters with rich."""
    console = console or Console()
    console.print(render_table(report))
    console.print(
        f"final equity {_fmt(report.final_equity, '.8g')} "
        f"(return {_fmt(report.equity_return, '.2%')}), fees paid {report.fees_paid:.6g}, "
        f"curves: {report.curve_mode}, wall time {_fmt(report.wall_time_s, '.1f')} s"
    )
    for title, counts in (("messages per channel", report.messages_per_channel),
                          ("orders by status", report.orders_by_status)):
        if counts:
            console.print(f"{title}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
