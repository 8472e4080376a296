"""``tradingmesh model train|list`` and ``tradingmesh backtest --strategy ml_classifier``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
import typer
from typer.testing import CliRunner

from backend.marketdata.candles import load_candles, parse_timestamp
from backend.ml.store import ModelStore
from orchestrator.cli.backtest import register as register_backtest
from orchestrator.cli.models import register

ROOT = Path(__file__).resolve().parents[3]
ETH = ROOT / "data" / "sample" / "ETH_BTC-5m.csv"

app = typer.Typer(add_completion=False)


@app.callback()
def _main() -> None:
    """Throwaway app holding the model and backtest commands."""


register(app)
register_backtest(app)
runner = CliRunner()


def _bars_before(when: str) -> int:
    c = load_candles(ETH, "ETH/BTC")
    return int(np.searchsorted(c.time, parse_timestamp(when), "left"))


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "models"
    monkeypatch.setenv("TRADINGMESH_ML__MODEL_DIR", str(root))
    monkeypatch.setenv("TRADINGMESH_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("TRADINGMESH_SETTINGS_FILE", raising=False)
    return root


def test_train_saves_versions_and_list_shows_them(models: Path) -> None:
    res = runner.invoke(app, ["model", "train", "--symbol", "ETH/BTC", "--until",
                              "2018-01-20T00:00:00Z", "--horizon", "3"])
    assert res.exit_code == 0, res.output
    assert "trained ml_classifier v1 for ETH/BTC" in res.output
    assert "time-series CV accuracy (5 folds, gap 3 bars)" in res.output
    assert "v0001.joblib" in res.output
    meta = ModelStore(models, "ETH/BTC").meta(1)
    assert meta.horizon == 3 and meta.data_end < 1_516_406_400_000_000_000  # < --until
    assert meta.bars == _bars_before("2018-01-20T00:00:00Z")
    res = runner.invoke(app, ["model", "train", "--symbol", "ETH/BTC"])
    assert res.exit_code == 0 and "v2" in res.output
    res = runner.invoke(app, ["model", "list", "--symbol", "ETH/BTC"])
    assert res.exit_code == 0, res.output
    rows = [ln for ln in res.output.splitlines() if ln.strip().startswith("ETH/BTC")]
    assert len(rows) == 2 and f"{meta.cv_score:.3f}" in rows[0]


def test_train_errors_are_one_line(models: Path) -> None:
    res = runner.invoke(app, ["model", "train", "--symbol", "XRP/BTC"])
    assert res.exit_code == 2 and "error: " in res.output and "XRP_BTC-5m.csv" in res.output
    res = runner.invoke(app, ["model", "train", "--symbol", "ETH/BTC", "--until", "1999-01-01"])
    assert res.exit_code == 2 and "too little data" in res.output
    res = runner.invoke(app, ["model", "list"])
    assert res.exit_code == 0 and "no models" in res.output


def test_backtest_uses_the_stored_model(models: Path, tmp_path: Path) -> None:
    assert runner.invoke(app, ["model", "train", "--symbol", "ETH/BTC", "--until",
                               "2018-01-20"]).exit_code == 0
    report = tmp_path / "r.json"
    res = runner.invoke(app, ["backtest", "--data", str(ETH), "--strategy", "ml_classifier",
                              "--sizing", "all-in", "--report", str(report)])
    assert res.exit_code == 0, res.output
    n = _bars_before("2018-01-20")
    assert f"ml_classifier ETH/BTC: model v1 (trained on {n} bars" in res.output
    body = orjson.loads(report.read_bytes())
    assert body["strategy"] == "ml_classifier" and body["stats"]["trades"] > 0
    res = runner.invoke(app, ["backtest", "--data", str(ETH), "--strategy", "ml_classifier",
                              "--sizing", "all-in", "--model-version", "0",
                              "--report", str(report)])
    assert res.exit_code == 0 and "self-training" in res.output
    res = runner.invoke(app, ["backtest", "--data", str(ETH), "--strategy", "ml_classifier",
                              "--sizing", "all-in", "--model-version", "9"])
    assert res.exit_code == 2 and "version 9" in res.output
    # risk sizing (the default) runs the stored model through the mesh's pipeline
    res = runner.invoke(app, ["backtest", "--data", str(ETH), "--strategy", "ml_classifier",
                              "--report", str(report)])
    assert res.exit_code == 0, res.output
    assert "ml_classifier ETH/BTC: model v1" in res.output
    body = orjson.loads(report.read_bytes())
    assert body["sizing"] == "risk" and body["extra"]["signals"] > 0
    res = runner.invoke(app, ["backtest", "--data", str(ETH), "--strategy", "sma_cross",
                              "--model-version", "1"])
    assert res.exit_code == 2 and "--model-version is for ml_classifier" in res.output
