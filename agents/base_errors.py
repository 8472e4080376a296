"""The failures an agent rides out instead of blaming the message: Redis and the database.

An exception of :data:`REDIS_ERRORS` or :data:`INFRA_ERRORS` while an input is handled is
never the input's fault: :meth:`agents.base.Agent.dispatch` keeps the input and retries it
(the agent ``degraded`` meanwhile) instead of counting a failure or dead-lettering it.
"""

from __future__ import annotations

import sqlite3

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError as SAInterfaceError
from sqlalchemy.exc import OperationalError as SAOperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError

__all__ = ["INFRA_ERRORS", "REDIS_ERRORS"]

REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
#: The database failing (locked, disk, connection): retried, never a reason to drop input.
INFRA_ERRORS = (SAOperationalError, SAInterfaceError, SATimeoutError, sqlite3.OperationalError)
