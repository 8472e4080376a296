"""Optimizer page: GA runs, best and mean fitness per generation, the best parameters
with in-sample and out-of-sample scores, and a button to apply them.

The control plane has no optimizer endpoint yet: the client reads
``GET /api/optimizer/runs`` and treats 404 as "no runs yet", so the page fills itself
once the optimizer issue adds it.  A Streamlit page script.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.common import (
    Loader,
    act,
    fmt_ts,
    page_header,
    show_flash,
    stale_marker,
)
from dashboard.optimizer_models import OptimizerRun


def _run(run: OptimizerRun) -> None:
    c = st.columns(4)
    c[0].metric("Status", run.status or "—")
    c[1].metric("In-sample score", "—" if run.in_sample is None else f"{run.in_sample:.4f}")
    c[2].metric("Out-of-sample score",
                "—" if run.out_of_sample is None else f"{run.out_of_sample:.4f}")
    c[3].metric("Generations", len(run.generations))
    st.caption(f"{run.strategy} {run.symbol or ''} · started {fmt_ts(run.started_ts)} · "
               f"finished {fmt_ts(run.finished_ts)}")
    if run.generations:
        df = pd.DataFrame([
            {"generation": g.generation, "series": series, "fitness": value}
            for g in run.generations for series, value in (("best", g.best), ("mean", g.mean))
        ])
        st.altair_chart(charts.fitness_chart(df), width="stretch")
    st.subheader("Best parameters")
    if run.best_params:
        st.dataframe(pd.DataFrame([{"parameter": k, "value": str(v)}
                                   for k, v in run.best_params.items()]),
                     hide_index=True, width="stretch")
        st.button("Apply these parameters", key=f"apply_{run.run_id}", type="primary",
                  disabled=run.applied, on_click=act,
                  args=(f"Apply run {run.run_id}", lambda c: c.apply_optimizer(run.run_id)))
    else:
        st.caption("No parameters yet.")


@st.fragment(run_every=5.0)
def live() -> None:
    """Runs (refreshed in place, less often: runs take minutes)."""
    loader = Loader()
    top = st.container()
    f = loader.get("optimizer_runs", lambda c: c.optimizer_runs())
    with top:
        loader.banner()
        show_flash()
    runs = f.value
    if not runs:
        if not f.stale:
            st.info("No optimizer runs yet. Runs appear here once the GA optimizer has "
                    "run (it scores parameter sets with the backtester on walk-forward "
                    "windows).", icon=":material/info:")
        stale_marker(f, "optimizer")
        return
    labels = {f"{r.run_id} · {r.strategy} {r.symbol or ''}": r for r in reversed(runs)}
    choice = st.selectbox("Run", list(labels), key="opt_run")
    _run(labels[choice])
    stale_marker(f, "optimizer")


page_header("Optimizer", "Genetic-algorithm parameter search (walk-forward).")
live()
