"""Run the whole mesh with sentinel secrets for ``tests/e2e/test_secret_leaks.py``.

Test-only code.  :func:`run_up` (run A: ``tradingmesh up`` with the API and the dashboard,
a Redis with a sentinel password, ccxt keys in a 0600 secrets file) and :func:`run_replay`
(run B: ``tradingmesh run --api-port 0`` on the mesh's own ACL Redis, keys in the
environment, logging at DEBUG) trade through ccxt against the loopback fake Binance, drive
the mesh with :mod:`secretprobe` and return a :class:`MeshRun` of everything it left
behind or answered, for :mod:`secretscan` to search.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from fakes.binance import SAMPLE_SYMBOLS, FakeBinance

from backend.redisctl.server import RedisServer, free_port
from backend.runtime.secretfiles import read_secrets_file
from tests.support.helpers import eventually
from tests.support.secretprobe import (
    ROOT,
    Api,
    CliRun,
    Sweep,
    base_env,
    browser_unavailable,
    command_lines,
    dashboard_http,
    dashboard_pages,
    run_cli,
    sweep_api,
)
from tests.support.secretscan import Sentinels, redis_items

LIMIT = 260  # candles per symbol (sma_cross needs ~105 to warm up)
LIMIT_B = 400  # run B ends with its candles: enough left to sweep the API once it trades
BARS_PER_S = 15.0
SECRET_NAMES = ("redis_password", "wrong_redis_password", "api_token_a", "api_token_b",
                "ccxt_key_a", "ccxt_secret_a", "ccxt_key_b", "ccxt_secret_b",
                "ccxt_password", "mt5_password")


def sentinel(name: str) -> str:
    """A unique secret value named ``name``, with characters that URL-encoding changes
    (so its encoded form is searched for separately)."""
    return f"SENTINEL-{name}-{secrets.token_hex(8)}+/@:x"


@dataclass
class MeshRun:
    """Everything one mesh run left behind or answered."""

    name: str
    var: Path
    run_dir: Path
    stdout: Path
    stderr: Path
    returncode: int | None = None
    sweep: Sweep = field(default_factory=Sweep)
    cli: list[CliRun] = field(default_factory=list)
    cmdlines: list[tuple[str, bytes]] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    extra_dirs: list[Path] = field(default_factory=list)  # scanned like the var dir
    redis: list[tuple[str, str, bytes]] = field(default_factory=list)  # live Redis dump
    pages: dict[str, bytes] = field(default_factory=dict)
    pages_skipped: str | None = None
    venue_orders: int = 0
    venue_faults_hit: int = 0
    #: A client order id the exchange got: not a secret, so every scanner must find it
    #: where orders are shown (proof that the scanners see the real data).
    control: Sentinels = field(default_factory=Sentinels)


def _config(path: Path, fake: FakeBinance, secrets_file: Path | None,
            log_level: str = "INFO", limit: int = LIMIT) -> Path:
    """The mesh's TOML: ccxt venue and candles from the fake, trade on every signal."""
    urls = "\n".join(f'{k} = "{v}"' for k, v in fake.ccxt_urls().items())
    file_line = f'secrets_file = "{secrets_file}"' if secrets_file else ""
    path.write_text(f"""
symbols = {list(SAMPLE_SYMBOLS)!r}
replay_limit = {limit}
market_data_source = "ccxt"
log_level = "{log_level}"
[default_strategy]
name = "sma_cross"
params = {{ fast = 3, slow = 8 }}
[risk]
min_confidence = 0.0
[venue]
kind = "ccxt"
poll_s = 0.2
submit_timeout_s = 5.0
resolve_backoff_s = 0.2
[venue.ccxt]
rate_limit_ms = 1
poll_s = 0.1
timeout_ms = 3000
{file_line}
[venue.ccxt.urls]
{urls}
""".replace("'", '"'))
    return path


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` with mode 0600 (as a user keeps a secrets file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def _start(argv: list[str], env: dict[str, str], work: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our interpreter and module
        [sys.executable, "-m", "orchestrator.cli", *argv], cwd=ROOT, env=env,
        stdout=(work / "orchestrator.stdout").open("wb"),
        stderr=(work / "orchestrator.stderr").open("wb"),
    )


def _api_url(var: Path, proc: subprocess.Popen[bytes], work: Path) -> str:
    assert proc.poll() is None, (work / "orchestrator.stderr").read_text()[-3000:]
    f = var / "api_url"
    return f.read_text().strip() if f.is_file() else ""


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(30)


def _fault_hits(fake: FakeBinance, method: str, path: str, before: int) -> bool:
    return len(fake.requests_to(method, path)) > before


#: CLI probe -> (exit code, what its stderr must say).
CLI_EXPECT = {
    "status": (0, b""),
    "status, wrong password": (1, b"not reachable"),
    "status, closed port": (1, b"not reachable"),
    "reset, wrong password": (1, b"not reachable"),
    "emergency stop, wrong password": (1, b"not reachable"),
    "token in a world-readable config": (2, b"other users"),
    "venue key misplaced in the config": (2, b"venue.ccxt.api_key"),
}


def cli_probes(env: dict[str, str], redis_port: int, s: Sentinels, work: Path
                ) -> list[CliRun]:
    """CLI commands that fail to reach Redis or refuse a config holding a secret, and
    one that works."""
    v = s.values
    wrong = f"redis://:{quote(v['wrong_redis_password'], safe='')}@127.0.0.1:{redis_port}/0"
    closed = f"redis://:{quote(v['redis_password'], safe='')}@127.0.0.1:{free_port()}/0"
    readable = work / "readable.toml"
    readable.write_text(f'api_token = "{v["api_token_a"]}"\n')
    readable.chmod(0o644)
    misplaced = write_private(work / "misplaced.toml",
                         f'[venue.ccxt]\napi_key = "{v["ccxt_key_a"]}"\n')
    return [
        run_cli("token in a world-readable config", ["status"],
                {**env, "TRADINGMESH_CONFIG": str(readable)}),
        run_cli("venue key misplaced in the config", ["status"],
                {**env, "TRADINGMESH_CONFIG": str(misplaced)}),
        run_cli("status, wrong password", ["status"], {**env, "REDIS_URL": wrong}),
        run_cli("status, closed port", ["status"], {**env, "REDIS_URL": closed}),
        run_cli("reset, wrong password", ["reset", "--reason", "leak test"],
                {**env, "REDIS_URL": wrong}),
        run_cli("emergency stop, wrong password", ["stop", "--emergency", "--wait", "0"],
                {**env, "REDIS_URL": wrong}),
        run_cli("status", ["status"], env),
    ]


def run_up(work: Path, s: Sentinels) -> MeshRun:  # noqa: PLR0915 - one scripted session
    """Run A: ``tradingmesh up`` with API and dashboard, external password Redis."""
    work.mkdir()
    var = work / "var"
    run = MeshRun("up", var, var, work / "orchestrator.stdout", work / "orchestrator.stderr")
    v = s.values
    redis_srv = RedisServer(work / "redis", password=v["redis_password"],
                            die_with_parent=True).start()
    run.extra_dirs.append(redis_srv.data_dir)
    fake = FakeBinance(api_key=v["ccxt_key_a"], secret=v["ccxt_secret_a"], start_bar=10,
                       bars_per_s=BARS_PER_S).start()
    secrets_file = write_private(work / "private" / "ccxt.toml",
                            f'api_key = "{v["ccxt_key_a"]}"\nsecret = "{v["ccxt_secret_a"]}"\n')
    env = base_env(
        TRADINGMESH_CONFIG=str(_config(work / "tradingmesh.toml", fake, secrets_file)),
        TRADINGMESH_VAR_DIR=str(var), REDIS_URL=redis_srv.url,
        TRADINGMESH_API_TOKEN=v["api_token_a"], TRADINGMESH_CCXT_PASSWORD=v["ccxt_password"],
        TRADINGMESH_MT5_PASSWORD=v["mt5_password"],
    )
    proc = _start(["up", "--speed", "max", "--api-port", "0", "--dashboard-port", "0"],
                  env, work)
    api: Api | None = None
    try:
        url = eventually(lambda: _api_url(var, proc, work), 240, 0.2, "up: API listening")
        api = Api(url, v["api_token_a"], run.sweep)
        eventually(lambda: api.call("ready", "GET", "/api/ready").status == 200, 180, 0.5,
                   "up: every agent running")
        eventually(lambda: len(fake.orders()) >= 2, 240, 0.2,
                   "up: orders placed through ccxt at the fake exchange")
        # exchange errors: a 503 and a dropped connection on the execution agent's polls
        for kind, path in (("503", "/api/v3/account"), ("drop", "/api/v3/myTrades")):
            before = len(fake.requests_to("GET", path))
            fake.inject(kind, "GET", path, apply=False)
            eventually(lambda p=path, b=before: _fault_hits(fake, "GET", p, b), 60, 0.1,
                       f"up: execution met the injected {kind} on {path}")
            run.venue_faults_hit += 1
        eventually(lambda: api.json("/api/fills"), 60, 0.5, "up: fills recorded")
        api.call("optimizer run", "POST", "/api/optimizer/runs",
                 json={"symbol": "ETH/BTC", "population": 4, "generations": 1,
                       "walk_forward": 1})
        api.call("restart an agent", "POST", "/api/agents/strategy:LTCBTC/restart")
        sweep_api(api, SAMPLE_SYMBOLS, full=True)
        run.agents = [a["agent_id"] for a in api.json("/api/agents")["agents"]]
        run.cmdlines = command_lines(proc.pid)
        run.cli = cli_probes(env, redis_srv.port, s, work)
        dash = eventually(lambda: (var / "dashboard_url").read_text().strip(), 60, 0.2,
                          "up: dashboard started")
        eventually(lambda: api.http.get(dash + "/_stcore/health").status_code == 200, 120,
                   0.3, "up: dashboard serving")
        dashboard_http(dash, api)
        run.pages_skipped = browser_unavailable()
        if run.pages_skipped is None:
            run.pages = dashboard_pages(dash)
        api.call("kill switch", "POST", "/api/emergency-stop",
                 json={"reason": "secret leak test", "wait_s": 10.0})
        api.call("reset", "POST", "/api/circuit-breaker/reset",
                 json={"reason": "secret leak test done"})
        sweep_api(api, SAMPLE_SYMBOLS, full=False)  # the state after the kill switch
    finally:
        if api is not None:
            api.close()
        run.returncode = _stop(proc)
        run.venue_orders = len(fake.orders())
        if fake.orders():
            run.control.add("client_order_id", fake.orders()[0].client_order_id)
        fake.stop()
        try:
            with redis_srv.client() as c:
                run.redis = list(redis_items(c))
                run.redis.append(("slowlog", "redis SLOWLOG", repr(c.slowlog_get(128)).encode()))
                run.redis.append(("clients", "redis CLIENT LIST", repr(c.client_list()).encode()))
        finally:
            redis_srv.stop()
    return run


def run_replay(work: Path, s: Sentinels) -> MeshRun:
    """Run B: ``tradingmesh run --api-port 0`` on the mesh's own Redis, logging at DEBUG."""
    work.mkdir()
    var = work / "var"
    v = s.values
    fake = FakeBinance(api_key=v["ccxt_key_b"], secret=v["ccxt_secret_b"], start_bar=10,
                       bars_per_s=BARS_PER_S).start()
    env = base_env(
        TRADINGMESH_CONFIG=str(_config(work / "tradingmesh.toml", fake, None, "DEBUG",
                                       LIMIT_B)),
        TRADINGMESH_VAR_DIR=str(var), TRADINGMESH_API_TOKEN=v["api_token_b"],
        TRADINGMESH_CCXT_API_KEY=v["ccxt_key_b"], TRADINGMESH_CCXT_SECRET=v["ccxt_secret_b"],
        TRADINGMESH_CCXT_PASSWORD=v["ccxt_password"], TRADINGMESH_MT5_PASSWORD=v["mt5_password"],
    )
    proc = _start(["run", "--limit", str(LIMIT_B), "--api-port", "0"], env, work)
    run = MeshRun("run", var, var, work / "orchestrator.stdout", work / "orchestrator.stderr")
    try:
        url = eventually(lambda: _api_url(var, proc, work), 240, 0.2, "run: API listening")
        api = Api(url, v["api_token_b"], run.sweep)
        try:
            eventually(lambda: api.json("/api/orders"), 240, 0.5, "run: an order recorded")
            api.call("optimizer run", "POST", "/api/optimizer/runs",
                     json={"symbol": "LTC/BTC", "population": 4, "generations": 1,
                           "walk_forward": 1})
            sweep_api(api, SAMPLE_SYMBOLS, full=False)
            run.agents = [a["agent_id"] for a in api.json("/api/agents")["agents"]]
            run.cmdlines = command_lines(proc.pid)
        finally:
            api.close()
        run.returncode = proc.wait(600)
    finally:
        _stop(proc)
        run.venue_orders = len(fake.orders())
        if fake.orders():
            run.control.add("client_order_id", fake.orders()[0].client_order_id)
        fake.stop()
    (run.run_dir,) = (var / "runs").iterdir()
    return run


def generated_credentials(var: Path) -> Iterator[tuple[Path, str, str]]:
    """``(file, key, value)`` of every password in a generated credentials file."""
    for f in sorted(var.rglob("credentials*")):
        if f.is_file():
            for key, value in read_secrets_file(f).items():
                if len(value.get_secret_value()) >= 8:
                    yield f, key, value.get_secret_value()
