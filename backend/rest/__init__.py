"""The REST contract: typed bodies of the orchestrator's API, the only part of ``backend`` the
dashboard imports.

* :mod:`backend.rest.base`
* :mod:`backend.rest.halts`
* :mod:`backend.rest.models`
* :mod:`backend.rest.optimizer`
* :mod:`backend.rest.report`
* :mod:`backend.rest.risk`

Nothing is imported here: import the submodules.
"""

__all__ = ["base", "halts", "models", "optimizer", "report", "risk"]
