"""Optimizer page: GA runs (best and mean fitness per generation and fold, the best
parameters with in-sample and out-of-sample scores, the proposal and an Apply button),
the parameters each strategy agent runs, and a form to start a run.

Reads ``GET /api/optimizer/runs``, ``GET /api/optimizer/runs/{id}`` and
``GET /api/strategies``; acts through ``POST /api/optimizer/runs`` and
``POST /api/optimizer/runs/{id}/apply`` (bodies of :mod:`backend.rest.models`).  A server
without the optimizer API (404) shows "no runs yet".  A Streamlit page script.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.rest.models import OptimizerRunDetail, OptimizerRunView, StrategiesView
from dashboard import charts
from dashboard.common import (
    Loader,
    act,
    fmt_ts,
    page_header,
    show_flash,
    stale_marker,
)


def _score(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"


def _value(v: object) -> str:
    """A parameter value: floats with 4 significant digits (a GA proposes 2.4117930..)."""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _params(p: dict) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in p.items())


def _flag(x: bool | None) -> str:
    return "—" if x is None else ("yes" if x else "no")


def _label(r: OptimizerRunView) -> str:
    return f"{r.run_id[:12]} · {r.strategy} {r.symbol or ''} · {r.status}"


def _chart(run: OptimizerRunDetail) -> None:
    if not run.generations:
        return
    folds = len({g.fold for g in run.generations}) > 1
    df = pd.DataFrame([
        {"generation": g.generation, "fitness": value,
         "series": f"fold {g.fold} {name}" if folds else name}
        for g in run.generations for name, value in (("best", g.best), ("mean", g.mean))
        if value is not None
    ])
    if not df.empty:
        st.altair_chart(charts.fitness_chart(df), width="stretch")


def _proposal(run: OptimizerRunDetail) -> None:
    p = run.proposal
    if p is None:
        st.caption("No verdict yet (the run is queued, running or failed)."
                   + (f" Error: {run.error}" if run.error else ""))
        return
    text = {"proposed": "Proposed, waiting for approval",
            "applied": f"Applied by {p.applied_by} (after bar seq {p.after_seq})",
            "not_proposed": "Not proposed"}[p.status]
    st.markdown(f"**{text}.** {p.reason}")
    st.caption(f"running {p.current_strategy}: {_params(p.current_params)} · out-of-sample "
               f"{_score(p.score)} vs running {_score(p.baseline)} (margin {p.margin:g})")


def scoring_model(sizing: object) -> str:
    """Which model scored a run, from its ``config["sizing"]``."""
    return {"risk": "the mesh's trading model (risk sizing, compliance, stops, breaker)",
            "all-in": "all-in (the whole equity on each crossing, no stops or limits)",
            }.get(str(sizing), f"sizing {sizing}")


def _run(run: OptimizerRunDetail) -> None:
    c = st.columns(5)
    c[0].metric("Status", run.status)
    c[1].metric("In-sample score", _score(run.mean_in_sample))
    c[2].metric("Out-of-sample score", _score(run.mean_out_of_sample))
    c[3].metric("Overfit", _flag(run.overfit))
    c[4].metric("Generations", len({(g.fold, g.generation) for g in run.generations}))
    st.caption(f"{run.strategy} {run.symbol or ''} · objective {run.objective} · scored by "
               f"{scoring_model(run.config.get('sizing'))} · started "
               f"{fmt_ts(run.started_ts)} · finished {fmt_ts(run.finished_ts)} · "
               f"{run.evaluations} evaluations")
    _chart(run)
    if run.folds:
        st.dataframe(pd.DataFrame([{
            "fold": f.fold, "in-sample": _score(f.in_sample),
            "out-of-sample": _score(f.out_of_sample), "overfit": _flag(f.overfit),
            "parameters": _params(f.params)} for f in run.folds]),
            hide_index=True, width="stretch")
    st.subheader("Best parameters")
    if run.best_params:
        st.dataframe(pd.DataFrame([{"parameter": k, "value": _value(v)}
                                   for k, v in run.best_params.items()]),
                     hide_index=True, width="stretch")
    else:
        st.caption("No parameters yet.")
    _proposal(run)
    st.button("Apply these parameters", key=f"apply_{run.run_id}", type="primary",
              disabled=not run.appliable, on_click=act,
              args=(f"Apply run {run.run_id}", lambda c: c.apply_optimizer(run.run_id)))


def _agents(view: StrategiesView | None) -> None:
    st.subheader("Strategy agents")
    if view is None:
        return
    st.dataframe(pd.DataFrame([{
        "agent": a.agent_id, "strategy": a.strategy, "parameters": _params(a.params),
        "source": a.source, "since bar seq": str(a.since_seq) if a.since_seq else "—",
        "run": a.run_id or "—",
        "pending": (f"{_params(a.pending.params)} after seq {a.pending.after_seq}"
                    if a.pending else "—")} for a in view.agents]),
        hide_index=True, width="stretch")


@st.fragment(run_every=5.0)
def live() -> None:
    """Runs and strategy agents (refreshed in place, less often: runs take minutes)."""
    loader = Loader()
    top = st.container()
    f = loader.get("optimizer_runs", lambda c: c.optimizer_runs())
    agents = loader.get("strategies", lambda c: c.strategies())
    with top:
        loader.banner()
        show_flash()
    runs = f.value
    if not runs:
        if not f.stale:
            st.info("No optimizer runs yet. Start one below, or set `optimizer.interval_s`: "
                    "the optimizer agent scores parameter sets with the backtester on "
                    "walk-forward windows of the bars the mesh recorded.",
                    icon=":material/info:")
    else:
        labels = {_label(r): r for r in reversed(runs)}
        choice = st.selectbox("Run", list(labels), key="opt_run")
        chosen = labels[choice]
        d = loader.get(f"optimizer_run:{chosen.run_id}",
                       lambda c: c.optimizer_run(chosen.run_id))
        if d.value is not None:
            _run(d.value)
    stale_marker(f, "optimizer")
    _agents(agents.value)
    stale_marker(agents, "strategies")


def _start() -> None:
    """Form callback (runs before the rerun, so its message shows at once)."""
    ss = st.session_state
    symbol = ss["opt_symbol"]
    act(f"Optimizer run for {symbol}", lambda c: c.start_optimizer(
        symbol, population=int(ss["opt_population"]), generations=int(ss["opt_generations"]),
        walk_forward=int(ss["opt_folds"]), seed=int(ss["opt_seed"])))


def start_form() -> None:
    """Queue a run (the server's ``[optimizer]`` configuration fills in the rest)."""
    with st.expander("Start a run"), st.form("opt_start"):
        c = st.columns(5)
        c[0].text_input("Symbol", value="ETH/BTC", key="opt_symbol")
        c[1].number_input("Population", 4, 1000, 30, key="opt_population")
        c[2].number_input("Generations", 0, 1000, 10, key="opt_generations")
        c[3].number_input("Walk-forward folds", 1, 20, 3, key="opt_folds")
        c[4].number_input("Seed", 0, 2**31 - 1, 0, key="opt_seed")
        st.form_submit_button("Start", on_click=_start)


page_header("Optimizer", "Genetic-algorithm parameter search (walk-forward) and hot reload.")
live()
start_form()
