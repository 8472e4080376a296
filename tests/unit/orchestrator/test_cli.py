"""CLI argument and input validation (no mesh started)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from orchestrator.cli import app

runner = CliRunner()


def test_bad_speed_is_rejected() -> None:
    res = runner.invoke(app, ["run", "--speed", "fast"])
    assert res.exit_code == 2
    assert "max" in res.output


def test_bad_csv_is_refused_with_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "ETH_BTC-5m.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n"
                   "2018-01-10T04:55:00Z,0.1,0.2,0.05,0.15,10\n"
                   "2018-01-10T05:00:00Z,0.1,abc,0.05,0.15,10\n")
    res = runner.invoke(app, ["run", "--data", str(tmp_path)],
                        env={"TRADINGMESH_SYMBOLS": '["ETH/BTC"]'})
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "ETH_BTC-5m.csv" in text and "line 3" in text and "high" in text


def test_missing_symbol_file_is_named(tmp_path: Path) -> None:
    res = runner.invoke(app, ["run", "--data", str(tmp_path)])
    assert res.exit_code == 2
    assert "ETH_BTC-5m.csv" in " ".join(res.output.split())


def test_strategies_lists_declared_parameters() -> None:
    res = runner.invoke(app, ["strategies"])
    assert res.exit_code == 0
    for word in ("sma_cross", "momentum", "lookback", "volume_factor", "slow_ma"):
        assert word in res.output


def test_run_data_dir_replays_the_symbols_it_has(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """Issue 20, item 8: ``run --data DIR`` demanded a file for every configured symbol."""
    import shutil

    from orchestrator.cli.state import settings
    from orchestrator.cli.up import _symbols_with_files

    root = Path(__file__).resolve().parents[3]
    shutil.copy(root / "data" / "sample" / "ETH_BTC-5m.csv", tmp_path)
    overrides: dict[str, object] = {"data_dir": tmp_path}
    s = _symbols_with_files(settings(**overrides), overrides)
    assert s.symbols == ["ETH/BTC"]
    note = " ".join(capsys.readouterr().err.split())
    assert "replaying ETH/BTC only" in note and "LTC/BTC, ADA/BTC, DASH/BTC" in note
