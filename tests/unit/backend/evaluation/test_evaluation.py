"""The self-evaluation report (backend.evaluation.build and evaluation_render) and
``tradingmesh report`` on hand-made fills, signals, equity and optimizer runs."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pandas as pd
import pytest
from typer.testing import CliRunner

from backend.evaluation.build import build_evaluation, evaluate, periods_per_year, suggestion
from backend.evaluation.render import to_html, to_markdown, write_report
from backend.messages import FoldScore, OptimizerFinished, OrderFilled, Side
from backend.optimizer.proposal import ProposalRecord, proposal_key
from backend.persistence import Store
from backend.settings import Settings, StrategyConfig
from orchestrator.cli import app

S = 1_000_000_000  # 1 s in ns
T0 = 1_700_000_000 * S
DAY = 86_400 * S


def fill(fid: str, sym: str, side: str, qty: float, price: float, t: int, cid: str,
         seq: int, fee_rate: float = 0.001) -> dict:
    return {"fill_id": fid, "symbol": sym, "side": side, "quantity": qty, "price": price,
            "fee": qty * price * fee_rate, "realized_pnl": 0.0, "exit_reason": "signal",
            "bar_seq": seq, "fill_time": t, "ts": t, "correlation_id": cid,
            "client_order_id": f"c-{fid}"}


#: ETH: a winning long (strategy a, trending up) held 10 min; LTC: a losing long
#: (strategy b, no regime) held 30 min; ADA: a winning short (strategy a, ranging) opened
#: on day 2, 5 min; DASH: an open long.
FILLS = [
    fill("1", "ETH/BTC", "BUY", 2.0, 0.050, T0, "s1", 1),
    fill("2", "ETH/BTC", "SELL", 2.0, 0.052, T0 + 600 * S, "s2", 3),
    fill("3", "LTC/BTC", "BUY", 10.0, 0.010, T0 + 60 * S, "s3", 2),
    fill("4", "LTC/BTC", "SELL", 10.0, 0.009, T0 + 1860 * S, "s4", 9),
    fill("5", "ADA/BTC", "SELL", 1000.0, 1e-5, T0 + DAY, "s5", 300),
    fill("6", "ADA/BTC", "BUY", 1000.0, 0.9e-5, T0 + DAY + 300 * S, "s6", 301),
    fill("7", "DASH/BTC", "BUY", 1.0, 0.02, T0 + DAY + 600 * S, "s7", 302),
]
SIGNALS = [
    {"id": "s1", "strategy": "a", "regime": "trending_up/low_vol"},
    {"id": "s2", "strategy": "a", "regime": "trending_down/low_vol"},
    {"id": "s3", "strategy": "b", "regime": ""},
    {"id": "s4", "strategy": "b"},
    {"id": "s5", "strategy": "a", "regime": "ranging/high_vol"},
    {"id": "s6", "strategy": "a"},
    {"id": "s7", "strategy": "b", "regime": "ranging/low_vol"},
]
NET = {
    "ETH/BTC": 2 * (0.052 - 0.050) - 0.001 * (0.1 + 0.104),
    "LTC/BTC": 10 * (0.009 - 0.010) - 0.001 * (0.1 + 0.09),
    "ADA/BTC": 1000 * (1e-5 - 0.9e-5) - 0.001 * (0.01 + 0.009),
}
EQUITY = pd.DataFrame({
    "bar_seq": [1, 2, 3, 4, 5, 6],
    "bar_time": [T0, T0 + 300 * S, T0 + 600 * S, T0 + DAY, T0 + DAY + 300 * S,
                 T0 + DAY + 600 * S],
    "equity": [1.0, 1.02, 0.99, 0.97, 1.01, 1.03],
})


def report(**kw):  # noqa: ANN003, ANN201
    return build_evaluation(FILLS, SIGNALS, EQUITY, 1.0, periods=105_120.0,
                            generated_ts=T0 + 2 * DAY, **kw)


def test_totals_by_hand() -> None:
    r = report()
    assert (r.trades, r.wins, r.losses, r.open_trades) == (3, 2, 1, 1)
    assert r.win_rate == pytest.approx(2 / 3)
    assert r.net_pnl == pytest.approx(sum(NET.values()))
    assert r.profit_factor == pytest.approx(
        (NET["ETH/BTC"] + NET["ADA/BTC"]) / -NET["LTC/BTC"])
    assert r.avg_trade_duration_s == pytest.approx((600 + 1800 + 300) / 3)
    assert r.max_drawdown == pytest.approx((1.02 - 0.97) / 1.02)
    rets = [1.02 / 1.0 - 1, 0.99 / 1.02 - 1, 0.97 / 0.99 - 1, 1.01 / 0.97 - 1, 1.03 / 1.01 - 1]
    mean = sum(rets) / 5
    sd = math.sqrt(sum((x - mean) ** 2 for x in rets) / 4)
    assert r.sharpe == pytest.approx(mean / sd * math.sqrt(105_120.0))
    assert (r.start_equity, r.end_equity) == (1.0, 1.03)
    assert r.equity_return == pytest.approx(0.03) and r.bars == 6


def test_best_worst_and_breakdowns() -> None:
    r = report()
    assert [(b.name, b.trades) for b in r.by_symbol] == [
        ("ETH/BTC", 1), ("ADA/BTC", 1), ("LTC/BTC", 1)]  # by net P&L, best first
    assert (r.best_symbol, r.worst_symbol) == ("ETH/BTC", "LTC/BTC")
    a = next(b for b in r.by_strategy if b.name == "a")
    assert (a.trades, a.wins, a.net_pnl) == (2, 2, pytest.approx(NET["ETH/BTC"] + NET["ADA/BTC"]))
    assert (r.best_strategy, r.worst_strategy) == ("a", "b")
    # regime of the *entry* signal; "" and missing -> unknown
    regimes = {b.name: (b.trades, b.net_pnl) for b in r.by_regime}
    assert regimes == {"trending_up/low_vol": (1, pytest.approx(NET["ETH/BTC"])),
                       "ranging/high_vol": (1, pytest.approx(NET["ADA/BTC"])),
                       "unknown": (1, pytest.approx(NET["LTC/BTC"]))}
    eth = r.by_symbol[0]
    assert eth.avg_duration_s == 600 and eth.avg_return == pytest.approx(NET["ETH/BTC"] / 0.1)


def test_since_keeps_trades_entered_after_it_and_the_curve_after_it() -> None:
    r = report(since=T0 + DAY)
    assert r.trades == 1 and r.by_symbol[0].name == "ADA/BTC" and r.open_trades == 1
    assert r.bars == 3 and r.start_equity == 0.97
    assert r.max_drawdown == 0.0
    unknown = build_evaluation(FILLS, [], None, 1.0)
    assert {b.name for b in unknown.by_strategy} == {"unknown"} and unknown.bars == 0


def run_row(run_id: str, params: dict, finished: int, symbols=("ETH/BTC",), score=1.0,
            strategy="sma_cross", overfit=False, status="finished") -> dict:
    return {"id": run_id, "strategy": strategy, "objective": "sharpe", "symbols": list(symbols),
            "status": status, "finished_ts": finished, "best_params": params,
            "mean_out_of_sample": score, "mean_in_sample": 2 * score, "overfit": overfit}


RUNNING = {"fast": 10, "slow": 30, "stop_atr": 2.0}


def test_suggestion_rules() -> None:
    new = {"fast": 7, "slow": 30, "stop_atr": 2.5}
    rec = {"status": "proposed", "current_strategy": "sma_cross", "current_params": RUNNING,
           "baseline": 0.4, "score": 1.1, "reason": "beats"}
    s = suggestion(run_row("r1", new, 5), rec, None)
    assert s.suggested and s.baseline_measured and (s.score, s.baseline) == (1.1, 0.4)
    assert [(c.name, c.current, c.suggested) for c in s.changes] == [
        ("fast", 10, 7), ("stop_atr", 2.0, 2.5)]
    assert not suggestion(run_row("r1", new, 5), {**rec, "status": "applied"}, None).suggested
    assert not suggestion(run_row("r1", new, 5), {**rec, "baseline": 1.5}, None).suggested
    assert not suggestion(run_row("r1", new, 5, overfit=True), rec, None).suggested
    same = suggestion(run_row("r1", dict(RUNNING), 5), None, ("sma_cross", RUNNING))
    assert not same.suggested and same.changes == [] and "same parameters" in same.reason
    cli = suggestion(run_row("r1", new, 5), None, ("sma_cross", RUNNING))
    assert cli.suggested and not cli.baseline_measured and cli.baseline is None
    other = suggestion(run_row("r1", {"period": 14}, 5, strategy="rsi"), None,
                       ("sma_cross", RUNNING))
    assert [(c.name, c.current, c.suggested) for c in other.changes] == [("period", None, 14)]


def test_latest_finished_run_per_symbol_and_strategy() -> None:
    runs = [run_row("old", {"fast": 5}, 1), run_row("new", {"fast": 6}, 9),
            run_row("failed", {"fast": 4}, 20, status="failed"),
            run_row("ltc", {"fast": 8}, 3, symbols=("LTC/BTC",))]
    r = report(runs=runs, running=lambda sym: ("sma_cross", RUNNING))
    assert [(s.run_id, s.symbol) for s in r.suggestions] == [("new", "ETH/BTC"),
                                                              ("ltc", "LTC/BTC")]


def _store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'eval.db'}")
    for f in FILLS:
        store.record_fill(OrderFilled(
            source="execution", fill_id=f["fill_id"], client_order_id=f["client_order_id"],
            correlation_id=f["correlation_id"], symbol=f["symbol"], side=Side(f["side"]),
            quantity=f["quantity"], price=f["price"], fee=f["fee"], bar_seq=f["bar_seq"],
            fill_time=f["fill_time"], ts=f["ts"]))
    from backend.messages import PortfolioMarked
    store.record_equity_many([PortfolioMarked(
        source="x", bar_seq=int(r.bar_seq), bar_time=int(r.bar_time), cash=r.equity,
        equity=r.equity, exposure=0.0, day=0, day_start_equity=1.0)
        for r in EQUITY.itertuples()])
    store.record_optimizer_run("run-9", "sma_cross", "sharpe", {}, ["ETH/BTC"], 0, 1,
                               started_ts=10)
    best = {"fast": 7, "slow": 25, "atr_period": 14, "stop_atr": 2.0, "reward_risk": 2.0}
    store.finish_optimizer_run(OptimizerFinished(
        source="optimizer", run_id="run-9", strategy="sma_cross", objective="sharpe",
        symbols=["ETH/BTC"], best_params=best, mean_out_of_sample=0.9, mean_in_sample=1.5,
        overfit=False, folds=[FoldScore(fold=0, params=best, is_start=0, is_end=1)],
        started_ns=10, finished_ns=20))
    return store


def test_evaluate_reads_the_store(tmp_path: Path) -> None:
    store = _store(tmp_path)
    settings = Settings(strategies={"ETHBTC": StrategyConfig(params={"fast": 10, "slow": 30})})
    r = evaluate(store, settings)
    assert r.trades == 3 and r.net_pnl == pytest.approx(sum(NET.values()))
    assert {b.name for b in r.by_strategy} == {"unknown"}  # no signal rows stored
    [s] = r.suggestions
    assert s.run_id == "run-9" and s.suggested and not s.baseline_measured
    assert s.current_params["fast"] == 10 and s.current_params["atr_period"] == 14
    assert {c.name for c in s.changes} == {"fast", "slow"}
    # with the optimizer agent's verdict, its baseline is used
    store.put_state(proposal_key("run-9"), ProposalRecord(
        run_id="run-9", symbol="ETH/BTC", status="not_proposed", reason="no better",
        strategy="sma_cross", params=s.params, current_strategy="sma_cross",
        current_params=s.current_params, objective="sharpe", score=0.9, baseline=1.3,
        decided_ts=30).model_dump(mode="json"))
    [s2] = evaluate(store, settings).suggestions
    assert s2.baseline_measured and s2.baseline == 1.3 and not s2.suggested
    store.close()
    assert periods_per_year("5m") == 105_120 and periods_per_year("1h") == 8760
    assert periods_per_year("weird") == 105_120


def test_render_markdown_and_offline_html(tmp_path: Path) -> None:
    r = report(runs=[run_row("r1", {"fast": 7}, 5)],
               running=lambda sym: ("sma_cross", {"fast": 10}))
    md = to_markdown(r, {"Equity and drawdown": "x-equity.svg"})
    assert "| win rate | 66.7% |" in md and "![Equity and drawdown](x-equity.svg)" in md
    assert "| trending_up/low_vol | 1 | 100.0% |" in md
    assert "fast: 10 -> 7" in md
    page = to_html(r)
    assert page.count("<svg") == 2 and "<script" not in page and "http://" not in \
        page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    files = write_report(r, tmp_path / "out" / "rep.md", "both")
    assert sorted(f.name for f in files) == ["rep-equity.svg", "rep-pnl.svg", "rep.html",
                                             "rep.md"]
    svg = (tmp_path / "out" / "rep-pnl.svg").read_text()
    assert "ETH/BTC" in svg and "LTC/BTC" in svg and svg.count("<rect") == 4  # bg + 3 bars


def test_cli_report_writes_files_and_json(tmp_path: Path) -> None:
    _store(tmp_path).close()
    db = f"sqlite:///{tmp_path / 'eval.db'}"
    runner = CliRunner()
    res = runner.invoke(app, ["report", "--db", db, "--out", str(tmp_path / "r"),
                              "--format", "both", "--since", "2000-01-01"])
    assert res.exit_code == 0, res.output
    assert "3 closed trades, win rate 66.7%" in res.output
    md = (tmp_path / "r.md").read_text()
    assert "| closed trades | 3 (2 won, 1 lost; 1 open) |" in md
    assert (tmp_path / "r-equity.svg").is_file() and "<svg" in (tmp_path / "r.html").read_text()
    res = runner.invoke(app, ["report", "--db", db, "--json"])
    assert res.exit_code == 0, res.output
    data = orjson.loads(res.stdout)
    assert data["trades"] == 3 and data["suggestions"][0]["run_id"] == "run-9"
    res = runner.invoke(app, ["report", "--db", db, "--since", "yesterday"])
    assert res.exit_code == 2 and "not a date" in res.output
    res = runner.invoke(app, ["report", "--db", db, "--format", "pdf"])
    assert res.exit_code == 2


def test_regimes_recorded_with_the_signals_reach_the_report(tmp_path: Path) -> None:
    from backend.messages import SignalGenerated

    store = _store(tmp_path)
    for row in SIGNALS:
        f = next(x for x in FILLS if x["correlation_id"] == row["id"])
        store.record_signal(SignalGenerated(
            id=row["id"], source="strategy:x", symbol=f["symbol"], side=Side(f["side"]),
            confidence=0.9, entry_price=f["price"], stop_loss=f["price"] * 0.9,
            take_profit=f["price"] * 1.1, reason="t", strategy=row["strategy"],
            bar_seq=f["bar_seq"], bar_time=f["fill_time"], regime=row.get("regime", "")))
    r = evaluate(store, Settings())
    store.close()
    assert {b.name: b.trades for b in r.by_regime} == {
        "trending_up/low_vol": 1, "ranging/high_vol": 1, "unknown": 1}
    assert {b.name for b in r.by_strategy} == {"a", "b"}
