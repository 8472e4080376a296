"""backend.redisctl.server against the real redis-server binary."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import redis

from backend.redisctl.server import RedisServer, RedisStartError
from tests.support.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("redis-server") is None and os.environ.get("CI", "").lower() != "true",
        reason="redis-server is not on PATH (scripts/test.sh installs it with apt)",
    ),
]


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do (TIME_WAIT)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
        return True


def test_start_ping_stop_frees_port(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    with server:
        assert server.running and server.pid
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        with redis.Redis.from_url(server.url) as client:
            assert client.ping() is True
            assert client.config_get("appendonly") == {"appendonly": "yes"}
            assert client.config_get("save") == {"save": ""}
        pid, port = server.pid, server.port
    assert not server.running and server.pid is None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    eventually(lambda: _port_is_free(port), timeout=5, message=f"port {port} still taken")
    assert (tmp_path / "redis.log").exists()


def test_restart_keeps_aof_data_and_port(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server:
        url, first_pid = server.url, server.pid
        with redis.Redis.from_url(url) as client:
            client.set("halt", "latched")
            client.xadd("orders", {"payload": "{}"})
        server.restart()
        assert server.url == url and server.pid != first_pid
        with redis.Redis.from_url(url) as client:
            assert client.get("halt") == b"latched"
            assert client.xlen("orders") == 1


def test_crash_then_start_keeps_written_data(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server:
        with redis.Redis.from_url(server.url) as client:
            client.set("k", "v")
        server.kill()  # SIGKILL: no shutdown; the AOF write already reached the OS
        assert not server.running
        server.start()
        with redis.Redis.from_url(server.url) as client:
            assert client.get("k") == b"v"


def test_without_appendonly_restart_loses_data(tmp_path: Path) -> None:
    with RedisServer(tmp_path, appendonly=False) as server:
        with redis.Redis.from_url(server.url) as client:
            client.set("k", "v")
        server.restart()
        with redis.Redis.from_url(server.url) as client:
            assert client.get("k") is None


def test_password(tmp_path: Path) -> None:
    with RedisServer(tmp_path, password="s3cret") as server:
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()
        with (
            redis.Redis(port=server.port) as anon,
            pytest.raises(redis.AuthenticationError),
        ):
            anon.get("x")


def test_port_taken_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        with pytest.raises(RedisStartError) as info:
            RedisServer(tmp_path, port, start_timeout=5).start()
    text = str(info.value)
    assert f"127.0.0.1:{port}" in text and "redis.log" in text
    assert "Address already in use" in text or "exited with code" in text


def test_bad_option_shows_log_tail(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, extra_args=["--no-such-option", "1"], start_timeout=5)
    with pytest.raises(RedisStartError, match="exited with code"):
        server.start()
    assert not server.running


def test_fixture_gives_an_empty_server(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        assert client.dbsize() == 0
        client.set("leftover", "1")


def test_fixture_flushes_between_tests(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        assert client.get("leftover") is None


def test_serve_cli(tmp_path: Path) -> None:
    var = tmp_path / "var"
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend.redisctl.server", "serve", "--var", str(var)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("REDIS_URL=redis://127.0.0.1:"), (line, proc.stderr.read())
        url = line.removeprefix("REDIS_URL=")
        eventually(lambda: (var / "redis.pid").exists(), timeout=5)
        assert (var / "redis.url").read_text().strip() == url
        redis_pid = int((var / "redis.pid").read_text())
        with redis.Redis.from_url(url) as client:
            assert client.ping()
            assert int(client.info("server")["process_id"]) == redis_pid
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (var / "redis.url").exists() and not (var / "redis.pid").exists()
    eventually(lambda: not psutil.pid_exists(redis_pid), timeout=5, message="redis survived")


def test_serve_cli_stop_command_and_watch_pid(tmp_path: Path) -> None:
    var = tmp_path / "var"
    watched = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    serve = subprocess.Popen(
        [sys.executable, "-m", "backend.redisctl.server", "serve", "--var", str(var),
         "--watch-pid", str(watched.pid)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = serve.stdout.readline().strip().removeprefix("REDIS_URL=")
        assert url.startswith("redis://")
        watched.kill()
        watched.wait()
        assert serve.wait(15) == 0  # the watched process is gone: redis stopped too
        # `stop` against a serve that is already gone is a no-op
        done = subprocess.run(
            [sys.executable, "-m", "backend.redisctl.server", "stop", "--var", str(var)],
            cwd=ROOT, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert done.returncode == 0
    finally:
        for p in (watched, serve):
            if p.poll() is None:
                p.kill()
                p.wait()

    serve = subprocess.Popen(
        [sys.executable, "-m", "backend.redisctl.server", "serve", "--var", str(var)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert serve.stdout.readline().startswith("REDIS_URL=")
        eventually(lambda: (var / "redis.url").exists(), timeout=5)
        done = subprocess.run(
            [sys.executable, "-m", "backend.redisctl.server", "stop", "--var", str(var)],
            cwd=ROOT, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert serve.wait(15) == 0  # redis shut down cleanly: serve exits 0
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
