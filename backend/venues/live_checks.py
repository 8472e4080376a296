"""What a live venue holds against what the books say: pure comparisons (no I/O).

The books expect the venue to hold ``baseline + ledger position`` of every symbol (the
baseline being what it held before the mesh first traded).  A difference is an alarm
that halts the symbol (:class:`~backend.venues.base.VenueAlarm`), never an overwrite; a
difference smaller than the venue's quantity step is dust (a fee taken in coins leaves
some, and venues report it as flat).

Units: quantities signed base units.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from backend.venues.base import VenueAlarm
from backend.venues.ledger import Ledger, same_quantity

__all__ = ["mesh_positions", "position_alarms"]


def mesh_positions(venue: Mapping[str, float], baseline: Mapping[str, float]
                   ) -> dict[str, float]:
    """The mesh's part of what the venue holds (``venue - baseline``), flat omitted."""
    out = {s: float(q) - baseline.get(s, 0.0) for s, q in venue.items()}
    out.update({s: -q for s, q in baseline.items() if s not in venue})
    return {s: q for s, q in out.items() if not same_quantity(q, 0.0)}


def position_alarms(led: Ledger, venue: Mapping[str, float], name: str,
                    step: Callable[[str], float], skip: Collection[str] = ()
                    ) -> list[VenueAlarm]:
    """A ``position_mismatch`` alarm for every symbol (sorted, ``skip`` left out) whose
    ``venue`` quantity differs from ``baseline + ledger`` by a step or more."""
    alarms = []
    for sym in sorted((set(venue) | set(led.positions) | set(led.baseline)) - set(skip)):
        expected = led.baseline.get(sym, 0.0) + led.position_qty(sym)
        actual = float(venue.get(sym, 0.0))
        if same_quantity(expected, actual, rel=1e-6) or abs(expected - actual) < step(sym):
            continue
        alarms.append(VenueAlarm(sym, "position_mismatch", (
            f"{name} holds {actual:.10g} {sym} but the books expect {expected:.10g} "
            f"(ledger {led.position_qty(sym):.10g} + holdings before the mesh traded "
            f"{led.baseline.get(sym, 0.0):.10g}); symbol halted, not overwritten: "
            "check the venue, then `tradingmesh resolve` it")))
    return alarms
