"""Trading page: equity curve and drawdown, open positions with unrealised P&L, open
orders, recent fills, realised P&L by symbol.  A Streamlit page script."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.common import (
    Loader,
    fmt_num,
    fmt_pct,
    fmt_price,
    fmt_ts,
    in_quote,
    page_header,
    quote_currency,
    refresh_s,
    show_flash,
    stale_marker,
    to_utc,
)

N_FILLS = 50


def _account(loader: Loader) -> None:
    pos = loader.get("positions", lambda c: c.positions())
    pnl = loader.get("pnl", lambda c: c.pnl())
    m = st.columns(6)
    p, q = pnl.value, pos.value
    m[0].metric("Equity", fmt_num(p.equity if p else None))
    m[1].metric("Total P&L", fmt_num(p.total if p else None),
                delta=fmt_pct(p.total_return) if p and p.total_return is not None else None)
    m[2].metric("Realised (net)", fmt_num(p.realized if p else None))
    m[3].metric("Unrealised", fmt_num(p.unrealized if p else None))
    m[4].metric("Fees", fmt_num(p.fees if p else None))
    if q is None:
        m[5].metric("Trading", "—")
    else:
        m[5].metric("Trading", "HALTED" if q.halted else "active")
    slot = st.empty()
    if q is not None and q.bar_time is not None:
        slot.caption(f"Marked at bar {q.bar_seq} ({fmt_ts(q.bar_time)}); cash "
                   f"{fmt_num(q.cash)}, exposure {fmt_num(q.exposure)}")
    stale_marker(pnl, "P&L")


def _equity(loader: Loader) -> None:
    st.subheader("Equity and drawdown")
    eq = loader.get("equity", lambda c: c.equity(2000))
    if eq.value:
        # every symbol's bar is marked: keep the last mark of each bar time
        last = {p.bar_time: p for p in eq.value}
        df = pd.DataFrame({
            "time": [to_utc(t) for t in last],
            "label": [fmt_ts(t) for t in last],
            "equity": [p.equity for p in last.values()],
            "drawdown": [p.drawdown for p in last.values()],
        })
        st.altair_chart(charts.equity_chart(df), width="stretch")
        st.altair_chart(charts.drawdown_chart(df), width="stretch")
        st.caption(f"{len(df)} bars, last {df['label'].iloc[-1]}; max drawdown "
                   f"{fmt_pct(float(df['drawdown'].max()))}")
    elif not eq.stale:
        st.info("No equity marks yet: the first bar has not been marked.")
    stale_marker(eq, "equity")


def _positions(loader: Loader) -> None:
    st.subheader("Open positions")
    pos = loader.get("positions", lambda c: c.positions())
    if pos.value is not None and pos.value.positions:
        q = quote_currency([p.symbol for p in pos.value.positions])
        st.dataframe(pd.DataFrame([{
            "symbol": p.symbol, "quantity": fmt_price(p.quantity),
            in_quote("avg price", q): fmt_price(p.avg_price),
            in_quote("mark", q): fmt_price(p.mark),
            in_quote("notional", q): fmt_price(p.notional),
            in_quote("unrealised P&L", q): fmt_price(p.unrealized_pnl),
        } for p in pos.value.positions]), hide_index=True, width="stretch")
    elif pos.value is not None:
        st.caption("No open positions.")
    stale_marker(pos, "positions")


def _orders(loader: Loader) -> None:
    st.subheader("Open orders")
    orders = loader.get("open_orders", lambda c: c.open_orders())
    if orders.value:
        q = quote_currency([o.symbol for o in orders.value])
        st.dataframe(pd.DataFrame([{
            "created": fmt_ts(o.created_ts), "symbol": o.symbol, "side": o.side,
            "quantity": fmt_price(o.quantity), "status": o.status, "reduce only": o.reduce_only,
            in_quote("stop", q): fmt_price(o.stop_loss),
            in_quote("take profit", q): fmt_price(o.take_profit),
            "client order id": o.client_order_id,
        } for o in orders.value]), hide_index=True, width="stretch")
    elif orders.value is not None:
        st.caption("No open orders.")
    stale_marker(orders, "orders")


def _fills(loader: Loader) -> None:
    st.subheader(f"Recent fills (last {N_FILLS})")
    fills = loader.get("fills", lambda c: c.fills(limit=N_FILLS))
    if fills.value:
        q = quote_currency([f.symbol for f in fills.value])
        st.dataframe(pd.DataFrame([{
            "time (UTC)": fmt_ts(f.fill_time or f.ts), "symbol": f.symbol, "side": f.side,
            "quantity": fmt_price(f.quantity), in_quote("price", q): fmt_price(f.price),
            in_quote("fee", q): fmt_price(f.fee),
            in_quote("realised P&L", q): fmt_price(f.realized_pnl), "exit": f.exit_reason or "",
            "client order id": f.client_order_id or "",
        } for f in reversed(fills.value)]), hide_index=True, width="stretch",
            height="auto" if len(fills.value) <= 10 else 390)
    elif fills.value is not None:
        st.caption("No fills yet.")
    stale_marker(fills, "fills")


def _by_symbol(loader: Loader) -> None:
    st.subheader("Realised P&L by symbol")
    pnl = loader.get("pnl", lambda c: c.pnl())
    if pnl.value is not None and pnl.value.by_symbol:
        df = pd.DataFrame([{
            "symbol": s, "realised": v.realized, "unrealised": v.unrealized, "fees": v.fees,
            "trades": v.trades,
        } for s, v in sorted(pnl.value.by_symbol.items())])
        left, right = st.columns([3, 2])
        left.altair_chart(charts.bar_chart(df, "symbol", "realised", "realised P&L (net)",
                                           signed=True), width="stretch")
        right.dataframe(df, hide_index=True, width="stretch")
    elif pnl.value is not None:
        st.caption("No closed trades yet.")


@st.fragment(run_every=max(refresh_s(), 2.0))
def live() -> None:
    """Account, charts and tables (refreshed in place)."""
    loader = Loader()
    top = st.container()
    # each section in its own container: a section that changes shape (data appears, the
    # API goes down) does not move the others, so nothing is redrawn needlessly
    for section in (_account, _equity):
        with st.container():
            section(loader)
    left, right = st.columns(2)
    with left:
        _positions(loader)
    with right:
        _orders(loader)
    for section in (_fills, _by_symbol):
        with st.container():
            section(loader)
    with top:
        loader.banner()
        show_flash()


page_header("Trading", "Paper account: equity, positions, orders and fills.")
live()
