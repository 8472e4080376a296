"""A taken API or dashboard port stops ``up``/``run`` before anything starts (issue 20,
item 2: ``up`` started every agent, died with a traceback and left its redis-server)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app

runner = CliRunner()


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _env(tmp_path: Path) -> dict[str, str]:
    return {"TRADINGMESH_VAR_DIR": str(tmp_path / "var"), "TRADINGMESH_API_TOKEN": "t" * 32}


def _nothing_started(tmp_path: Path) -> bool:
    var = tmp_path / "var"
    return not (var / "orchestrator.pid").exists() and not (var / "redis").exists() \
        and not (var / "redis_url").exists()


def test_up_refuses_a_taken_api_port(tmp_path: Path, taken_port: int) -> None:
    res = runner.invoke(app, ["up", "--api-port", str(taken_port), "--dashboard-port", "0"],
                        env=_env(tmp_path))
    text = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert f"the API: port {taken_port} on 127.0.0.1 is in use" in text
    assert "--api-port 0 for any free port" in text and "nothing was started" in text
    assert _nothing_started(tmp_path)


def test_up_refuses_a_taken_dashboard_port(tmp_path: Path, taken_port: int) -> None:
    res = runner.invoke(app, ["up", "--api-port", "0", "--dashboard-port", str(taken_port)],
                        env=_env(tmp_path))
    text = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert f"the dashboard: port {taken_port} on 127.0.0.1 is in use" in text
    assert _nothing_started(tmp_path)


def test_run_refuses_a_taken_api_port(tmp_path: Path, taken_port: int) -> None:
    res = runner.invoke(app, ["run", "--api-port", str(taken_port)], env=_env(tmp_path))
    assert res.exit_code == 2, res.output
    assert f"port {taken_port} on 127.0.0.1 is in use" in " ".join(res.output.split())
    assert _nothing_started(tmp_path)
