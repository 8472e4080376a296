"""Pipeline page: recent signals with the compliance and risk decision on each (rule and
reason), so a person sees why a signal did or did not become an order; counts per stage.
A Streamlit page script."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.rest.models import DecisionView, SignalView
from dashboard import charts
from dashboard.common import Loader, fmt_ts, page_header, refresh_s, show_flash, stale_marker


def _decision(d: DecisionView | None) -> str:
    if d is None:
        return "—"
    mark = "✓" if d.approved else "✗"
    what = " · ".join(x for x in (d.rule, d.reason) if x)
    return f"{mark} {what}" if what else mark


def _outcome(s: SignalView) -> str:
    if s.outcome == "rejected":
        return f"rejected by {s.rejected_by or '?'}"
    return s.outcome


def stage_counts(signals: list[SignalView]) -> dict[str, int]:
    """How many signals reached / passed each stage."""
    comp = [s for s in signals if s.compliance is not None]
    risk = [s for s in signals if s.risk is not None]
    return {
        "signals": len(signals),
        "compliance approved": sum(s.compliance.approved for s in comp),
        "compliance rejected": sum(not s.compliance.approved for s in comp),
        "risk approved": sum(s.risk.approved for s in risk),
        "risk rejected": sum(not s.risk.approved for s in risk),
        "ordered": sum(s.outcome == "ordered" for s in signals),
        "pending": sum(s.outcome == "pending" for s in signals),
    }


@st.fragment(run_every=refresh_s())
def live() -> None:
    """Counts and the signal table (refreshed in place)."""
    limit = int(st.session_state.get("pipe_limit", 200))
    symbol = st.session_state.get("pipe_symbol", "all")
    outcome = st.session_state.get("pipe_outcome", "all")
    loader = Loader()
    top = st.container()
    f = loader.get(f"signals:{limit}", lambda c: c.signals(limit=limit))
    with top:
        loader.banner()
        show_flash()
    if f.value is None:
        stale_marker(f, "signals")
        return
    sigs = [s for s in f.value
            if (symbol == "all" or s.symbol == symbol)
            and (outcome == "all" or s.outcome == outcome)]
    counts = stage_counts(sigs)
    cols = st.columns(len(counts))
    for col, (name, n) in zip(cols, counts.items(), strict=True):
        col.metric(name, n)
    df = pd.DataFrame({"stage": list(counts), "signals": list(counts.values())})
    st.altair_chart(charts.stage_chart(df), width="stretch")
    if not sigs:
        st.info("No signals yet." if not f.value else "No signal matches the filters.")
    else:
        st.dataframe(pd.DataFrame([{
            "time (UTC)": fmt_ts(s.ts), "bar (UTC)": fmt_ts(s.bar_time, seconds=False),
            "symbol": s.symbol, "side": s.side, "confidence": s.confidence,
            "outcome": _outcome(s), "compliance": _decision(s.compliance),
            "risk": _decision(s.risk), "risk qty": s.risk.quantity if s.risk else None,
            "signal reason": s.reason or "", "strategy": s.strategy or "",
            "client order id": s.client_order_id or "",
        } for s in reversed(sigs)]), hide_index=True, width="stretch", height=520,
            column_config={
                "confidence": st.column_config.NumberColumn(format="%.2f"),
                "compliance": st.column_config.TextColumn(width="medium"),
                "risk": st.column_config.TextColumn(width="large"),
            })
    stale_marker(f, "signals")
    st.caption(f"The last {limit} signals, newest first; counts over the rows shown.")


def filters() -> None:
    """Symbol, outcome and how many signals to read."""
    cache = st.session_state.get("_tm_cache", {})
    symbols = sorted({s.symbol for key, (v, _) in cache.items() if key.startswith("signals:")
                      for s in (v or [])})
    c = st.columns([1, 1, 2])
    c[0].selectbox("Symbol", ["all", *symbols], key="pipe_symbol")
    c[1].selectbox("Outcome", ["all", "ordered", "rejected", "pending"], key="pipe_outcome")
    c[2].select_slider("Signals to read", [50, 100, 200, 500, 1000], value=200,
                       key="pipe_limit")


page_header("Pipeline", "Signal → compliance → risk → order: every decision with its rule "
            "and reason.")
filters()
live()
