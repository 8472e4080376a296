"""Altair charts of the dashboard (time axes in UTC, labelled so)."""

from __future__ import annotations

import altair as alt
import pandas as pd

UTC_AXIS = alt.Axis(title="time (UTC)", format="%m-%d %H:%M", labelOverlap=True)


def _time(field: str = "time") -> alt.X:
    return alt.X(f"{field}:T", axis=UTC_AXIS, scale=alt.Scale(type="utc"))


def equity_chart(df: pd.DataFrame, height: int = 260) -> alt.Chart:
    """Equity over time (``time``, ``equity``)."""
    return alt.Chart(df).mark_line(interpolate="step-after").encode(
        x=_time(),
        y=alt.Y("equity:Q", title="equity", scale=alt.Scale(zero=False)),
        tooltip=[alt.Tooltip("label:N", title="time (UTC)"),
                 alt.Tooltip("equity:Q", format=".6f")],
    ).properties(height=height)


def drawdown_chart(df: pd.DataFrame, height: int = 160) -> alt.Chart:
    """Drawdown from the running peak, drawn below zero (``time``, ``drawdown``)."""
    data = df.assign(dd=-df["drawdown"])
    return alt.Chart(data).mark_area(color="#d62728", opacity=0.5,
                                     interpolate="step-after").encode(
        x=_time(),
        y=alt.Y("dd:Q", title="drawdown", axis=alt.Axis(format="%"), stack=None),
        tooltip=[alt.Tooltip("label:N", title="time (UTC)"),
                 alt.Tooltip("drawdown:Q", format=".2%")],
    ).properties(height=height)


def bar_chart(df: pd.DataFrame, x: str, y: str, title: str, fmt: str = ".6f",
              height: int = 220, signed: bool = False) -> alt.Chart:
    """Bars of ``y`` per ``x`` (green/red by sign when ``signed``)."""
    enc: dict = {
        "x": alt.X(f"{x}:N", title=None, sort=None),
        "y": alt.Y(f"{y}:Q", title=title),
        "tooltip": [alt.Tooltip(f"{x}:N"), alt.Tooltip(f"{y}:Q", format=fmt)],
    }
    if signed:
        enc["color"] = alt.condition(f"datum['{y}'] >= 0", alt.value("#2ca02c"),
                                     alt.value("#d62728"))
    return alt.Chart(df).mark_bar().encode(**enc).properties(height=height)


#: Green for what passed, red for what was refused, blue for signals, grey for pending.
GREEN, RED, BLUE, GREY = "#2ca02c", "#d62728", "#1f77b4", "#7f7f7f"


def stage_colour(stage: str) -> str:
    """The colour of a pipeline stage's bar (``risk rejected`` red, ``ordered`` green)."""
    if "rejected" in stage:
        return RED
    if "approved" in stage or stage == "ordered":
        return GREEN
    return BLUE if stage == "signals" else GREY


def stage_chart(df: pd.DataFrame, height: int = 230) -> alt.Chart:
    """Horizontal bars: signals per pipeline stage (``stage``, ``signals``)."""
    stages = list(df["stage"])
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("stage:N", title=None, sort=None,
                axis=alt.Axis(labelOverlap=False, labelLimit=200)),
        x=alt.X("signals:Q", title="signals", axis=alt.Axis(tickMinStep=1, tickCount=8)),
        color=alt.Color("stage:N", legend=None, sort=None, scale=alt.Scale(
            domain=stages, range=[stage_colour(s) for s in stages])),
        tooltip=["stage:N", "signals:Q"],
    ).properties(height=height)


def rates_chart(df: pd.DataFrame, height: int = 300) -> alt.Chart:
    """Messages per second per channel over time (``time``, ``channel``, ``per_s``)."""
    return alt.Chart(df).mark_line().encode(
        x=alt.X("time:T", scale=alt.Scale(type="utc"),
                axis=alt.Axis(title="time (UTC)", format="%H:%M:%S")),
        y=alt.Y("per_s:Q", title="messages / s"),
        color=alt.Color("channel:N", legend=alt.Legend(orient="right")),
        tooltip=[alt.Tooltip("channel:N"), alt.Tooltip("per_s:Q", format=".1f")],
    ).properties(height=height)


def fitness_chart(df: pd.DataFrame, height: int = 260) -> alt.Chart:
    """Best and mean fitness per generation (``generation``, ``series``, ``fitness``)."""
    return alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("generation:Q", title="generation", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("fitness:Q", title="fitness", scale=alt.Scale(zero=False)),
        color=alt.Color("series:N", title=None),
        tooltip=["generation:Q", "series:N", alt.Tooltip("fitness:Q", format=".4f")],
    ).properties(height=height)
