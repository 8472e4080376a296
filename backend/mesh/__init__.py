"""The mesh's own machinery: topology and consumer groups, how each stage's message is derived,
the in-process replay, halts, leases, hot reload, model views and the live tail.

* :mod:`backend.mesh.halt` -- The trading halt latch (``mesh:halt``): who set it, why, since
  when -- durable first;
* :mod:`backend.mesh.hotreload` -- Hot reload of a strategy agent's parameters: its durable
  state and the switch rule;
* :mod:`backend.mesh.lease` -- One live process per agent id: a lease in Redis with a
  fencing token;
* :mod:`backend.mesh.model_views` -- Read model of the ML models for the REST API: saved
  versions and live agent state;
* :mod:`backend.mesh.pipeline` -- How each stage's message is derived from its input: one
  place for agents and replay;
* :mod:`backend.mesh.simulate` -- In-process replay: the mesh's pipeline as one sequential
  loop (the backtest core);
* :mod:`backend.mesh.symbol_halt` -- Per-symbol trading halts: a symbol the execution agent
  cannot settle by itself;
* :mod:`backend.mesh.tail` -- A read-only live subscriber for people and dashboards:
  ``tradingmesh tail``;
* :mod:`backend.mesh.topology` -- Which agents a mesh runs and which consumer groups read
  which stream.

Nothing is imported here: import the submodules.
"""

__all__ = [
    "halt",
    "hotreload",
    "lease",
    "model_views",
    "pipeline",
    "simulate",
    "symbol_halt",
    "tail",
    "topology",
]
