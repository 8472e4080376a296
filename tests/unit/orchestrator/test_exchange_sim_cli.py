"""Exchange simulator command line: ``python -m backend.exchange_sim`` and ``tradingmesh
exchange-sim`` print one JSON line once listening, serve, stop cleanly on SIGTERM/SIGINT
(exit 0); bad options or data exit 2 with a one-line error."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from backend.exchange_sim import DEFAULT_DATA, TEST_KEY, TEST_SECRET, SimAdmin, SimAdminError
from orchestrator.cli import app

ROOT = Path(__file__).resolve().parents[3]
MODULE = [sys.executable, "-m", "backend.exchange_sim"]
TYPER = [sys.executable, "-c", "from orchestrator.cli import app; app()", "exchange-sim"]


def start(cmd: list[str]) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start the simulator; return it with its ready line (within 60 s)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=60)
    except queue.Empty:
        proc.kill()
        raise AssertionError("no ready line within 60 s") from None
    if not line:
        err = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"the simulator exited with {proc.wait(10)}: {err}")
    return proc, json.loads(line)


def stop(proc: subprocess.Popen[str], sig: int) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_module_serves_with_its_options_and_exits_0_on_sigterm() -> None:
    proc, ready = start(MODULE + [
        "--data", str(DEFAULT_DATA), "--symbols", "ETH/BTC,LTC/BTC", "--port", "0",
        "--bars-per-s", "4", "--start-bar", "60", "--fee-asset", "base", "--dup-scope", "open",
        "--balances", "BTC=1,ETH=0", "--seed", "7", "--admin-token", "T"])
    try:
        url = ready["url"]
        assert url.startswith("http://127.0.0.1:") and ready["ccxt_urls"]["public"] == (
            url + "/api/v3")
        assert (ready["api_key"], ready["secret"]) == (TEST_KEY, TEST_SECRET)
        assert httpx.get(url + "/api/v3/ping").json() == {}
        info = httpx.get(ready["ccxt_urls"]["public"] + "/exchangeInfo").json()
        assert [s["symbol"] for s in info["symbols"]] == ["ETHBTC", "LTCBTC"]
        with pytest.raises(SimAdminError):
            SimAdmin(url).state()  # the admin token is required
        with SimAdmin(url, token="T") as admin:
            first = admin.manual_trade("ETH/BTC", "BUY", "1.000", "web_same")
            again = admin.manual_trade("ETH/BTC", "BUY", "1.000", "web_same")  # dup_scope open
            state = admin.state()
        assert first.order_id != again.order_id
        assert state.balances["ETH"].free == Decimal("1.998")  # fee in base: 2 x 0.001
    finally:
        code = stop(proc, signal.SIGTERM)
    assert code == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/api/v3/ping", timeout=2)


def test_tradingmesh_exchange_sim_serves_and_exits_0_on_sigint() -> None:
    proc, ready = start(TYPER + ["--symbols", "ADA/BTC", "--bars-per-s", "0",
                                 "--api-key", "k-1", "--secret", "s-1"])
    try:
        assert (ready["api_key"], ready["secret"]) == ("k-1", "s-1")
        t0 = httpx.get(ready["url"] + "/api/v3/time").json()["serverTime"]
        with SimAdmin(ready["url"]) as admin:
            assert admin.advance(2) == t0 + 600_000  # frozen clock, moved by hand
    finally:
        code = stop(proc, signal.SIGINT)
    assert code == 0


@pytest.mark.parametrize("args,words", [
    (["--data", "/no/such/dir"], "not a directory"),
    (["--symbols", "XRP/BTC"], "XRP_BTC-5m.csv"),
    (["--fee-asset", "bnb"], "fee-asset"),
])
def test_module_bad_option_or_data_exits_2_with_one_line(args: list[str], words: str) -> None:
    res = subprocess.run(MODULE + args, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0]


def test_tradingmesh_exchange_sim_bad_data_exits_2(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["exchange-sim", "--data", str(tmp_path)])
    assert res.exit_code == 2 and "ETH_BTC-5m.csv" in res.output
    res = runner.invoke(app, ["exchange-sim", "--balances", "BTC=-1"])
    assert res.exit_code == 2 and "ASSET=AMOUNT" in res.output
