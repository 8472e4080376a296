"""The mesh's own machinery: topology and consumer groups, how each stage's message is derived,
the in-process replay, halts and per-symbol halts, leases, hot reload and the live tail.

* :mod:`backend.mesh.halt`
* :mod:`backend.mesh.hotreload`
* :mod:`backend.mesh.lease`
* :mod:`backend.mesh.pipeline`
* :mod:`backend.mesh.simulate`
* :mod:`backend.mesh.symbol_halt`
* :mod:`backend.mesh.tail`
* :mod:`backend.mesh.topology`

Nothing is imported here: import the submodules.
"""

__all__ = ["halt", "hotreload", "lease", "pipeline", "simulate", "symbol_halt", "tail", "topology"]
