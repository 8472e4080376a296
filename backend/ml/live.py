"""Live model management, pure logic: the hit-rate monitor, the retrain rule, the state.

A strategy agent running ``ml_classifier`` (glue: :mod:`agents.strategy_models`) keeps,
in its durable ML state (:class:`MlAgentState`, JSON at :func:`ml_state_key`), the model
version it uses (``active``), a newly trained version waiting for the next bar
(``pending``), the hit-rate monitor and its counters.  The state is written in the
transaction of each bar, so a restarted agent continues with the same model and monitor.

Hit rate
--------
On every bar the active model makes a *call*: up when ``p_up > 0.5``, down when
``p_up < 0.5`` (none at exactly 0.5 or during the warm-up).  A call made at bar ``t`` is
resolved at bar ``t + h`` (``h`` = the model's horizon): a **hit** when the sign of
``close[t + h] - close[t]`` equals the call's side, a miss when it is opposite; an
unchanged close (a tie, which the model is not trained on either) is dropped.  The hit
rate is the share of hits among the last ``window`` resolved calls: the live counterpart
of the model's cross-validated accuracy (``cv_score``).

Retrain rule (:func:`retrain_trigger`), checked after each bar while no new version is
pending and no failed attempt is cooling down (``retry_after_bars``):

* ``hit_rate``: ``resolved >= min_predictions`` and ``hit_rate < hit_rate_threshold``;
* ``schedule``: ``retrain_every_bars > 0`` and ``bars_since_train >= retrain_every_bars``.

A new version is adopted on the next bar (``seq > after_seq``), which resets the monitor
(its calls were the old model's) and ``bars_since_train``.
"""

from __future__ import annotations

import math
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from backend import channels
from backend.messages import now_ns

__all__ = [
    "ActiveModel",
    "Call",
    "HitRateMonitor",
    "MlAgentState",
    "MonitorState",
    "PendingModel",
    "call_side",
    "ml_state_key",
    "parse_ml_state",
    "retrain_trigger",
]

Trigger = Literal["initial", "schedule", "hit_rate", "manual"]


def ml_state_key(agent_id: str) -> str:
    """Redis key of a strategy agent's ML state (next to its parameter state)."""
    return channels.state_key(f"{agent_id}:ml")


def call_side(p_up: float) -> int:
    """The model's call: +1 when ``p_up > 0.5``, -1 when ``< 0.5``, 0 otherwise (NaN)."""
    if not math.isfinite(p_up) or p_up == 0.5:
        return 0
    return 1 if p_up > 0.5 else -1


class Call(BaseModel):
    """An unresolved call: made at the symbol's bar ``index`` on close ``close``."""

    model_config = ConfigDict(extra="ignore")

    index: int
    close: float
    side: int


class MonitorState(BaseModel):
    """The monitor's durable part: unresolved calls, and recent outcomes oldest first
    (``"1"`` hit, ``"0"`` miss; at most ``window`` of them)."""

    model_config = ConfigDict(extra="ignore")

    calls: list[Call] = Field(default_factory=list)
    outcomes: str = ""


class HitRateMonitor:
    """Resolves each call ``horizon`` bars later; hit rate over the last ``window``.

    Parameters
    ----------
    horizon : int
        Bars until a call is resolved (the model's label horizon).
    window : int
        Resolved calls kept.
    state : MonitorState, optional
        Restored state (default empty).
    """

    def __init__(self, horizon: int, window: int, state: MonitorState | None = None) -> None:
        if horizon < 1 or window < 1:
            raise ValueError("horizon and window must be >= 1")
        self.horizon, self.window = int(horizon), int(window)
        st = state or MonitorState()
        self.calls: list[Call] = list(st.calls)
        self.outcomes: str = st.outcomes[-self.window:]

    def observe(self, index: int, close: float, p_up: float) -> list[bool]:
        """Feed bar ``index`` (the symbol's bar count, consecutive) with its close
        (quote/base) and the model's ``p_up`` at that bar.

        Returns
        -------
        list of bool
            The outcomes resolved at this bar (hit = True), oldest call first.
        """
        resolved: list[bool] = []
        keep: list[Call] = []
        for c in self.calls:
            if index - c.index >= self.horizon:
                if close != c.close:
                    resolved.append((1 if close > c.close else -1) == c.side)
            else:
                keep.append(c)
        self.calls = keep
        if resolved:
            self.outcomes = (self.outcomes + "".join("1" if h else "0" for h in resolved)
                             )[-self.window:]
        side = call_side(p_up)
        if side:
            self.calls.append(Call(index=index, close=close, side=side))
        return resolved

    @property
    def resolved(self) -> int:
        """Resolved calls held (<= ``window``)."""
        return len(self.outcomes)

    @property
    def hit_rate(self) -> float | None:
        """Hits / resolved over the window, ``None`` before any resolved call."""
        return self.outcomes.count("1") / len(self.outcomes) if self.outcomes else None

    def reset(self) -> None:
        """Forget every call and outcome (a new model starts afresh)."""
        self.calls, self.outcomes = [], ""

    def state(self) -> MonitorState:
        """The durable state."""
        return MonitorState(calls=list(self.calls), outcomes=self.outcomes)


def retrain_trigger(
    hit_rate: float | None,
    resolved: int,
    bars_since_train: int,
    *,
    threshold: float,
    min_predictions: int,
    every_bars: int,
) -> Trigger | None:
    """Why to retrain now, or ``None`` (see the module docstring).

    Parameters
    ----------
    hit_rate : float or None
        The monitor's hit rate.
    resolved : int
        Resolved calls it is computed on.
    bars_since_train : int
        Bars since the active model was adopted (or the last attempt).
    threshold, min_predictions, every_bars
        ``MlConfig.hit_rate_threshold``, ``min_predictions``, ``retrain_every_bars``
        (0 = no schedule).

    Returns
    -------
    {"hit_rate", "schedule"} or None
        ``hit_rate`` wins when both hold.
    """
    if hit_rate is not None and resolved >= min_predictions and hit_rate < threshold:
        return "hit_rate"
    if every_bars > 0 and bars_since_train >= every_bars:
        return "schedule"
    return None


class ActiveModel(BaseModel):
    """The model version an agent predicts with, since bar ``since_seq`` (0 = start)."""

    model_config = ConfigDict(extra="ignore")

    version: int = Field(ge=1)
    since_seq: int = 0
    trigger: str = ""
    horizon: int = Field(default=1, ge=1)
    cv_score: float | None = None
    data_end: int = 0
    updated_ts: int = Field(default_factory=now_ns)


class PendingModel(BaseModel):
    """A version trained at bar ``after_seq``, adopted on the first bar with a greater seq."""

    model_config = ConfigDict(extra="ignore")

    version: int = Field(ge=1)
    after_seq: int
    trigger: Trigger
    cv_score: float | None = None


class MlAgentState(BaseModel):
    """A strategy agent's durable ML state.

    ``bars``: bars of the symbol handled with the ML glue (the monitor's index);
    ``bars_since_train``: since the last adoption or attempt; ``retry_wait``: bars left
    before another training attempt after a failure.
    """

    model_config = ConfigDict(extra="ignore")

    active: ActiveModel | None = None
    pending: PendingModel | None = None
    monitor: MonitorState = Field(default_factory=MonitorState)
    bars: int = 0
    bars_since_train: int = 0
    retry_wait: int = 0
    hit_rate: float | None = None
    resolved: int = 0

    def to_json(self) -> bytes:
        """JSON bytes."""
        return orjson.dumps(self.model_dump(mode="json"))


def parse_ml_state(raw: bytes | str | None) -> MlAgentState | None:
    """The state in ``raw`` (``None`` when absent or unreadable)."""
    if not raw:
        return None
    try:
        return MlAgentState.model_validate_json(raw)
    except ValueError:
        return None
