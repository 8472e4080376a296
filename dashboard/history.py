"""Short in-memory histories of monotonically increasing counters, turned into rates.

The API reports counters (messages in/out per agent, messages per channel since the mesh
started); the dashboard samples them on every refresh and keeps a few minutes of samples
in ``st.session_state`` to show messages per second.  A counter that goes down (an agent
restarted and counts from zero again) starts that key's history afresh.  Pure Python, no
Streamlit, so it is unit-tested directly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class CounterHistory:
    """Samples ``(t, {key: count})`` of counters; rates over a window.

    Parameters
    ----------
    window_s
        :meth:`rate` is the increase over (about) the last ``window_s`` seconds.
    max_samples
        Samples kept (oldest dropped first).
    """

    window_s: float = 5.0
    max_samples: int = 400
    samples: deque[tuple[float, dict[str, float]]] = field(default_factory=deque)
    #: per key, the time from which its counts are comparable (after a reset).
    since: dict[str, float] = field(default_factory=dict)

    def add(self, t: float, counts: dict[str, float]) -> None:
        """Record the counters at time ``t`` (seconds); ignore a sample not newer than
        the last one."""
        if self.samples and t <= self.samples[-1][0]:
            return
        if self.samples:
            last = self.samples[-1][1]
            for key, value in counts.items():
                if key in last and value < last[key]:
                    self.since[key] = t  # counter reset: earlier samples do not compare
        for key in counts:
            self.since.setdefault(key, t)
        self.samples.append((t, dict(counts)))
        while len(self.samples) > self.max_samples:
            self.samples.popleft()

    def rate(self, key: str) -> float | None:
        """Increase per second of ``key`` over the last ``window_s`` seconds (None until
        two comparable samples exist)."""
        if not self.samples or key not in self.samples[-1][1]:
            return None
        t1, last = self.samples[-1]
        start = max(self.since.get(key, t1), t1 - self.window_s)
        base = None
        for t, counts in self.samples:
            if t >= start and key in counts:
                base = (t, counts[key])
                break
        if base is None or base[0] >= t1:
            return None
        return max(0.0, (last[key] - base[1]) / (t1 - base[0]))

    def series(self) -> list[tuple[float, str, float]]:
        """Rates between consecutive samples: ``(t, key, per second)`` rows for a chart."""
        rows: list[tuple[float, str, float]] = []
        prev: tuple[float, dict[str, float]] | None = None
        for t, counts in self.samples:
            if prev is not None:
                t0, before = prev
                for key, value in counts.items():
                    if key in before and value >= before[key]:  # not across a reset
                        rows.append((t, key, (value - before[key]) / (t - t0)))
            prev = (t, counts)
        return rows
