"""Process runtime helpers: failpoints for crash drills, process helpers, secrets from files.

* :mod:`backend.runtime.failpoints`
* :mod:`backend.runtime.process`
* :mod:`backend.runtime.secretfiles`

Nothing is imported here: import the submodules.
"""

__all__ = ["failpoints", "process", "secretfiles"]
