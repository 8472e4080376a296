"""Fault drills: run a whole mesh on the sample data, inject faults, check the books.

* :mod:`orchestrator.drills.run` -- The drill runner: the scenarios by name, one mesh
  per run with its faults, the books checked, the summaries (``tradingmesh drill``);
* :mod:`orchestrator.drills.mesh` -- A whole mesh run for a fault drill: its own Redis,
  the orchestrator as a child process;
* :mod:`orchestrator.drills.faults` -- The faults a drill injects into a running mesh,
  each at seeded random moments;
* :mod:`orchestrator.drills.faults_bus` -- Drill faults on the bus itself: hostile
  payloads on every channel, a slow subscriber;
* :mod:`orchestrator.drills.faults_limits` -- Drill faults for the latch, the limits and
  the bus;
* :mod:`orchestrator.drills.payloads` -- Fault drill: hostile payloads on every channel;
* :mod:`orchestrator.drills.payloads_check` -- Checking a hostile-payload drill;
* :mod:`orchestrator.drills.slow_consumer` -- Fault drill: a slow pub/sub consumer is
  dropped by Redis and recovers;
* :mod:`orchestrator.drills.books` -- Check the books after a fault drill: nothing lost,
  nothing duplicated, nothing stuck;
* :mod:`orchestrator.drills.venue_mesh` -- A drill mesh that trades through real ccxt
  against the exchange simulator;
* :mod:`orchestrator.drills.venue_faults` -- The faults of the venue-fault drill, at the
  exchange simulator or in the execution agent;
* :mod:`orchestrator.drills.venue_books` -- Check the books after a venue-fault drill
  against the exchange's own records.

Nothing is imported here: import the submodules.
"""

__all__ = [
    "books",
    "faults",
    "faults_bus",
    "faults_limits",
    "mesh",
    "payloads",
    "payloads_check",
    "run",
    "slow_consumer",
    "venue_books",
    "venue_faults",
    "venue_mesh",
]
