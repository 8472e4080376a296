"""The agents' table on the terminal (``tradingmesh status``, the supervisor's periodic print).

Light on purpose: rich and the heartbeat message only, so that ``tradingmesh status``
starts without the mesh's machinery.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from backend.messages import AgentHeartbeat, now_ns

__all__ = ["status_table"]


def status_table(beats: dict[str, AgentHeartbeat | None], handle: Any = None) -> Table:
    """The agents' table: state, pid, restarts, messages, errors, heartbeat age.

    Parameters
    ----------
    beats
        Each agent's last heartbeat (None: none).
    handle
        The running mesh, for the restart counts (None: shown as 0).
    """
    t = Table(title="agents")
    for col in ("agent", "state", "pid", "restarts", "in", "out", "errors", "dead letters",
                "heartbeat age"):
        t.add_column(col)
    now = now_ns()
    for agent_id, hb in beats.items():
        restarts = handle.supervisor.agents[agent_id].total_restarts if handle else 0
        if hb is None:
            t.add_row(agent_id, "[red]no heartbeat[/]", "-", str(restarts), "", "", "", "", "")
            continue
        colour = {"running": "green", "degraded": "yellow"}.get(hb.state.value, "red")
        t.add_row(
            agent_id, f"[{colour}]{hb.state.value}[/]", str(hb.pid), str(restarts),
            str(hb.messages_in), str(hb.messages_out), str(hb.errors), str(hb.dead_letters),
            f"{(now - hb.ts) / 1e9:.1f}s",
        )
    return t
