"""``tradingmesh backtest``: output, JSON report, chart, CSV variants and input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
import typer
from typer.testing import CliRunner

from orchestrator.cli.backtest import parse_params, register

ROOT = Path(__file__).resolve().parents[3]
ETH = ROOT / "data" / "sample" / "ETH_BTC-5m.csv"

app = typer.Typer(add_completion=False)


@app.callback()
def _main() -> None:
    """Throwaway app holding only the backtest command."""


register(app)
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["backtest", *map(str, args)])


def test_all_in_run_prints_table_and_writes_report_and_chart(tmp_path: Path) -> None:
    report, chart = tmp_path / "out" / "r.json", tmp_path / "chart.html"
    res = invoke("--data", ETH, "--strategy", "sma_cross", "--params", "fast=10, slow=20",
                 "--cash", "10000", "--commission", "0.002", "--sizing", "all-in",
                 "--report", report, "--plot", chart)
    assert res.exit_code == 0, res.output
    for word in ("ETH/BTC", "Sharpe", "Calmar", "max DD duration", "profit factor", "exposure",
                 "sizing all-in", "closed trades"):
        assert word in res.stdout
    rep = orjson.loads(report.read_bytes())
    assert rep["sizing"] == "all-in" and rep["symbols"] == ["ETH/BTC"]
    assert rep["params"]["fast"] == 10 and rep["params"]["slow"] == 20
    assert rep["stats"]["trades"] == len(rep["trades"]) == 368
    assert rep["stats"]["final_equity"] == pytest.approx(2298.8989864911, rel=1e-9)
    for key in ("total_return", "cagr", "sharpe", "sortino", "calmar", "max_drawdown",
                "max_drawdown_duration_ns", "win_rate", "profit_factor", "exposure"):
        assert rep["stats"][key] is not None, key
    first = rep["trades"][0]
    assert (first["entry_bar"], first["exit_bar"], first["side"]) == (26, 30, "long")
    assert {"entry_time", "exit_time", "size", "entry_price", "exit_price", "net_pnl",
            "fees"} <= set(first)
    html = chart.read_text()
    assert "plotly" in html.lower() and "drawdown" in html and "long entry" in html


def test_risk_run_with_two_files(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    ltc = ETH.with_name("LTC_BTC-5m.csv")
    res = invoke("--data", ETH, "--data", ltc, "--params", "fast=8,slow=24", "--report",
                 report)
    assert res.exit_code == 0, res.output
    assert "account" in res.stdout and "LTC/BTC" in res.stdout
    rep = orjson.loads(report.read_bytes())
    assert rep["sizing"] == "risk" and rep["symbols"] == ["ETH/BTC", "LTC/BTC"]
    assert rep["stats"]["trades"] == sum(s["trades"] for s in rep["symbol_stats"].values())
    assert rep["stats"]["trades"] > 0


def test_a_data_directory_backtests_every_symbol_file_in_it(tmp_path: Path) -> None:
    """``--data DIR`` (issue 20, item 8): every BASE_QUOTE-<tf>.csv, other CSVs skipped."""
    rows = ETH.read_text().splitlines()[:400]
    (tmp_path / "ETH_BTC-5m.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "LTC_BTC-5m.csv").write_text(
        "\n".join(ETH.with_name("LTC_BTC-5m.csv").read_text().splitlines()[:400]) + "\n")
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    report = tmp_path / "r.json"
    res = invoke("--data", tmp_path, "--report", report)
    assert res.exit_code == 0, res.output
    assert orjson.loads(report.read_bytes())["symbols"] == ["ETH/BTC", "LTC/BTC"]


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def daily_rows(n: int, extra: bool) -> list[str]:
    t0 = np.datetime64("2020-01-01")
    px = 100 + 10 * np.sin(np.arange(n) / 6.0)
    rows = []
    for i, p in enumerate(px):
        day = str(t0 + np.timedelta64(i, "D"))
        cells = [day, f"{p:.4f}", f"{p * 1.02:.4f}", f"{p * 0.98:.4f}", f"{p * 1.001:.4f}", "5"]
        rows.append(",".join(cells + (["x", "1.5"] if extra else [])))
    return rows


def test_date_only_timestamps_and_extra_columns_load(tmp_path: Path) -> None:
    f = write_csv(tmp_path / "prices.csv", "Timestamp,Open,High,Low,Close,Volume,Note,Adj",
                  daily_rows(200, extra=True))
    report = tmp_path / "r.json"
    res = invoke("--data", f, "--symbol", "aaa/usd", "--sizing", "all-in", "--params",
                 "fast=3,slow=8", "--cash", "1000", "--report", report)
    assert res.exit_code == 0, res.output
    rep = orjson.loads(report.read_bytes())
    assert rep["symbols"] == ["AAA/USD"]
    assert rep["stats"]["bars"] == 200 and rep["stats"]["trades"] > 5
    assert rep["stats"]["periods_per_year"] == 365  # daily bars, weekends included
    assert rep["stats"]["start_time"] == 1_577_836_800 * 10**9  # 2020-01-01T00:00Z


def one_line_error(res, *fragments: str) -> None:
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert "Traceback" not in res.output
    for frag in fragments:
        assert frag in err, (frag, err)


def test_bad_row_names_file_and_line(tmp_path: Path) -> None:
    rows = daily_rows(5, extra=False)
    rows[2] = rows[2].replace(",5", ",-5")
    f = write_csv(tmp_path / "AAA_USD-1d.csv", "timestamp,open,high,low,close,volume", rows)
    one_line_error(invoke("--data", f), "AAA_USD-1d.csv", "line 4", "volume")


def test_unparsable_cell_names_file_line_and_column(tmp_path: Path) -> None:
    rows = daily_rows(5, extra=False)
    rows[0] = rows[0].replace("2020-01-01", "yesterday")
    f = write_csv(tmp_path / "AAA_USD-1d.csv", "timestamp,open,high,low,close,volume", rows)
    one_line_error(invoke("--data", f), "AAA_USD-1d.csv", "line 2", "timestamp")


@pytest.mark.parametrize(("args", "fragments"), [
    (["--data", "missing/ETH_BTC-5m.csv"], ["missing/ETH_BTC-5m.csv", "no such file"]),
    (["--data", str(ROOT / "docs")], ["docs: a directory without BASE_QUOTE-<timeframe>.csv"]),
    ([], ["--data"]),
    (["--data", ETH, "--params", "fast"], ["--params", "'fast'"]),
    (["--data", ETH, "--params", "fast=10,fast=12"], ["twice"]),
    (["--data", ETH, "--params", "fast=abc"], ["'fast'", "not a number"]),
    (["--data", ETH, "--params", "speed=3"], ["no parameter 'speed'"]),
    (["--data", ETH, "--params", "fast=40,slow=20"], ["smaller"]),
    (["--data", ETH, "--strategy", "nope"], ["unknown strategy 'nope'", "sma_cross"]),
    (["--data", ETH, "--sizing", "half"], ["--sizing", "all-in"]),
    (["--data", ETH, "--commission", "0.5"], ["--commission"]),
    (["--data", ETH, "--cash", "0"], ["--cash"]),
    (["--data", ETH, "--data", ETH], ["twice"]),
    (["--data", ETH, "--data", ETH.with_name("LTC_BTC-5m.csv"), "--symbol", "X/Y"],
     ["--symbol"]),
])
def test_bad_input_is_one_line_and_exit_2(args: list, fragments: list[str]) -> None:
    one_line_error(invoke(*args), *fragments)


def test_symbol_must_come_from_the_name_or_the_option(tmp_path: Path) -> None:
    f = write_csv(tmp_path / "prices.csv", "timestamp,open,high,low,close,volume",
                  daily_rows(5, extra=False))
    one_line_error(invoke("--data", f), "prices.csv", "--symbol BASE/QUOTE")


def test_parse_params() -> None:
    assert parse_params("") == {}
    assert parse_params(" fast = 10 ,slow=30,") == {"fast": "10", "slow": "30"}
    with pytest.raises(ValueError, match="name=value"):
        parse_params("fast=")
