"""The orchestrator's supervision of the dashboard process (``orchestrator/dashboard_proc``),
with a stand-in command instead of Streamlit so it runs in milliseconds."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from backend.settings import DashboardConfig, Settings
from orchestrator.dashboard_proc import DashboardProcess, app_path, serve_dashboard
from tests.support.helpers import aeventually, eventually

TOKEN = "dash-token-0123456789"
#: Writes its environment to argv[1], then waits for a signal.
DUMP_ENV = [sys.executable, "-c",
            "import json, os, signal, sys\n"
            "open(sys.argv[1], 'w').write(json.dumps(dict(os.environ)))\n"
            "signal.pause()"]


def _proc(tmp_path: Path, command: list[str], **kw: object) -> DashboardProcess:
    return DashboardProcess("http://0.0.0.0:8123", TOKEN, "127.0.0.1", 8502,
                            tmp_path / "logs" / "dashboard.log", command=command, **kw)


def test_streamlit_command_line_has_no_secret() -> None:
    p = DashboardProcess("http://127.0.0.1:8000", TOKEN, "127.0.0.1", 8502, Path("x.log"))
    cmd = p.command()
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert Path(cmd[4]) == app_path() and app_path().name == "app.py" and app_path().is_file()
    for flag, value in (("--server.address", "127.0.0.1"), ("--server.port", "8502"),
                        ("--server.headless", "true"), ("--browser.gatherUsageStats", "false")):
        assert cmd[cmd.index(flag) + 1] == value
    assert not any(TOKEN in part for part in cmd)
    env = p.env()
    assert env["TRADINGMESH_API_TOKEN"] == TOKEN
    assert env["TRADINGMESH_API_URL"] == "http://127.0.0.1:8000"
    no_token = DashboardProcess("http://127.0.0.1:8000", None, "127.0.0.1", 1, Path("x"))
    assert "TRADINGMESH_API_TOKEN" not in no_token.env()


def test_token_reaches_the_process_through_its_environment(tmp_path: Path) -> None:
    dump = tmp_path / "env.json"
    p = _proc(tmp_path, [*DUMP_ENV, str(dump)], refresh_s=2.0)
    p.start()
    try:
        env = eventually(lambda: dump.is_file() and json.loads(dump.read_text() or "null"),
                         timeout=20, message="child wrote its environment")
        assert env["TRADINGMESH_API_TOKEN"] == TOKEN
        assert env["TRADINGMESH_API_URL"] == "http://127.0.0.1:8123"  # wildcard -> loopback
        assert env["TRADINGMESH_DASHBOARD_REFRESH_S"] == "2"
        cmdline = Path(f"/proc/{p.pid}/cmdline").read_bytes() if sys.platform == "linux" else b""
        assert TOKEN.encode() not in cmdline
    finally:
        assert asyncio.run(p.stop()) == -signal.SIGTERM
    assert not p.alive and p.proc is None


def test_a_killed_dashboard_is_restarted(tmp_path: Path) -> None:
    p = _proc(tmp_path, [sys.executable, "-c", "import signal; signal.pause()"],
              backoff_base_s=0.01)
    p.start()
    first = p.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    eventually(lambda: p.check() or (p.alive and p.pid != first), timeout=20,
               message="dashboard restarted after kill -9")
    assert p.restarts == 1 and p.last_exit == -signal.SIGKILL and p.pid != first
    asyncio.run(p.stop())
    assert p.check() is False and p.restarts == 1  # stopped on purpose: stays stopped


def test_restart_backoff_doubles_while_it_keeps_dying(tmp_path: Path) -> None:
    p = _proc(tmp_path, [sys.executable, "-c", "raise SystemExit(3)"], backoff_base_s=1.0,
              backoff_max_s=3.0, stable_s=60.0)
    delays = []
    p.start()
    for _ in range(4):
        assert p.proc is not None and p.proc.wait(20) == 3
        t0 = p.started_mono + 0.5  # noticed half a second after it started
        assert p.check(now=t0) is False  # death noticed: restart scheduled
        assert p.next_start_mono is not None
        delays.append(p.next_start_mono - t0)
        assert p.check(now=p.next_start_mono - 0.01) is False
        assert p.check(now=p.next_start_mono) is True  # restarted
    assert delays == [1.0, 2.0, 3.0, 3.0]
    assert p.restarts == 4
    asyncio.run(p.stop())


def test_serve_dashboard_runs_watches_and_stops(tmp_path: Path) -> None:
    s = Settings(var_dir=tmp_path, dashboard=DashboardConfig(port=0))

    async def go() -> None:
        cmd = [sys.executable, "-c", "import signal; signal.pause()"]
        async with serve_dashboard(s, "http://127.0.0.1:8000", TOKEN, interval=0.01,
                                   command=cmd) as dash:
            assert dash is not None and dash.alive and dash.port > 0
            assert (tmp_path / "dashboard_url").read_text().strip() == dash.url
            first = dash.pid
            os.kill(first, signal.SIGKILL)
            await aeventually(lambda: dash.alive and dash.pid != first, timeout=20,
                              message="the watcher restarts a killed dashboard")
            proc = dash.proc
        assert proc is not None and proc.poll() is not None  # stopped with the block
        assert not (tmp_path / "dashboard_url").exists()

        off = Settings(var_dir=tmp_path, dashboard=DashboardConfig(enabled=False))
        async with serve_dashboard(off, "http://127.0.0.1:8000", TOKEN) as none:
            assert none is None

    asyncio.run(go())


def test_a_taken_port_means_no_dashboard_not_a_restart_loop(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        s = Settings(var_dir=tmp_path, dashboard=DashboardConfig(port=port))

        async def go() -> None:
            async with serve_dashboard(s, "http://127.0.0.1:8000", TOKEN,
                                       command=[sys.executable, "-c", "pass"]) as dash:
                assert dash is None
            assert not (tmp_path / "dashboard_url").exists()

        asyncio.run(go())
