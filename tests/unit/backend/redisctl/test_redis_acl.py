"""backend.redisctl.acl without a server: the ACL model, its file, credentials and URLs."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from backend import channels
from backend.bus import STATS_KEY
from backend.mesh import topology
from backend.ml.live import ml_state_key
from backend.redisctl import acl as redis_acl
from backend.redisctl.acl import (
    ADMIN,
    AGENT_ROLES,
    DASHBOARD,
    ORCHESTRATOR,
    USERS,
    MeshAccess,
    acl_rules,
    ensure_acl,
    generate_credentials,
    policies,
    read_credentials,
    render_acl,
    role_for_agent,
    role_url,
    url_for_role,
    write_credentials,
)
from backend.redisctl.server import RedisServer
from backend.runtime.secretfiles import SecretFileError, read_secrets_file
from backend.settings import Settings, load_settings, strip_url_userinfo, write_resolved
from backend.venues.live import ledger_keys
from backend.venues.paper import adapter as paper
from orchestrator.supervisor import Supervisor


@pytest.fixture(scope="module")
def creds() -> dict[str, SecretStr]:
    return generate_credentials()


def _writes(role: str, key: str) -> bool:
    """``role`` may write ``key``: a read-write key pattern in the root rules."""
    return any(fnmatch.fnmatchcase(key, p) for p in policies()[role].keys)


def _reads(role: str, key: str) -> bool:
    p = policies()[role]
    return any(fnmatch.fnmatchcase(key, k) for k in (*p.keys, *p.read_keys))


def _can_publish(role: str, channel: str) -> bool:
    return any(fnmatch.fnmatchcase(channel, p) for p in policies()[role].channels)


# ---------------------------------------------------------------------- the ACL file
def test_acl_file_holds_hashes_never_passwords(creds: dict[str, SecretStr]) -> None:
    text = render_acl(creds)
    for user, pw in creds.items():
        assert pw.get_secret_value() not in text
        digest = hashlib.sha256(pw.get_secret_value().encode()).hexdigest()
        line = next(ln for ln in text.splitlines() if ln.startswith(f"user {user} "))
        assert f" on #{digest} " in line
        assert not re.search(r"(^| )>", line), "plaintext password rule (>pw) in the ACL"
    admin = hashlib.sha256(creds[ADMIN].get_secret_value().encode()).hexdigest()
    assert f"user default on resetpass #{admin} ~* &* +@all" in text.splitlines()
    assert "nopass" not in text
    assert not any(ln.startswith("#") for ln in text.splitlines())  # redis refuses comments
    assert [ln.split()[1] for ln in text.splitlines()] == ["default", *USERS]


def test_a_missing_password_is_an_error(creds: dict[str, SecretStr]) -> None:
    with pytest.raises(KeyError):
        render_acl({u: p for u, p in creds.items() if u != "risk"})


def test_one_distinct_password_per_user() -> None:
    c = generate_credentials()
    assert set(c) == set(USERS)
    values = [v.get_secret_value() for v in c.values()]
    assert len(set(values)) == len(values) and all(len(v) >= 40 for v in values)


def test_users_are_the_roles_of_the_topology() -> None:
    assert set(AGENT_ROLES) == set(topology.ROLES)
    assert set(USERS) == {ADMIN, ORCHESTRATOR, DASHBOARD, *topology.ROLES}


# ---------------------------------------------------------------------- the model
def test_group_selectors_follow_the_topology() -> None:
    groups = {r: set(policies()[r].group_streams) for r in AGENT_ROLES}
    assert groups["strategy"] == {channels.MARKET_DATA, channels.STRATEGY_PARAMS}
    assert groups["compliance"] == {channels.SIGNALS, channels.TRADING_EVENTS}
    assert groups["risk"] == {channels.SIGNALS_APPROVED, channels.TRADING_EVENTS}
    assert groups["execution"] == {channels.ORDERS, channels.MARKET_DATA}
    assert groups["optimizer"] == {channels.OPTIMIZER_REQUESTS}
    assert groups["market_data"] == set()
    rules = redis_acl.acl_rules(policies()["strategy"])
    selector = rules[rules.index("("):]
    assert "+xadd" not in selector and "+xreadgroup" in selector and "+xack" in selector


@pytest.mark.parametrize(("role", "stream"), [
    ("strategy", channels.ORDERS), ("strategy", channels.SIGNALS_APPROVED),
    ("strategy", channels.MARKET_DATA), ("compliance", channels.ORDERS),
    ("compliance", channels.SIGNALS), ("compliance", channels.TRADING_EVENTS),
    ("risk", channels.TRADING_EVENTS), ("risk", channels.SIGNALS_APPROVED),
    ("execution", channels.ORDERS), ("execution", channels.MARKET_DATA),
])
def test_forbidden_stream_writes(role: str, stream: str) -> None:
    assert not _writes(role, stream)
    assert not _can_publish(role, stream)


def test_single_writers() -> None:
    agents = AGENT_ROLES
    assert [r for r in agents if _writes(r, channels.PAPER_VENUE_KEY)] == ["execution"]
    assert [r for r in agents if _writes(r, channels.MARKET_DATA)] == ["market_data"]
    assert [r for r in agents if _writes(r, channels.ORDERS)] == ["risk"]
    assert [r for r in agents if _writes(r, channels.TRADING_EVENTS)] == ["execution"]
    assert [r for r in agents if _writes(r, channels.SIGNALS)] == ["strategy"]
    assert [r for r in agents if _writes(r, channels.SIGNALS_APPROVED)] == ["compliance"]
    assert [r for r in agents if _writes(r, channels.HALT_KEY)] == ["risk"]
    # execution latches when an order command is stuck (issue 15), with SET alone
    assert [r for r in agents if channels.HALT_KEY in policies()[r].set_only_keys] == \
        ["execution"]
    assert "(~mesh:halt resetchannels -@all +set)" in acl_rules(policies()["execution"])
    assert [r for r in agents if _writes(r, channels.PORTFOLIO_KEY)] == ["execution"]


def test_the_keys_each_agent_writes_are_granted() -> None:
    """Keys built by the real code (not only by ``channels``) fall under the patterns."""
    seen_keys = {  # agents.base.Agent._seen_keys: agent:seen:<agent id>:<utc day>
        a: f"agent:seen:{a}:20000" for a in ("market_data", "strategy:ETHBTC", "risk")}
    for agent_id, seen in seen_keys.items():
        role = role_for_agent(agent_id)
        for key in (channels.health_key(agent_id), channels.state_key(agent_id),
                    channels.decisions_key(agent_id), seen, STATS_KEY, channels.DEAD_LETTER):
            assert _writes(role, key), (role, key)
    assert _writes("strategy", ml_state_key("strategy:ETHBTC"))
    for key in (paper.ORDERS_HASH, paper.REJECTS_HASH, paper.ORDER_LOG_HASH, paper.FILLS_HASH,
                *ledger_keys("binance")):
        assert _writes("execution", key)
    assert _reads("optimizer", channels.state_key(topology.strategy_id("ETH/BTC")))
    assert not _writes("optimizer", channels.state_key(topology.strategy_id("ETH/BTC")))
    # an agent cannot touch another role's heartbeat or state
    assert not _writes("compliance", channels.health_key("risk"))
    assert not _writes("strategy", channels.state_key("risk"))


def test_dashboard_is_read_only() -> None:
    p = policies()[DASHBOARD]
    assert p.keys == () and p.read_keys == ("*",) and p.group_streams == ()
    assert not [c for c in p.commands if c.startswith("+") and c not in {
        "+@read", "+@connection", "+subscribe", "+psubscribe", "+unsubscribe",
        "+punsubscribe", "+pubsub|channels", "+pubsub|numsub", "+pubsub|numpat"}]
    assert "-@dangerous" in p.commands


def test_orchestrator_has_no_dangerous_command_but_flushdb() -> None:
    assert policies()[ORCHESTRATOR].commands == ("+@all", "-@dangerous", "+flushdb")


def test_channel_names_need_no_glob_escaping() -> None:
    for name in (*channels.ALL_CHANNELS, *channels.STREAMS):
        assert not set(name) & set("*?[]\\"), name


# ---------------------------------------------------------------------- credentials
def test_credentials_file_is_private_and_reads_back(tmp_path: Path,
                                                    creds: dict[str, SecretStr]) -> None:
    path = write_credentials(tmp_path / "credentials", creds)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_credentials(path) == creds
    assert {k: v.get_secret_value() for k, v in read_secrets_file(path).items()} == {
        k: v.get_secret_value() for k, v in creds.items()}


def test_world_readable_credentials_are_refused(tmp_path: Path,
                                                creds: dict[str, SecretStr]) -> None:
    path = write_credentials(tmp_path / "credentials", creds)
    os.chmod(path, 0o644)
    with pytest.raises(SecretFileError, match="chmod 600") as err:
        read_credentials(path)
    assert creds[ADMIN].get_secret_value() not in str(err.value)
    with pytest.raises(SecretFileError):
        ensure_acl(tmp_path)  # the server is not started with it either


def test_incomplete_credentials_are_refused(tmp_path: Path,
                                            creds: dict[str, SecretStr]) -> None:
    path = write_credentials(tmp_path / "c", {u: p for u, p in creds.items() if u != DASHBOARD})
    with pytest.raises(SecretFileError, match="no password for dashboard"):
        read_credentials(path)


def test_ensure_acl_generates_once_then_reuses(tmp_path: Path) -> None:
    first = ensure_acl(tmp_path)
    assert stat.S_IMODE(first.acl_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.credentials_path.stat().st_mode) == 0o600
    again = ensure_acl(tmp_path)
    assert again.credentials == first.credentials
    assert again.acl_path.read_text() == render_acl(first.credentials)
    # a user added later (here: one missing from the file) gets a password, others stay
    kept = {u: p for u, p in first.credentials.items() if u != "optimizer"}
    write_credentials(first.credentials_path, kept)
    third = ensure_acl(tmp_path)
    assert {u: third.credentials[u] for u in kept} == kept
    assert third.credentials["optimizer"] != first.credentials["optimizer"]
    assert read_credentials(third.credentials_path) == third.credentials


# ---------------------------------------------------------------------- URLs
def test_role_url(creds: dict[str, SecretStr]) -> None:
    pw = creds["risk"].get_secret_value()
    assert role_url("redis://127.0.0.1:6390/2", "risk", creds) == (
        f"redis://risk:{pw}@127.0.0.1:6390/2")
    # userinfo of the base URL is replaced, not kept
    assert role_url("redis://admin:old@h:1/0", "dashboard", creds).startswith(
        f"redis://dashboard:{creds[DASHBOARD].get_secret_value()}@h:1/0")
    assert role_url("rediss://h:1/0?ssl_cert_reqs=none", "risk", creds) == (
        f"rediss://risk:{pw}@h:1/0?ssl_cert_reqs=none")
    with pytest.raises(KeyError):
        role_url("redis://h:1/0", "nobody", creds)


def test_role_url_quotes_the_password() -> None:
    url = role_url("redis://h:1/0", "risk", {"risk": SecretStr("a@b:c/d")})
    assert url == "redis://risk:a%40b%3Ac%2Fd@h:1/0"


def test_agent_id_to_role() -> None:
    assert role_for_agent("strategy:ETHBTC") == "strategy"
    assert role_for_agent(topology.strategy_id("LTC/BTC")) == "strategy"
    for spec in topology.agent_specs(Settings(_env_file=None)):  # type: ignore[call-arg]
        assert role_for_agent(spec.agent_id) == spec.role
    for bad in ("orchestrator", "dashboard", "strategyX", ""):
        with pytest.raises(ValueError):
            role_for_agent(bad)


def test_url_for_role_from_the_environment(tmp_path: Path,
                                           creds: dict[str, SecretStr]) -> None:
    path = write_credentials(tmp_path / "credentials", creds)
    env = {"REDIS_URL": "redis://127.0.0.1:7000/0", redis_acl.CREDENTIALS_ENV: str(path)}
    assert url_for_role(DASHBOARD, environ=env) == role_url(env["REDIS_URL"], DASHBOARD, creds)
    assert url_for_role(DASHBOARD, environ={"REDIS_URL": "redis://x:1/0"}) == "redis://x:1/0"
    with pytest.raises(ValueError):
        url_for_role(DASHBOARD, environ={})


def test_mesh_access_gives_each_agent_its_role(tmp_path: Path,
                                               creds: dict[str, SecretStr]) -> None:
    path = write_credentials(tmp_path / "credentials", creds)
    access = MeshAccess.resolve("redis://127.0.0.1:7000/0", path)
    assert access.acl
    spec = topology.AgentSpec("strategy:ETHBTC", "strategy", "ETH/BTC")
    assert access.agent_env(spec) == {"REDIS_URL": role_url(access.base_url, "strategy", creds)}
    assert access.url(ORCHESTRATOR) == role_url(access.base_url, ORCHESTRATOR, creds)
    plain = MeshAccess.resolve("redis://:pw@127.0.0.1:7000/0", environ={})
    assert not plain.acl and plain.url(ORCHESTRATOR) == "redis://:pw@127.0.0.1:7000/0"


def test_supervisor_spawn_env_per_agent(tmp_path: Path, creds: dict[str, SecretStr]) -> None:
    access = MeshAccess("redis://127.0.0.1:7000/0", creds)
    s = Settings(_env_file=None, redis_url=access.url(ORCHESTRATOR))  # type: ignore[call-arg]
    specs = topology.agent_specs(s)
    sup = Supervisor(s, specs, {"A": "1", "REDIS_URL": access.base_url}, tmp_path,
                     agent_env=access.agent_env)
    for spec in specs:
        env = sup.env_for(spec)
        assert env["A"] == "1"
        assert env["REDIS_URL"] == role_url(access.base_url, spec.role, creds)
    assert Supervisor(s, specs, {"A": "1"}, tmp_path).env_for(specs[0]) == {"A": "1"}


# ---------------------------------------------------------------------- settings, server
def test_settings_file_has_no_password_and_env_url_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, creds: dict[str, SecretStr]
) -> None:
    for k in ("TRADINGMESH_CONFIG", "REDIS_URL", "TRADINGMESH_REDIS_URL"):
        monkeypatch.delenv(k, raising=False)
    url = role_url("redis://127.0.0.1:7000/0", ORCHESTRATOR, creds)
    s = load_settings(redis_url=url)
    path = write_resolved(s, tmp_path / "settings.json")
    assert creds[ORCHESTRATOR].get_secret_value() not in path.read_text()
    monkeypatch.setenv("TRADINGMESH_SETTINGS_FILE", str(path))
    assert load_settings().redis_url == "redis://127.0.0.1:7000/0"
    agent_url = role_url("redis://127.0.0.1:7000/0", "risk", creds)
    monkeypatch.setenv("REDIS_URL", agent_url)
    assert load_settings().redis_url == agent_url  # the agent's own user


def test_strip_url_userinfo() -> None:
    assert strip_url_userinfo("redis://u:p@h:1/0") == "redis://h:1/0"
    assert strip_url_userinfo("redis://:p@h:1/0") == "redis://h:1/0"
    assert strip_url_userinfo("redis://h:1/0") == "redis://h:1/0"


def test_server_command_with_acl(tmp_path: Path) -> None:
    server = RedisServer.with_acl(tmp_path, 6390, binary="/bin/redis-server")
    cmd = server.command()
    assert cmd[cmd.index("--aclfile") + 1] == str(tmp_path / "users.acl")
    assert "--requirepass" not in cmd
    assert cmd[cmd.index("--bind") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--protected-mode") + 1] == "yes"
    admin = read_credentials(tmp_path / "credentials")[ADMIN].get_secret_value()
    assert admin not in " ".join(cmd)
    assert server.url == f"redis://admin:{admin}@127.0.0.1:6390/0"
    assert server.public_url == "redis://127.0.0.1:6390/0"
    assert admin not in repr(server)
    assert server.credentials_path == (tmp_path / "credentials").resolve()
