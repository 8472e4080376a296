"""Redis as the mesh runs it: a private redis-server, its per-role ACL users and the checks an
external Redis must pass.

* :mod:`backend.redisctl.acl` -- Redis access control for the mesh: one ACL user per agent
  role, generated passwords;
* :mod:`backend.redisctl.checks` -- Checks of an external Redis before the mesh trusts it
  with its streams and latches;
* :mod:`backend.redisctl.process` -- A private ``redis-server`` process: its command line,
  start, stop, kill and restart;
* :mod:`backend.redisctl.server` -- Start and stop a private Redis for the mesh, its tests
  and its launch scripts.

Nothing is imported here: import the submodules.
"""

__all__ = [
    "acl",
    "checks",
    "process",
    "server",
]
