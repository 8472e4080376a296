"""Channels page: messages per channel over time (sampled every refresh and kept for a few
minutes in the session), stream lengths and consumer-group pending counts and lag.
A Streamlit page script."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.rest.models import ChannelStats
from dashboard import charts
from dashboard.common import (
    Loader,
    fmt_ts,
    page_header,
    refresh_s,
    show_flash,
    stale_marker,
    to_utc,
)
from dashboard.history import CounterHistory

HIST_KEY = "_tm_channel_rates"


def _history() -> CounterHistory:
    return st.session_state.setdefault(HIST_KEY, CounterHistory(window_s=5.0,
                                                                max_samples=300))


@st.fragment(run_every=refresh_s())
def live() -> None:
    """Rates, streams and groups (refreshed in place)."""
    loader = Loader()
    top = st.container()
    f = loader.get("channels", lambda c: c.channels())
    with top:
        loader.banner()
        show_flash()
    stats = f.value
    if stats is None:
        stale_marker(f, "channels")
        return
    hist = _history()
    if not f.stale:
        hist.add(stats.ts / 1e9, {k: float(v) for k, v in stats.messages.items()})

    st.subheader("Messages per channel")
    rows = hist.series()
    if rows:
        df = pd.DataFrame([{"time": to_utc(int(t * 1e9)), "channel": k, "per_s": r}
                           for t, k, r in rows])
        st.altair_chart(charts.rates_chart(df), width="stretch")
    else:
        st.caption("Collecting samples: the rate chart appears after two refreshes.")
    table = pd.DataFrame([{
        "channel": k, "messages (since start)": v,
        "per second (last 5 s)": hist.rate(k),
    } for k, v in stats.messages.items()])
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "per second (last 5 s)": st.column_config.NumberColumn(format="%.1f")})

    st.subheader("Streams and consumer groups")
    with st.container():
        _streams(stats)
    stale_marker(f, "channels")
    st.caption(f"As of {fmt_ts(stats.ts)} · pending: delivered but not acknowledged · "
               "lag: not yet read by the group")


def _streams(stats: ChannelStats) -> None:
    if stats.streams:
        lengths = pd.DataFrame([{"stream": s.stream, "length": s.length}
                                for s in stats.streams])
        left, right = st.columns([2, 3])
        left.altair_chart(charts.bar_chart(lengths, "stream", "length", "entries", fmt="d"),
                          width="stretch")
        groups = pd.DataFrame([{
            "stream": s.stream, "group": g.group, "consumers": g.consumers,
            "pending": g.pending, "lag": g.lag, "last delivered": g.last_delivered_id,
        } for s in stats.streams for g in s.groups])
        if groups.empty:
            right.caption("No consumer groups yet.")
        else:
            right.dataframe(groups, hide_index=True, width="stretch")


page_header("Channels", "Redis pub/sub traffic and the order path's streams.")
live()
