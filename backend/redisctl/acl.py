"""Redis access control for the mesh: one ACL user per agent role, generated passwords.

The model is data (:func:`policies`), derived from the names in :mod:`backend.channels`
and the consumer-group wiring in :mod:`backend.mesh.topology`; nothing here spells a channel.

Users
    ``admin``
        Everything (``+@all``); used by the launcher and
        :class:`backend.redisctl.server.RedisServer` (PING, SHUTDOWN) and by people for
        drills and ``ACL LOG``.  The built-in ``default``
        user has ``admin``'s password and rights: an unauthenticated connection can run
        nothing (``NOAUTH``).  It cannot be switched off: Redis replays the append-only
        file as ``default`` and, up to 7.x, re-checks the ACL at each replayed ``EXEC``
        (redis/redis#14541, fixed by #14545), so with ``default`` off every MULTI/EXEC
        transaction - every agent's atomic output + ack - would be dropped on restart.
    ``orchestrator``
        Supervisor, REST control plane, kill switch, CLI: every key and channel, every
        command except the ``@dangerous`` ones (CONFIG, INFO, KEYS, SHUTDOWN, ACL, DEBUG,
        MONITOR, FLUSHALL, ...), with one exception: ``FLUSHDB``, which ``tradingmesh run
        --reset`` uses on an external Redis.
    ``market_data``, ``strategy``, ``compliance``, ``risk``, ``execution``, ``optimizer``
        One per agent role (all strategy agents share ``strategy``).  Each may write only the
        streams, channels and keys its agent writes, read the streams it reads and run the
        commands it runs.  A stream read through a consumer group but never written
        (``XREADGROUP``, ``XACK``, ``XGROUP CREATE`` and ``XAUTOCLAIM`` count as writes) is
        granted through a Redis 7 *selector* that allows only those group commands on it,
        so e.g. ``strategy`` reads ``market_data`` through its group but cannot ``XADD`` to it.
    ``dashboard``
        Read only: ``@read`` commands on every key (``%R~*``) and SUBSCRIBE/PSUBSCRIBE on
        every channel; no write command and no PUBLISH.

Files (in the Redis data directory, both mode 0600)
    ``credentials``
        ``user = "password"`` lines (TOML; :func:`backend.runtime.secretfiles.read_secrets_file`
        reads it and refuses it when other users may read it).
    ``users.acl``
        The ACL file given to ``redis-server --aclfile``; it holds only SHA-256 hashes of the
        passwords (``#<hex>``), never a password.

Connect as a role with :func:`role_url` (``redis://<role>:<password>@host:port/db``), or
with :func:`url_for_role` from ``REDIS_URL`` and ``TRADINGMESH_REDIS_CREDENTIALS``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import SecretStr

from backend import channels
from backend.bus import STATS_KEY
from backend.mesh import topology
from backend.runtime.secretfiles import SecretFileError, read_secrets_file, write_secrets_file
from backend.settings import strip_url_userinfo

__all__ = [
    "ACL_FILE",
    "ADMIN",
    "AGENT_ROLES",
    "CREDENTIALS_ENV",
    "CREDENTIALS_FILE",
    "DASHBOARD",
    "ORCHESTRATOR",
    "USERS",
    "AclFiles",
    "MeshAccess",
    "RolePolicy",
    "acl_rules",
    "ensure_acl",
    "generate_credentials",
    "password_hash",
    "policies",
    "read_credentials",
    "render_acl",
    "role_for_agent",
    "role_url",
    "url_for_role",
    "write_credentials",
]

ADMIN = "admin"
ORCHESTRATOR = "orchestrator"
DASHBOARD = "dashboard"
AGENT_ROLES: tuple[str, ...] = topology.ROLES
#: Every ACL user, in the order of the ACL file (after ``default``, admin's twin).
USERS: tuple[str, ...] = (ADMIN, ORCHESTRATOR, *AGENT_ROLES, DASHBOARD)

CREDENTIALS_FILE = "credentials"
ACL_FILE = "users.acl"
#: Env var naming the credentials file of an external (``REDIS_URL``) Redis with our ACL.
CREDENTIALS_ENV = "TRADINGMESH_REDIS_CREDENTIALS"

#: Prefix of an agent's "message already handled" sets (``channels.seen_key``).
SEEN_KEY_PREFIX = channels.SEEN_KEY_PREFIX
#: Every venue adapter's keys (paper book and hashes, live ledgers) share this prefix.
VENUE_KEYS = channels.PAPER_VENUE_KEY.split(":", 1)[0] + ":*"

#: Connection housekeeping every user may run: AUTH, HELLO, PING, ECHO, SELECT, CLIENT
#: SETNAME/SETINFO/ID ... (``@connection``), minus CLIENT KILL/PAUSE/LIST (``@dangerous``).
CONNECTION = ("+@connection", "-@dangerous")
#: Consumer-group commands (write commands in Redis' ACL categories).
GROUP_COMMANDS = ("+xreadgroup", "+xack", "+xgroup|create", "+xautoclaim")
#: Commands every agent runs: transactions, heartbeat, agent state, idempotency sets,
#: PUBLISH + XADD + the message counter of :meth:`backend.bus.Bus.stage`.
AGENT_COMMANDS = ("+multi", "+exec", "+discard", "+get", "+set", "+exists", "+publish",
                  "+xadd", "+hincrby", "+sismember", "+sadd", "+expire",
                  # the agent's lease (backend.mesh.lease): SET NX, INCR, WATCH + PEXPIRE/DEL
                  "+watch", "+unwatch", "+incrby", "+pexpire", "+del")


@dataclass(frozen=True)
class RolePolicy:
    """What one ACL user may do.

    Attributes
    ----------
    name
        ACL user name.
    commands
        ACL command rules in order (``+cmd``, ``+cmd|sub``, ``+@category``, ``-@category``),
        applied after ``-@all``.
    keys
        Key patterns with read and write access (``~pattern``).
    read_keys
        Key patterns with read access only (``%R~pattern``).
    channels
        Pub/sub channel patterns (``&pattern``) it may PUBLISH/SUBSCRIBE to.
    group_streams
        Streams it reads through its consumer group: a selector allows only
        :data:`GROUP_COMMANDS` (plus nothing else) on them.
    set_only_keys
        Keys it may only SET (a selector with ``+set`` alone), e.g. execution latching
        the halt (``SET NX``) without being able to delete it.
    """

    name: str
    commands: tuple[str, ...]
    keys: tuple[str, ...] = ()
    read_keys: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    group_streams: tuple[str, ...] = ()
    set_only_keys: tuple[str, ...] = ()
    description: str = field(default="", compare=False)


def _own_keys(role: str) -> tuple[str, ...]:
    """Heartbeat, state, decisions and seen-message keys of every agent of ``role``."""
    out: list[str] = []
    for agent in (role, f"{role}:*"):
        out += [channels.health_key(agent), channels.state_key(agent),
                channels.decisions_key(agent), channels.lease_key(agent),
                channels.lease_fence_key(agent)]
    return (*out, f"{SEEN_KEY_PREFIX}{role}:*")


def _group_streams() -> dict[str, tuple[str, ...]]:
    """Role -> streams its agents read through consumer groups (from ``topology``)."""
    probe = SimpleNamespace(symbols=["BASE/QUOTE"])  # the wiring only depends on symbols
    wiring = {**topology.control_groups(probe), **topology.consumer_groups(probe)}  # type: ignore[arg-type]
    out: dict[str, list[str]] = {r: [] for r in AGENT_ROLES}
    for stream, groups in wiring.items():
        for group in groups:
            out[role_for_agent(group)].append(stream)
    return {r: tuple(dict.fromkeys(s)) for r, s in out.items()}


def _agent(role: str, *, writes: Iterable[str] = (), keys: Iterable[str] = (),
           reads: Iterable[str] = (), publishes: Iterable[str] = (),
           commands: Iterable[str] = (), groups: Mapping[str, tuple[str, ...]],
           set_only: Iterable[str] = (), description: str) -> RolePolicy:
    """An agent role: ``writes`` streams/channels (XADD if a stream, PUBLISH), other
    ``keys`` it writes, ``reads`` keys it only reads, ``publishes`` plain channels."""
    writes = tuple(writes)
    # every agent may report: status, errors, dead letters, and an alert when stuck
    common_channels = (channels.AGENT_STATUS, channels.AGENT_ERRORS, channels.DEAD_LETTER,
                       channels.RISK_ALERTS)
    rw = (*_own_keys(role), STATS_KEY, channels.DEAD_LETTER, channels.RISK_ALERTS,
          *[w for w in writes if w in channels.STREAMS], *keys)
    return RolePolicy(
        name=role,
        commands=(*CONNECTION, *AGENT_COMMANDS, *commands),
        keys=tuple(dict.fromkeys(rw)),
        read_keys=tuple(k for k in dict.fromkeys(reads) if k not in rw),
        channels=tuple(dict.fromkeys((*common_channels, *writes, *publishes))),
        group_streams=groups[role],
        set_only_keys=tuple(set_only),
        description=description,
    )


def policies() -> dict[str, RolePolicy]:
    """Every user's policy (``USERS`` order), derived from ``channels`` and ``topology``."""
    c = channels
    g = _group_streams()
    # back-pressure: bus.pipeline_caught_up, a read-only script over XINFO and SMEMBERS
    xinfo = ("+xinfo|stream", "+xinfo|groups", "+evalsha", "+eval")
    out = [
        RolePolicy(ADMIN, ("+@all",), keys=("*",), channels=("*",),
                   description="launcher, drills: everything"),
        RolePolicy(ORCHESTRATOR, ("+@all", "-@dangerous", "+flushdb"), keys=("*",),
                   channels=("*",), description="supervisor, REST API, kill switch, CLI: all "
                   "keys and channels, no @dangerous command except FLUSHDB (run --reset)"),
        _agent("market_data", writes=(c.MARKET_DATA,), publishes=(c.AGENT_BROADCAST,),
               keys=(c.REPLAY_CURSOR_KEY, c.REPLAY_DONE_KEY, c.REPLAY_EPOCH_KEY),
               reads=(*c.ORDER_PATH_STREAMS, c.PARKED_AGENTS_KEY),
               commands=(*xinfo, "+smembers"), groups=g,
               description="XADD market_data; replay cursor; back-pressure (XINFO)"),
        _agent("strategy", writes=(c.SIGNALS, c.STRATEGY_PARAMS, c.AUDIT),
               publishes=(c.RETRAIN_STATUS, c.MODEL_METRICS), reads=(c.MARKET_DATA,),
               commands=("+xrange", "+xinfo|groups", "+xpending"), groups=g,
               description="bars -> signals; parameter switches; ML retraining status"),
        _agent("compliance", writes=(c.SIGNALS_APPROVED, c.SIGNALS_REJECTED, c.AUDIT),
               groups=g, description="signals -> approvals/rejections"),
        _agent("risk", writes=(c.ORDERS, c.SIGNALS_REJECTED, c.AUDIT, c.RISK_ALERTS),
               keys=(c.HALT_KEY,),
               reads=(c.MARKET_DATA, c.SYMBOL_HALTS_KEY, c.HALT_RESET_KEY),
               commands=("+xrange", "+xrevrange", "+hget", "+hgetall"), groups=g,
               description="approvals -> orders; circuit breaker latch; VaR history"),
        _agent("execution", writes=(c.TRADING_EVENTS, c.AUDIT, c.RISK_ALERTS),
               keys=(c.PORTFOLIO_KEY, VENUE_KEYS, c.SYMBOL_HALTS_KEY),
               reads=(c.HALT_KEY,), set_only=(c.HALT_KEY,),
               commands=("+hget", "+hgetall", "+hset", "+hvals"), groups=g,
               description="orders -> venue; the only writer of venue:* and trading_events"),
        _agent("optimizer", writes=(c.OPTIMIZER_REQUESTS, c.OPTIMIZER_PROPOSALS),
               publishes=(c.RETRAIN_STATUS, c.MODEL_METRICS),
               keys=(c.OPTIMIZER_SCHEDULE_KEY,),
               reads=(c.MARKET_DATA, c.REPLAY_CURSOR_KEY, c.PARKED_AGENTS_KEY,
                      c.state_key(topology.strategy_id("*"))),
               commands=("+xrevrange", *xinfo, "+smembers"), groups=g,
               description="GA runs on request/schedule -> proposals"),
        RolePolicy(DASHBOARD, ("+@read", *CONNECTION, "+subscribe", "+psubscribe",
                               "+unsubscribe", "+punsubscribe", "+pubsub|channels",
                               "+pubsub|numsub", "+pubsub|numpat"),
                   read_keys=("*",), channels=("*",),
                   description="read only: @read on every key, SUBSCRIBE to every channel"),
    ]
    return {p.name: p for p in out}


def acl_rules(policy: RolePolicy) -> str:
    """The ACL rules of ``policy`` (without user name, state or password)."""
    parts = [f"~{k}" for k in policy.keys] + [f"%R~{k}" for k in policy.read_keys]
    parts += ["resetchannels", *(f"&{ch}" for ch in policy.channels), "-@all", *policy.commands]
    if policy.group_streams:
        sel = [f"~{s}" for s in policy.group_streams] + ["resetchannels", "-@all",
                                                         *GROUP_COMMANDS]
        parts.append("(" + " ".join(sel) + ")")
    if policy.set_only_keys:
        parts.append("(" + " ".join([*(f"~{k}" for k in policy.set_only_keys),
                                     "resetchannels", "-@all", "+set"]) + ")")
    return " ".join(parts)


# ---------------------------------------------------------------------- credentials
def generate_credentials(users: Iterable[str] = USERS) -> dict[str, SecretStr]:
    """A new random password (``secrets.token_urlsafe(32)``, 256 bits) for every user."""
    return {u: SecretStr(secrets.token_urlsafe(32)) for u in users}


def password_hash(password: SecretStr | str) -> str:
    """SHA-256 hex digest of a password, as Redis' ``#<hash>`` ACL rule wants it."""
    raw = password.get_secret_value() if isinstance(password, SecretStr) else password
    return hashlib.sha256(raw.encode()).hexdigest()


def render_acl(credentials: Mapping[str, SecretStr]) -> str:
    """The ACL file for ``credentials`` (every user of :data:`USERS` needs one).

    Passwords appear only as ``#<sha256 hex>``.  The ``default`` user is ``admin``'s twin
    (see the module docstring for why it cannot be off).

    Raises
    ------
    KeyError
        A user has no password in ``credentials``.
    """
    # no comments allowed in an ACL file; default = admin: AOF replay runs as default
    lines = [f"user default on resetpass #{password_hash(credentials[ADMIN])} "
             "~* &* +@all"]
    for name, policy in policies().items():
        lines.append(f"user {name} on #{password_hash(credentials[name])} {acl_rules(policy)}")
    return "\n".join(lines) + "\n"


def write_credentials(path: Path, credentials: Mapping[str, SecretStr]) -> Path:
    """Write the credentials file (``user = "password"``, mode 0600, atomically)."""
    return write_secrets_file(
        path, credentials,
        header="Redis ACL passwords of the trading mesh, one per user (backend.redisctl.acl).\n"
               "Keep it private: mode 0600. Connect: redis-cli --user USER --askpass")


def read_credentials(path: Path | str) -> dict[str, SecretStr]:
    """Read a credentials file written by :func:`write_credentials`.

    Raises
    ------
    SecretFileError
        Missing, readable by other users, malformed, or without a password for every
        user of :data:`USERS`.
    """
    creds = read_secrets_file(path)
    missing = [u for u in USERS if not creds.get(u, SecretStr("")).get_secret_value()]
    if missing:
        raise SecretFileError(f"credentials file {path}: no password for {', '.join(missing)}")
    return {u: creds[u] for u in USERS}


@dataclass(frozen=True)
class AclFiles:
    """The ACL of one Redis data directory: both paths and the passwords."""

    credentials_path: Path
    acl_path: Path
    credentials: dict[str, SecretStr]


def ensure_acl(data_dir: Path) -> AclFiles:
    """Reuse ``data_dir/credentials`` (or create it on first use), then (re)write
    ``data_dir/users.acl`` from it, so a policy change in the code applies on restart.

    Raises
    ------
    SecretFileError
        The existing credentials file is readable by other users or malformed.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    cred_path, acl_path = data_dir / CREDENTIALS_FILE, data_dir / ACL_FILE
    if cred_path.exists():
        old = read_secrets_file(cred_path)
        creds = {u: v for u, v in old.items() if u in USERS and v.get_secret_value()}
        if len(creds) < len(USERS):  # a user added since: give it a password
            creds = {**generate_credentials(u for u in USERS if u not in creds), **creds}
            write_credentials(cred_path, {u: creds[u] for u in USERS})
        creds = {u: creds[u] for u in USERS}
    else:
        creds = generate_credentials()
        write_credentials(cred_path, creds)
    fd = os.open(acl_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(render_acl(creds))
    os.chmod(acl_path, 0o600)
    return AclFiles(cred_path.resolve(), acl_path.resolve(), creds)


# ---------------------------------------------------------------------- URLs
def role_for_agent(agent_id: str) -> str:
    """The ACL user of agent ``agent_id`` (``role`` or ``role:SYMBOL``).

    Raises
    ------
    ValueError
        Not an agent id of :data:`backend.mesh.topology.ROLES`.
    """
    role = agent_id.split(":", 1)[0]
    if role not in AGENT_ROLES:
        raise ValueError(f"agent id {agent_id!r}: unknown role {role!r}")
    return role


def role_url(base_url: str, role: str, credentials: Mapping[str, SecretStr]) -> str:
    """``redis://<role>:<password>@host:port/db`` from ``base_url`` (its userinfo dropped;
    scheme, host, port, db and query kept).

    Raises
    ------
    KeyError
        ``role`` has no password in ``credentials``.
    """
    password = credentials[role].get_secret_value()
    parts = urlsplit(strip_url_userinfo(base_url))
    netloc = f"{quote(role, safe='')}:{quote(password, safe='')}@{parts.netloc}"
    return urlunsplit(parts._replace(netloc=netloc))


def url_for_role(role: str, base_url: str | None = None,
                 credentials_path: Path | str | None = None,
                 environ: Mapping[str, str] | None = None) -> str:
    """The URL to connect as ``role``: ``base_url`` (default ``REDIS_URL``) with the
    password from ``credentials_path`` (default ``$TRADINGMESH_REDIS_CREDENTIALS``);
    without a credentials file, ``base_url`` unchanged (a Redis without our ACL).

    E.g. a read-only live subscriber: ``url_for_role("dashboard")``.

    Raises
    ------
    ValueError
        No ``base_url`` and no ``REDIS_URL``.
    SecretFileError
        The credentials file is unusable.
    """
    env = os.environ if environ is None else environ
    base = base_url or env.get("REDIS_URL") or env.get("TRADINGMESH_REDIS_URL")
    if not base:
        raise ValueError("no Redis URL: pass one or set REDIS_URL")
    path = credentials_path or env.get(CREDENTIALS_ENV)
    return role_url(base, role, read_credentials(path)) if path else base


@dataclass(frozen=True)
class MeshAccess:
    """How the mesh's processes connect: with our ACL (``credentials``) or without.

    Attributes
    ----------
    base_url
        The Redis URL as given (may hold a ``requirepass`` password when there is no ACL).
    credentials
        Every user's password, or ``None`` (no ACL: everyone uses ``base_url``).
    """

    base_url: str
    credentials: Mapping[str, SecretStr] | None = None

    @classmethod
    def resolve(cls, url: str, credentials_path: Path | str | None = None,
                environ: Mapping[str, str] | None = None) -> MeshAccess:
        """``credentials_path`` (a private server's), else ``$TRADINGMESH_REDIS_CREDENTIALS``,
        else no ACL."""
        env = os.environ if environ is None else environ
        path = credentials_path or env.get(CREDENTIALS_ENV)
        return cls(url, read_credentials(path) if path else None)

    @property
    def acl(self) -> bool:
        """True when the processes connect as their own ACL users."""
        return self.credentials is not None

    def url(self, user: str) -> str:
        """URL for ACL user ``user`` (``base_url`` when there is no ACL)."""
        return self.base_url if self.credentials is None else role_url(
            self.base_url, user, self.credentials)

    def agent_env(self, spec: topology.AgentSpec) -> dict[str, str]:
        """Environment overrides of one agent process: ``REDIS_URL`` as its role."""
        return {"REDIS_URL": self.url(role_for_agent(spec.agent_id))}
