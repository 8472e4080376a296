"""End to end: no secret the mesh is given ever shows up where it should not.

The whole mesh runs twice with *sentinel* secrets (unique random strings), trading
through the real ccxt library against the loopback fake Binance:

A. ``tradingmesh up`` with the REST API and the dashboard, on a private redis-server
   whose password is a sentinel (``REDIS_URL`` with it); the ccxt API key and secret in
   a 0600 secrets file (``venue.ccxt.secrets_file``), the API token in
   ``TRADINGMESH_API_TOKEN``, the ccxt password and the MT5 password in their
   environment variables.  While it trades: a 503 and a dropped connection from the
   exchange, every GET route of ``/openapi.json`` (real and unknown agent ids, symbols,
   optimizer run ids; with the token, without it, with a wrong one), every POST route
   with a wrong/no token, bad bodies and unknown ids, an optimizer run, an agent
   restart, the kill switch and its reset, every dashboard page in headless Chromium,
   CLI commands that fail to reach Redis (wrong password, closed port) or refuse a
   config holding a secret (world-readable; a venue key where none belongs).
B. ``tradingmesh run --api-port 0`` on the Redis the mesh starts itself (with generated
   ACL credentials when the mesh makes them: their passwords become sentinels too), ccxt
   keys and API token from the environment, logging at DEBUG; the API swept while it
   trades.  (Code in ``tests/support/secretruns.py`` and ``tests/support/secretprobe.py``.)

Then every sentinel, raw and encoded (URL, base64, JSON), is searched in: every file
under both var dirs (agent logs, settings.json, report, database, Redis AOF and log,
dashboard log), the orchestrators' stdout and stderr, every API and dashboard answer
(status, headers, body), every row of every table (audit included), every key and value
of Redis (every entry of every stream), every CLI output, every process command line.
Files that must hold a secret (``redis_url``, ``api_token``, generated ``credentials``)
are skipped by name, and must be mode 0600.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import fakeredis
import pytest

from tests.support.secretruns import (
    CLI_EXPECT,
    SECRET_NAMES,
    MeshRun,
    generated_credentials,
    run_replay,
    run_up,
    sentinel,
    write_private,
)
from tests.support.secretscan import (
    Hit,
    Sentinels,
    private_mode,
    redis_items,
    scan_bytes,
    scan_sqlite,
    scan_tree,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

#: Files that exist to hold a secret: skipped by the scan, must be 0600.
SECRET_FILES = ("redis_url", "api_token", "credentials")


@dataclass
class Leaks:
    """The sentinels and both runs."""

    sentinels: Sentinels
    runs: list[MeshRun]


def _need_redis() -> None:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail("CI=true but redis-server is not on PATH", pytrace=False)
        pytest.skip("redis-server not on PATH (scripts/test.sh installs it)")


@pytest.fixture(scope="module")
def leaks(tmp_path_factory: pytest.TempPathFactory) -> Leaks:
    _need_redis()
    tmp = tmp_path_factory.mktemp("leaks")
    s = Sentinels()
    for name in SECRET_NAMES:
        s.add(name, sentinel(name))
    runs = [run_up(tmp / "a", s), run_replay(tmp / "b", s)]
    for run in runs:
        for f, key, value in generated_credentials(run.var):
            s.add(f"{run.name}:{f.name}:{key}", value)
    return Leaks(s, runs)


def _scan_console(data: bytes, where: str, sentinels: Sentinels) -> list[Hit]:
    """Scan terminal output as printed and with its lines joined: rich folds a long word
    (a URL with a password in it) at the console width."""
    hits = scan_bytes(data, where, sentinels)
    seen = {(h.name, h.form) for h in hits}
    return hits + [h for h in scan_bytes(data.replace(b"\n", b""), f"{where} (unwrapped)",
                                         sentinels) if (h.name, h.form) not in seen]


def _report(hits: list[Hit]) -> str:
    return f"{len(hits)} secret(s) leaked:\n" + "\n".join(str(h) for h in hits[:40])


# ---------------------------------------------------------------------- self-check
def test_the_scanner_finds_a_planted_sentinel(tmp_path: Path) -> None:
    """The scanners would report a leak: one secret planted raw, URL-encoded and in
    base64 in files, a database row and Redis values is found every time."""
    import base64
    import sqlite3

    s = Sentinels()
    s.add("planted", sentinel("planted"))
    secret = s.values["planted"]
    logs = tmp_path / "var" / "logs"
    logs.mkdir(parents=True)
    (logs / "clean.log").write_text("nothing to see\n")
    (logs / "raw.log").write_text(f"INFO connecting with {secret}\n")
    (logs / "url.log").write_text(f"redis://:{quote(secret, safe='')}@127.0.0.1:1/0\n")
    (logs / "b64.log").write_bytes(b"Basic " + base64.b64encode(f"u:{secret}".encode()))
    write_private(tmp_path / "var" / "credentials", f"admin = {secret}\n")
    scanned, excluded, hits = scan_tree(tmp_path / "var", s, SECRET_FILES)
    assert {p.name for p in scanned} == {"clean.log", "raw.log", "url.log", "b64.log"}
    assert [p.name for p in excluded] == ["credentials"] and private_mode(excluded[0])
    assert {(Path(h.where).name, h.form) for h in hits} == {
        ("raw.log", "raw"), ("url.log", "url"), ("b64.log", "base64+2")}
    assert all(secret not in h.context for h in hits)  # reports mask the secret
    db = tmp_path / "t.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE audit (id TEXT, detail TEXT)")
        con.execute("INSERT INTO audit VALUES ('a1', 'fine'), ('a2', ?)", (f"x{secret}x",))
    counts, db_hits = scan_sqlite(db, s)
    assert counts == {"audit": 2} and [h.where for h in db_hits] == ["t.db:audit[2].detail"]
    folded = f"error: redis://:{quote(secret, safe='')}@127.0.0.1:6379/0"
    console = f"{folded[:30]}\n{folded[30:]}\n".encode()  # rich folds long words
    assert not scan_bytes(console, "console", s)
    assert [h.form for h in _scan_console(console, "console", s)] == ["url"]
    r = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    r.xadd("agent:errors", {"data": b"ok"})
    r.xadd("agent:errors", {"data": f'{{"error": "{secret}"}}'.encode()})
    r.hset("h", "k", "fine")
    r.set("s", "fine")
    found = [h for _k, where, data in redis_items(r) for h in scan_bytes(data, where, s)]
    assert [h.where for h in found] == ["redis stream agent:errors"]


# ---------------------------------------------------------------------- the runs
def test_both_runs_traded_through_ccxt_and_served_the_api(leaks: Leaks) -> None:
    up, replay = leaks.runs
    assert up.venue_orders >= 2 and up.venue_faults_hit == 2
    assert replay.returncode == 0, replay.stderr.read_text()[-3000:]
    assert replay.venue_orders >= 1, "run B should have traded through ccxt"
    for run in leaks.runs:
        sweep = run.sweep
        assert sweep.get_routes and sweep.get_routes <= set(sweep.covered)
        unanswered = {r: st for r, st in sweep.covered.items() if 200 not in st}
        assert not unanswered, f"{run.name}: GET routes that never answered 200: {unanswered}"
        errors = [(e.label, e.status) for e in sweep.exchanges
                  if e.status is None or e.status >= 500 and "ready" not in e.label]
        assert not errors, f"{run.name}: server errors / no answer: {errors[:20]}"
        assert {e.status for e in sweep.exchanges if e.label == "optimizer run"} == {202}
    by_label: dict[str, set[int | None]] = {}
    for e in up.sweep.exchanges:
        by_label.setdefault(e.label, set()).add(e.status)
    for route in up.sweep.get_routes - {"/api/health"}:
        assert by_label[f"GET {route} no token"] == {401}, route
        assert by_label[f"GET {route} wrong token"] == {401}, route
    for route in up.sweep.post_routes:
        assert by_label[f"POST {route} wrong token"] == {401}, route
        assert by_label[f"POST {route} invalid json"] <= {404, 422}, route
        assert by_label[f"POST {route} not utf-8"] <= {400, 404, 422}, route
    assert by_label["kill switch"] == {200} and by_label["reset"] == {200}


def test_generated_redis_credentials_are_sentinels_too(leaks: Leaks) -> None:
    """Where the mesh started its own Redis with an ACL, its generated passwords are
    scanned for like the given ones (and nowhere else is a credentials file)."""
    up, replay = leaks.runs
    generated = [n for n in leaks.sentinels.values if n.startswith("run:")]
    if list(replay.var.rglob("users.acl")):
        assert len(generated) >= 2, generated  # admin, orchestrator, one per role
    assert not [n for n in leaks.sentinels.values if n.startswith("up:")]  # external Redis


def _scan_files(run: MeshRun, sentinels: Sentinels) -> tuple[list[Path], list[Hit]]:
    scanned: list[Path] = []
    hits: list[Hit] = []
    for root in (run.var, *run.extra_dirs):
        files, excluded, found = scan_tree(root, sentinels, SECRET_FILES)
        scanned += files
        hits += found
        for p in excluded:
            assert private_mode(p), f"{p} holds a secret but is mode {p.stat().st_mode:o}"
    return scanned, hits


def test_no_secret_in_any_file_the_runs_wrote(leaks: Leaks) -> None:
    hits: list[Hit] = []
    for run in leaks.runs:
        scanned, found = _scan_files(run, leaks.sentinels)
        hits += found
        names = {p.relative_to(run.var).as_posix() for p in scanned if p.is_relative_to(run.var)}
        run_rel = run.run_dir.relative_to(run.var).as_posix()
        prefix = "" if run_rel == "." else run_rel + "/"
        assert run.agents, run.name
        for agent in run.agents:
            assert f"{prefix}logs/{agent.replace(':', '_')}.log" in names, (run.name, agent)
        assert f"{prefix}settings.json" in names and f"{prefix}tradingmesh.db" in names
        assert any(p.name == "redis.log" for p in scanned), run.name
        assert any("appendonly" in p.as_posix() for p in scanned), run.name  # Redis data
        if run.name == "up":
            assert "logs/dashboard.log" in names
        else:
            assert f"{prefix}report.json" in names
        assert _scan_files(run, run.control)[1], f"{run.name}: control not found in files"
    assert not hits, _report(hits)


def test_no_secret_in_orchestrator_output(leaks: Leaks) -> None:
    hits: list[Hit] = []
    for run in leaks.runs:
        for f in (run.stdout, run.stderr):
            hits += _scan_console(f.read_bytes(), f"{run.name} {f.name}", leaks.sentinels)
        assert b"API:" in run.stdout.read_bytes(), run.name
    assert not hits, _report(hits)


def test_no_secret_in_api_or_dashboard_answers(leaks: Leaks) -> None:
    hits: list[Hit] = []
    for run in leaks.runs:
        assert len(run.sweep.exchanges) > 50, run.name
        control: list[Hit] = []
        for e in run.sweep.exchanges:
            where = f"{run.name} {e.label} -> {e.status}"
            hits += scan_bytes(e.raw(), where, leaks.sentinels)
            control += scan_bytes(e.raw(), where, run.control)
        assert control, f"{run.name}: the API never showed an order"
    assert any(e.label.startswith("dashboard") and e.status == 200
               for e in leaks.runs[0].sweep.exchanges)
    assert not hits, _report(hits)


def test_no_secret_in_the_database(leaks: Leaks) -> None:
    hits: list[Hit] = []
    for run in leaks.runs:
        db = run.run_dir / "tradingmesh.db"
        counts, found = scan_sqlite(db, leaks.sentinels)
        assert counts.get("audit", 0) > 0 and counts.get("orders", 0) > 0, (run.name, counts)
        assert scan_sqlite(db, run.control)[1], f"{run.name}: control not in the database"
        hits += found
    assert not hits, _report(hits)


def test_no_secret_in_redis(leaks: Leaks) -> None:
    up, replay = leaks.runs
    streams = {w for k, w, _d in up.redis if k == "stream"}
    assert {"redis stream orders", "redis stream audit"} <= streams, sorted(streams)[:20]
    assert any(scan_bytes(d, w, up.control) for _k, w, d in up.redis)
    hits = [h for _k, where, data in up.redis
            for h in scan_bytes(data, f"up {where}", leaks.sentinels)]
    # run B's Redis is gone with its run: its append-only file holds every write
    aof = [p for p in (replay.run_dir / "redis").rglob("*") if p.is_file()
           and "appendonly" in p.name]
    assert any(scan_bytes(p.read_bytes(), p.name, replay.control) for p in aof), aof
    for p in aof:
        hits += scan_bytes(p.read_bytes(), f"run {p}", leaks.sentinels)
    assert not hits, _report(hits)


def test_no_secret_in_cli_errors(leaks: Leaks) -> None:
    up = leaks.runs[0]
    assert {c.label for c in up.cli} == set(CLI_EXPECT)
    for c in up.cli:  # each said what is wrong (in one line: no traceback)
        code, says = CLI_EXPECT[c.label]
        said = b" ".join(c.stderr.split())  # rich wraps lines at 80 columns
        assert c.returncode == code and says in said, (c.label, c.stderr[-800:])
        assert b"Traceback" not in c.stderr, c.label
    hits = [h for c in up.cli for out in (c.stdout, c.stderr)
            for h in _scan_console(out, f"`tradingmesh {' '.join(c.argv)}` ({c.label})",
                                   leaks.sentinels)]
    assert not hits, _report(hits)


def test_no_secret_on_a_command_line(leaks: Leaks) -> None:
    hits: list[Hit] = []
    for run in leaks.runs:
        assert sum(b"agents.run" in argv for _w, argv in run.cmdlines) >= len(run.agents)
        for where, argv in run.cmdlines:
            hits += scan_bytes(argv, f"{run.name} {where}", leaks.sentinels)
    assert not hits, _report(hits)


def test_no_secret_on_the_dashboard_pages(leaks: Leaks) -> None:
    up = leaks.runs[0]
    if up.pages_skipped is not None:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI=true but the dashboard pages were not rendered: "
                        f"{up.pages_skipped}", pytrace=False)
        pytest.skip(f"dashboard pages not rendered: {up.pages_skipped}")
    assert len(up.pages) == 6 and b"strategy:ETHBTC" in up.pages["agents"]
    hits = [h for page, html in up.pages.items()
            for h in scan_bytes(html, f"dashboard page {page}", leaks.sentinels)]
    assert not hits, _report(hits)
