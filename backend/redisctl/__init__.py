"""Redis as the mesh runs it: a private redis-server, its per-role ACL users and the checks an
external Redis must pass.

* :mod:`backend.redisctl.acl`
* :mod:`backend.redisctl.checks`
* :mod:`backend.redisctl.server`

Nothing is imported here: import the submodules.
"""

__all__ = ["acl", "checks", "server"]
