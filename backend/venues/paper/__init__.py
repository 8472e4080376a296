"""The paper venue: a pure matching engine and its adapter that keeps the book in Redis.

* :mod:`backend.venues.paper.adapter` -- Paper venue adapter: the matching engine of
  :mod:`backend.venues.paper.engine`, in Redis;
* :mod:`backend.venues.paper.book` -- The paper account as pydantic models: the book, its
  positions and resting orders;
* :mod:`backend.venues.paper.engine` -- Paper venue matching engine as pure functions (live
  paper adapter and backtester).

Nothing is imported here: import the submodules.
"""

__all__ = [
    "adapter",
    "book",
    "engine",
]
