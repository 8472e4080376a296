"""The paper venue: a pure matching engine and its adapter that keeps the book in Redis.

* :mod:`backend.venues.paper.adapter`
* :mod:`backend.venues.paper.engine`

Nothing is imported here: import the submodules.
"""

__all__ = ["adapter", "engine"]
