"""``tradingmesh optimize``: table, JSON report, database row, and one-line input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
import typer
from typer.testing import CliRunner

from backend.persistence import Store
from orchestrator.cli.optimize import _rate, format_params, register

ROOT = Path(__file__).resolve().parents[3]
ETH = ROOT / "data" / "sample" / "ETH_BTC-5m.csv"

app = typer.Typer(add_completion=False)


@app.callback()
def _main() -> None:
    """Throwaway app holding only the optimize command."""


register(app)
runner = CliRunner()


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 1,500 rows of the ETH sample (a date column, extra column ignored)."""
    lines = ETH.read_text().splitlines()
    path = tmp_path_factory.mktemp("data") / "ETH_BTC-5m.csv"
    path.write_text("\n".join(lines[:1501]) + "\n")
    return path


def invoke(*args: object):
    return runner.invoke(app, ["optimize", *map(str, args)])


def test_walk_forward_run_prints_table_writes_report_and_stores_the_run(
        tmp_path: Path, small_csv: Path) -> None:
    report, db = tmp_path / "out" / "r.json", f"sqlite:///{tmp_path / 'tm.db'}"
    args = ("--data", small_csv, "--strategy", "sma_cross", "--population", 8,
            "--generations", 3, "--objective", "sortino", "--walk-forward", 2, "--seed", 5,
            "--cash", 1, "--commission", 0.001, "--fixed", "stop_atr=2,reward_risk=2",
            "--report", report, "--db", db)
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    out = res.stdout
    for word in ("optimize sma_cross for sortino on ETH/BTC", "walk-forward 2 folds", "seed 5",
                 "in-sample window", "out-of-sample window", "IS", "OOS", "overfit", "mean",
                 "hall of fame", "best parameters: fast=", "evaluations", "report written",
                 "sizing risk", "scored by the mesh's trading model"):
        assert word in out, word
    rep = orjson.loads(report.read_bytes())
    assert rep["status"] == "finished" and rep["config"]["objective"] == "sortino"
    assert rep["config"]["sizing"] == "risk"  # the default
    assert rep["config"]["fixed"] == {"stop_atr": 2, "reward_risk": 2}
    assert len(rep["folds"]) == 2 and len(rep["folds"][0]["generations"]) == 4
    for f in rep["folds"]:
        assert f["best_params"]["stop_atr"] == 2.0
        assert f["in_sample_window"]["end"] == f["out_of_sample_window"]["start"]
        assert {"in_sample", "out_of_sample", "overfit", "hall_of_fame"} <= set(f)
    assert rep["best_params"] == rep["folds"][-1]["best_params"]
    assert format_params(rep["best_params"]) in out.replace("\n", "")
    store = Store(db)
    (row,) = store.optimizer_runs()
    assert row["id"] == rep["run_id"] and row["status"] == "finished"
    assert len(store.optimizer_run(row["id"])["generations"]) == 8
    store.close()
    # the same seed gives the same report
    again = tmp_path / "again.json"
    res2 = invoke(*args[:-4], "--report", again, "--db", db)
    assert res2.exit_code == 0, res2.output
    rep2 = orjson.loads(again.read_bytes())
    assert rep2["folds"] == rep["folds"] and rep2["run_id"] != rep["run_id"]


def test_without_seed_a_seed_is_chosen_and_printed(tmp_path: Path, small_csv: Path) -> None:
    report = tmp_path / "r.json"
    res = invoke("--data", small_csv, "--population", 4, "--generations", 0,
                 "--report", report, "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert res.exit_code == 0, res.output
    seed = orjson.loads(report.read_bytes())["config"]["seed"]
    assert f"seed {seed}," in res.stdout and "no walk-forward" in res.stdout
    assert "OOS" in res.stdout and "fold means" not in res.stdout


@pytest.mark.parametrize(("args", "fragment"), [
    ((), "no data"),
    (("--data", "missing.csv"), "no such file"),
    (("--strategy", "nope"), "unknown strategy 'nope'"),
    (("--objective", "luck"), "unknown --objective 'luck'"),
    (("--sizing", "kelly"), "unknown --sizing"),
    (("--population", 2), "--population"),
    (("--generations", -1), "--generations"),
    (("--walk-forward", 40), "needs at least"),
    (("--workers", 0), "--workers"),
    (("--fixed", "stop_atr"), "bad --fixed item"),
    (("--fixed", "nope=1"), "no parameter 'nope'"),
    (("--fixed", "fast=1000"), "out of range"),
    (("--cash", -5), "--cash"),
    (("--commission", 0.5), "--commission"),
    (("--db", "nonsense://"), "database"),
])
def test_bad_input_is_one_line_exit_2(tmp_path: Path, small_csv: Path, args: tuple,
                                      fragment: str) -> None:
    base = [] if args[:1] == ("--data",) or not args else ["--data", small_csv]
    if "--db" not in args:
        base += ["--db", f"sqlite:///{tmp_path / 'x.db'}"]
    res = invoke(*base, *args, "--report", tmp_path / "r.json")
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("error: ") and fragment in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.json").exists()


def test_a_csv_with_a_date_only_timestamp_loads(tmp_path: Path) -> None:
    t = np.datetime64("2020-01-01") + np.arange(400)
    px = 100 + np.cumsum(np.random.default_rng(3).normal(0, 1, 400))
    rows = ["timestamp,open,high,low,close,volume,extra"]
    rows += [f"{d},{p},{p + 1},{p - 1},{p},10,x" for d, p in zip(t, px, strict=True)]
    path = tmp_path / "AAA_USD-1d.csv"
    path.write_text("\n".join(rows) + "\n")
    res = invoke("--data", path, "--population", 6, "--generations", 1, "--walk-forward", 1,
                 "--seed", 1, "--report", tmp_path / "r.json",
                 "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert res.exit_code == 0, res.output
    assert "AAA/USD" in res.stdout


def test_a_slow_run_shows_its_rate_not_zero():
    """Issue 20, item 6: a risk-sizing run ended with ``(0/s)``."""
    assert _rate(0.0152) == "0.0152"
    assert _rate(2.8) == "2.8"
    assert _rate(1234.5) == "1,234"
    assert _rate(float("nan")) == "-"
