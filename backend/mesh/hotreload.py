"""Hot reload of a strategy agent's parameters: its durable state and the switch rule.

A strategy agent keeps, in its state key ``agent:state:strategy:<SYM>`` (JSON of
:class:`StrategyAgentState`), the strategy and parameters it runs (``active``) and an
accepted :class:`~backend.messages.UpdateStrategyParams` that has not taken effect yet
(``pending``).  The state is written in the same MULTI/EXEC as the XACK of the input that
changed it, so a restarted agent runs exactly what it ran before.

The switch rule: a command with ``after_seq = N`` takes effect on the agent's first bar
with ``seq > N``; the signal of that bar is computed with the new parameters.  ``N`` is
the replay cursor when the command was queued, so the switch bar is the same whatever the
processes' timing (:func:`switch_due`).
"""

from __future__ import annotations

from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from backend import channels
from backend.mesh.topology import strategy_id
from backend.messages import UpdateStrategyParams, now_ns

__all__ = [
    "ActiveParams",
    "PendingParams",
    "StrategyAgentState",
    "parse_state",
    "running_params",
    "switch_due",
]

ParamValues = dict[str, int | float]


class ActiveParams(BaseModel):
    """What a strategy agent runs now.

    ``source``: ``config`` (the settings), ``optimizer`` (an applied optimizer run) or
    ``manual`` (a command without a run).  ``since_seq``: the first bar it applied to
    (0 = from the start); ``command_id`` / ``run_id``: where it came from.
    """

    model_config = ConfigDict(extra="ignore")

    strategy: str
    params: ParamValues
    source: Literal["config", "optimizer", "manual"] = "config"
    since_seq: int = 0
    run_id: str = ""
    command_id: str = ""
    actor: str = ""
    updated_ts: int = Field(default_factory=now_ns)


class PendingParams(BaseModel):
    """An accepted command waiting for the agent's first bar with ``seq > after_seq``."""

    model_config = ConfigDict(extra="ignore")

    strategy: str
    params: ParamValues
    after_seq: int
    command_id: str
    run_id: str = ""
    actor: str = ""
    reason: str = ""

    @classmethod
    def of(cls, cmd: UpdateStrategyParams, params: ParamValues) -> PendingParams:
        """The pending switch of ``cmd`` with its validated ``params``."""
        return cls(strategy=cmd.strategy, params=params, after_seq=cmd.after_seq,
                   command_id=cmd.id, run_id=cmd.run_id, actor=cmd.actor, reason=cmd.reason)


class StrategyAgentState(BaseModel):
    """A strategy agent's durable state (JSON in ``agent:state:<agent id>``)."""

    model_config = ConfigDict(extra="ignore")

    active: ActiveParams
    pending: PendingParams | None = None

    def to_json(self) -> bytes:
        """JSON bytes."""
        return orjson.dumps(self.model_dump(mode="json"))


def parse_state(raw: bytes | str | None) -> StrategyAgentState | None:
    """The state in ``raw`` (``None`` when absent or unreadable)."""
    if not raw:
        return None
    try:
        return StrategyAgentState.model_validate_json(raw)
    except ValueError:
        return None


def switch_due(pending: PendingParams | None, bar_seq: int) -> bool:
    """True when the bar ``bar_seq`` is the first one that must use ``pending``."""
    return pending is not None and bar_seq > pending.after_seq


async def running_params(redis, settings, symbol: str) -> tuple[str, ParamValues]:  # noqa: ANN001
    """The strategy and parameters the agent of ``symbol`` runs, or is about to run.

    A pending switch counts (it is what the agent runs from its next bar on); without a
    state (agent never started) the configured strategy, defaults filled in (built from
    the configuration: a ``combined`` strategy's parameters are its prefixed ones).
    """
    from backend.strategies.build import build_strategy

    state = parse_state(await redis.get(channels.state_key(strategy_id(symbol))))
    if state is not None:
        chosen = state.pending or state.active
        return chosen.strategy, dict(chosen.params)
    cfg = settings.strategy_for(symbol)
    return cfg.name, build_strategy(cfg).resolve_params(cfg.params)
