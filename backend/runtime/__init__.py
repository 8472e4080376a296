"""Process runtime helpers: failpoints for crash drills, process helpers, secrets from files.

* :mod:`backend.runtime.failpoints` -- Failpoints: named places where a test or a fault
  drill can crash a process on purpose;
* :mod:`backend.runtime.process` -- Small process helpers shared by the processes the mesh
  starts;
* :mod:`backend.runtime.secretfiles` -- Secrets from files: refused when other users can
  read them, never echoed.

Nothing is imported here: import the submodules.
"""

__all__ = [
    "failpoints",
    "process",
    "secretfiles",
]
