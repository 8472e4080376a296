"""Risk page: the halt latch / circuit breaker with today's drawdown against its limit,
exposure per symbol, VaR and CVaR; the emergency stop (with a confirmation step) and the
breaker reset (with a reason).  A Streamlit page script."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.common import (
    Loader,
    act,
    flash,
    fmt_num,
    fmt_pct,
    fmt_ts,
    page_header,
    refresh_s,
    show_flash,
    stale_marker,
)

CONFIRM_KEY = "estop_confirming"
RESULT_KEY = "estop_result"


def _breaker(loader: Loader) -> None:
    f = loader.get("breaker", lambda c: c.breaker())
    b = f.value
    if b is None:
        stale_marker(f, "circuit breaker")
        return
    with st.container(key="halt_state"):
        if b.halted:
            st.error(f"**TRADING HALTED** ({b.kind.replace('_', ' ')}) since {fmt_ts(b.since)}"
                     f" by {b.by or '?'}: {b.reason or 'no reason'}", icon=":material/block:")
        else:
            st.success("**Trading active**: the halt latch is clear.",
                       icon=":material/check_circle:")
    dd = b.daily_drawdown
    c = st.columns(4)
    c[0].metric("Daily drawdown", fmt_pct(dd))
    c[1].metric("Breaker limit", fmt_pct(b.limit))
    c[2].metric("Equity", fmt_num(b.equity))
    c[3].metric("Day start equity", fmt_num(b.day_start_equity))
    used = 0.0 if dd is None or b.limit <= 0 else min(max(dd / b.limit, 0.0), 1.0)
    st.progress(used, text=f"daily drawdown {fmt_pct(dd)} of the {fmt_pct(b.limit)} limit")
    stale_marker(f, "circuit breaker")


def _risk(loader: Loader) -> None:
    f = loader.get("risk", lambda c: c.risk())
    r = f.value
    if r is None:
        stale_marker(f, "risk")
        return
    left, right = st.columns(2)
    with left:
        st.subheader("Exposure per symbol")
        st.caption(f"Total {fmt_num(r.exposure)} ({fmt_pct(r.exposure_pct)} of equity)")
        if r.by_symbol:
            df = pd.DataFrame([{
                "symbol": s, "quantity": e.quantity, "notional": e.notional,
                "share of equity": e.exposure_pct,
            } for s, e in sorted(r.by_symbol.items())])
            st.altair_chart(charts.bar_chart(df, "symbol", "notional", "notional"),
                            width="stretch")
            st.dataframe(df, hide_index=True, width="stretch")
        else:
            st.caption("No exposure: the account is flat.")
    with right:
        st.subheader("VaR and CVaR (one bar)")
        st.caption(f"From {r.observations} bar returns of the equity curve; a loss is "
                   "positive.")
        st.dataframe(pd.DataFrame([{
            "method": e.method, "level": f"{e.level:.0%}", "VaR": fmt_pct(e.var, 3),
            "CVaR": fmt_pct(e.cvar, 3), "VaR (quote)": e.var_quote,
            "CVaR (quote)": e.cvar_quote,
        } for e in r.estimates]), hide_index=True, width="stretch")
    _analytics(r)
    stale_marker(f, "risk")


def _analytics(r) -> None:  # noqa: ANN001 - RiskFigures
    """Position VaR, the VaR limit and the portfolio metrics (when the API has them)."""
    lim, m = r.limits, r.metrics
    if lim is not None:
        c = st.columns(4)
        c[0].metric("VaR limit", "off" if not lim.var_limit else fmt_pct(lim.var_limit, 3))
        c[1].metric(f"Portfolio VaR ({lim.var_method}, {lim.var_level:.0%})",
                    fmt_pct(lim.var, 3))
        c[2].metric("Of the limit", fmt_pct(lim.ratio, 0))
        c[3].metric("Alert level (risk agent)", lim.agent_level or lim.level)
    if r.position_estimates and not r.position_observations:
        st.caption("Position VaR: no bar returns of the symbols yet (the mesh has just "
                   "started or holds nothing), so no estimate.")
    elif r.position_estimates:
        st.caption(f"Positions x the symbols' last {r.position_observations} bar returns.")
        st.dataframe(pd.DataFrame([{
            "method": e.method, "level": f"{e.level:.0%}", "bars": e.horizon,
            "VaR": fmt_pct(e.var, 3), "CVaR": fmt_pct(e.cvar, 3), "VaR (quote)": e.var_quote,
        } for e in r.position_estimates]), hide_index=True, width="stretch")
    if m is not None:
        c = st.columns(4)
        c[0].metric("Sharpe", fmt_num(m.sharpe, 2))
        c[1].metric("Sortino", fmt_num(m.sortino, 2))
        c[2].metric("Max drawdown", fmt_pct(m.max_drawdown))
        c[3].metric(f"Beta to {m.benchmark or '—'}", fmt_num(m.beta, 2))
        if m.correlation:
            st.dataframe(pd.DataFrame(m.correlation), width="stretch")


@st.fragment(run_every=refresh_s())
def live() -> None:
    """Breaker and risk figures (refreshed in place)."""
    loader = Loader()
    top = st.container()
    for section in (_breaker, _risk):  # own containers: one changing shape moves nothing
        with st.container():
            section(loader)
    with top:
        loader.banner()
        show_flash()


def _estop() -> None:
    reason = (st.session_state.get("estop_reason") or "").strip() or "dashboard emergency stop"
    st.session_state[CONFIRM_KEY] = False
    res = act("Emergency stop", lambda c: c.emergency_stop(reason, wait_s=10.0))
    if res is not None:
        st.session_state[RESULT_KEY] = res


def _reset() -> None:
    reason = (st.session_state.get("reset_reason") or "").strip()
    if len(reason) < 3:
        flash("error", "Reset: give a reason (at least 3 characters); it is audited.")
        return
    act("Reset", lambda c: c.reset_breaker(reason))


def controls() -> None:
    """Emergency stop (two steps) and the audited reset."""
    left, right = st.columns(2)
    with left, st.container(border=True):
        st.markdown("#### Emergency stop")
        st.caption("Latches HALTED, cancels every open order and flattens every position.")
        if not st.session_state.get(CONFIRM_KEY):
            st.button("Emergency stop…", key="estop_open", type="primary",
                      on_click=lambda: st.session_state.update({CONFIRM_KEY: True}))
        else:
            st.warning("Are you sure? Trading stays halted until someone resets it.")
            st.text_input("Reason (audited)", value="emergency stop from the dashboard",
                          key="estop_reason")
            c = st.columns(2)
            c[0].button("Confirm emergency stop", key="estop_confirm", type="primary",
                        on_click=_estop)
            c[1].button("Cancel", key="estop_cancel",
                        on_click=lambda: st.session_state.update({CONFIRM_KEY: False}))
        res = st.session_state.get(RESULT_KEY)
        if res is not None:
            with st.expander("Last emergency stop", expanded=False):
                st.json(res.model_dump(mode="json"))
    with right, st.container(border=True):
        st.markdown("#### Reset the breaker")
        st.caption("Clears the halt latch (kill switch or circuit breaker) so trading "
                   "resumes.")
        with st.form("reset_form", border=False):
            st.text_input("Reason (audited, at least 3 characters)", key="reset_reason")
            st.form_submit_button("Reset breaker", on_click=_reset)


page_header("Risk", "Circuit breaker, exposure, VaR / CVaR; kill switch and reset.")
live()
controls()
