"""Agent control-plane messages: heartbeats, errors, dead letters, audits and commands."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from backend.messages.envelope import Finite, Message


class AgentState(StrEnum):
    """Agent life-cycle states (DESIGN.md)."""

    STARTING = "starting"
    RUNNING = "running"
    DEGRADED = "degraded"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAULTED = "faulted"


class AgentHeartbeat(Message):
    """Published every second on ``agent:status`` and kept in ``agent:health:<id>``."""

    type: Literal["agent_heartbeat"] = "agent_heartbeat"
    agent_id: str
    role: str
    state: AgentState
    pid: int
    started_at: int
    messages_in: int = 0
    messages_out: int = 0
    errors: int = 0
    dead_letters: int = 0
    last_message_at: int = 0
    last_error: str = ""


class AgentErrorRaised(Message):
    """An agent caught an error (published on ``agent:errors``)."""

    type: Literal["agent_error_raised"] = "agent_error_raised"
    agent_id: str
    error: str = Field(max_length=2000)
    fatal: bool = False


class DeadLettered(Message):
    """A payload an agent could not decode or validate, with the reason.

    ``payload`` is a bounded prefix of the raw bytes (UTF-8, undecodable bytes replaced),
    ``size`` the raw payload's full length in bytes, ``entry_id`` the stream entry it came
    from (``""`` when not read from a stream).
    """

    type: Literal["dead_lettered"] = "dead_lettered"
    agent_id: str
    channel: str
    reason: str = Field(max_length=2000)
    payload: str = Field(max_length=4096)  # truncated raw payload
    size: int = Field(default=0, ge=0)
    entry_id: str = Field(default="", max_length=64)


class CircuitBreakerTripped(Message):
    """Risk latched HALTED (daily drawdown limit, kill switch, ...)."""

    type: Literal["circuit_breaker_tripped"] = "circuit_breaker_tripped"
    reason: str
    drawdown: Finite = 0.0
    limit: Finite = 0.0


class AuditRecorded(Message):
    """A decision written to the audit log."""

    type: Literal["audit_recorded"] = "audit_recorded"
    actor: str
    action: str
    decision: str
    reason: str = Field(max_length=1000)
    subject_id: str = ""


class AgentCommand(Message):
    """Control command to one agent (``target`` agent id or ``*``)."""

    type: Literal["agent_command"] = "agent_command"
    target: str
    command: Literal["stop", "pause", "resume", "flatten"]


class ReplayFinished(Message):
    """market_data finished a finite replay (on ``agent:broadcast``)."""

    type: Literal["replay_finished"] = "replay_finished"
    bars: int
    last_seq: int
