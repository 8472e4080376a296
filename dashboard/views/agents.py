"""Agents page: one row per agent (state, pid, uptime, restarts, heartbeat age, messages
per second in and out, errors, last error) with stop / start / restart buttons, and the
creation of a per-symbol strategy agent.

A Streamlit page script (run by ``st.navigation`` in ``dashboard/app.py``).
"""

from __future__ import annotations

import streamlit as st

from backend.rest.models import AgentInfo
from dashboard.common import (
    STATE_COLOURS,
    Loader,
    act,
    flash,
    fmt_age,
    fmt_ts,
    page_header,
    refresh_s,
    show_flash,
    slug,
    stale_marker,
)
from dashboard.history import CounterHistory

HIST_KEY = "_tm_agent_rates"
WIDTHS = [1.7, 1.1, 0.8, 0.8, 1.1, 1.1, 0.6, 1.8, 2.4]
HEADERS = ["Agent", "State", "Uptime", "Restarts", "Heartbeat", "Msgs/s in · out", "Errors",
           "Last error", "Actions"]


def _history() -> CounterHistory:
    return st.session_state.setdefault(HIST_KEY, CounterHistory(window_s=5.0))


def _do(action: str, agent_id: str) -> None:
    act(f"{action.capitalize()} {agent_id}", lambda c: getattr(c, action)(agent_id))


def _rate(hist: CounterHistory, key: str) -> str:
    r = hist.rate(key)
    return "—" if r is None else f"{r:.1f}"


def _row(a: AgentInfo, hist: CounterHistory, stale: bool) -> None:
    key = slug(a.agent_id)
    cols = st.columns(WIDTHS, vertical_alignment="center")
    cols[0].markdown(f"**{a.agent_id}**  \n:gray[pid {a.pid or '—'}]")
    with cols[1], st.container(key=f"state_{key}"):
        colour = "gray" if stale else STATE_COLOURS.get(a.state, "gray")
        st.badge(a.state.replace("_", " "), color=colour)
    cols[2].markdown(fmt_age(a.uptime_s))
    with cols[3], st.container(key=f"restarts_{key}"):
        st.markdown(str(a.restarts))
    with cols[4], st.container(key=f"heartbeat_{key}"):
        if a.stale:
            age = "none" if a.heartbeat_age_s is None else fmt_age(a.heartbeat_age_s)
            st.markdown(f":red[**{age} · stale**]")
        else:
            st.markdown(fmt_age(a.heartbeat_age_s))
    with cols[5], st.container(key=f"rates_{key}"):
        st.markdown(f"{_rate(hist, f'{a.agent_id}|in')} · {_rate(hist, f'{a.agent_id}|out')}")
    errors = a.errors + a.dead_letters
    cols[6].markdown(f":red[{errors}]" if errors else "0")
    cols[7].markdown(f":red[{a.last_error[:120]}]" if a.last_error else "—")
    running = a.desired == "running" and a.pid is not None
    with cols[8], st.container(horizontal=True, gap="small"):
        st.button("Stop", key=f"stop_{key}", on_click=_do, args=("stop", a.agent_id),
                  disabled=stale or (a.desired == "stopped" and a.pid is None))
        st.button("Start", key=f"start_{key}", on_click=_do, args=("start", a.agent_id),
                  disabled=stale or running)
        st.button("Restart", key=f"restart_{key}", on_click=_do,
                  args=("restart", a.agent_id), disabled=stale)


@st.fragment(run_every=refresh_s())
def live() -> None:
    """The agent table (refreshed in place)."""
    loader = Loader()
    top = st.container()
    f = loader.get("agents", lambda c: c.agents())
    with top:
        loader.banner()
        show_flash()
    if f.value is None:
        stale_marker(f, "agents")
        return
    listing = f.value
    hist = _history()
    if not f.stale:
        counts: dict[str, float] = {}
        for a in listing.agents:
            counts[f"{a.agent_id}|in"] = a.messages_in
            counts[f"{a.agent_id}|out"] = a.messages_out
        hist.add(listing.ts / 1e9, counts)
    wanted = [a for a in listing.agents if a.desired == "running"]
    down = [a.agent_id for a in wanted if a.state != "running" or a.stale]
    m = st.columns(4)
    m[0].metric("Agents running", f"{len(wanted) - len(down)}/{len(wanted)}")
    m[1].metric("Stopped by operator", len(listing.agents) - len(wanted))
    m[2].metric("Restarts (total)", sum(a.restarts for a in listing.agents))
    m[3].metric("Errors + dead letters", sum(a.errors + a.dead_letters for a in listing.agents))
    slot = st.empty()  # always there, so the rows below keep their place (no flicker)
    if down and not f.stale:
        slot.warning("Not running or heartbeat stale: " + ", ".join(down),
                     icon=":material/warning:")
    with st.container(border=True):
        head = st.columns(WIDTHS)
        for col, text in zip(head, HEADERS, strict=True):
            col.markdown(f"**{text}**")
        for a in listing.agents:
            _row(a, hist, f.stale)
    stale_marker(f, "agents")
    st.caption(f"As of {fmt_ts(listing.ts)} · refreshed every {refresh_s():g} s · "
               "heartbeat in red: older than the heartbeat TTL (agent presumed dead)")


def _create() -> None:
    symbol = (st.session_state.get("create_symbol") or "").strip()
    if not symbol:
        flash("error", "Create strategy agent: enter a symbol, e.g. ETH/BTC")
        return
    act(f"Create strategy agent for {symbol}", lambda c: c.create_strategy(symbol))


def controls() -> None:
    """Create a per-symbol strategy agent."""
    with st.expander("Create a per-symbol strategy agent", expanded=False), \
            st.form("create_agent", border=False):
        st.text_input("Symbol", key="create_symbol", placeholder="ETH/BTC",
                      help="A configured symbol: ETH/BTC, ETHBTC, ETH-BTC or ETH_BTC. "
                           "Starts its strategy agent if it is not running.")
        st.form_submit_button("Create strategy agent", on_click=_create)


page_header("Agents", "Every agent process the orchestrator supervises, live from its "
            "heartbeat.")
live()
controls()
