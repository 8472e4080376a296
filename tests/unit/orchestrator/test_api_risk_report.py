"""``GET /api/risk`` (risk analytics) and ``GET /api/report`` (self-evaluation) over the fake
mesh of tests/support/api_fixtures.py (seeded store, fakeredis), with sample bars on
``market_data``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from backend import channels
from backend.bus import DATA_FIELD
from backend.marketdata.candles import load_dir
from backend.mesh.pipeline import bar_message
from backend.rest.models import EvaluationReport, RiskFigures
from backend.risk.rules import RiskState
from tests.support.api_fixtures import AUTH, BEST, N_MARKS, Harness, mesh, seed_run

ROOT = Path(__file__).resolve().parents[3]
N_BARS = 120


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    with mesh(tmp_path) as harness:
        candles = load_dir(ROOT / "data" / "sample", ["ETH/BTC", "LTC/BTC"])
        seq = 0
        for i in range(N_BARS):
            for sym in ("ETH/BTC", "LTC/BTC"):
                seq += 1
                bar = bar_message(candles[sym], i, seq, "5m")
                harness.sync.xadd(channels.MARKET_DATA, {DATA_FIELD: bar.to_json()})
        harness.candles = candles  # type: ignore[attr-defined]
        yield harness


def get(h: Harness, path: str, **params: str):  # noqa: ANN201
    with TestClient(h.app()) as client:
        return client.get(path, headers=AUTH, params=params)


def test_risk_has_position_var_metrics_limits_and_band(h: Harness) -> None:
    h.control.settings = h.settings.model_copy(update={"risk": h.settings.risk.model_copy(
        update={"var_limit": 0.001, "benchmark_symbol": "LTC/BTC"})})
    h.sync.set(channels.state_key("risk"), RiskState(
        var_alert="warning", var=0.00085, var_ratio=0.85, var_bar_seq=139,
    ).model_dump_json().join(['{"state": ', ', "mark": null}']))
    r = get(h, "/api/risk")
    assert r.status_code == 200, r.text
    risk = RiskFigures.model_validate(r.json())
    mark = h.seed.mark
    assert mark is not None
    # equity-curve estimates now include Monte Carlo
    assert {e.method for e in risk.estimates} == {"historical", "parametric", "monte_carlo"}
    assert all(e.var is not None for e in risk.estimates)
    # the LTC/BTC position's VaR by hand: its notional times the bar returns' 1% quantile
    closes = h.candles["LTC/BTC"].close[:N_BARS]  # type: ignore[attr-defined]
    scen = (closes[1:] / closes[:-1] - 1) * (2.0 * 0.0021) / mark.equity
    hist99 = next(e for e in risk.position_estimates
                  if (e.method, e.level) == ("historical", 0.99))
    assert hist99.var == pytest.approx(-np.percentile(scen, 1), rel=1e-9)
    assert hist99.var_quote == pytest.approx(hist99.var * mark.equity)
    assert risk.position_observations == N_BARS - 1
    assert len(risk.position_estimates) == 6
    ltc = risk.by_symbol["LTC/BTC"]
    assert [(e.method, e.level) for e in ltc.estimates] == [
        (m, lv) for m in ("historical", "parametric", "monte_carlo") for lv in (0.95, 0.99)]
    assert ltc.estimates[1].var == pytest.approx(hist99.var)  # one position: the same
    # metrics
    m = risk.metrics
    assert m is not None and m.benchmark == "LTC/BTC"
    assert m.correlation == {"LTC/BTC": {"LTC/BTC": pytest.approx(1.0)}}
    assert m.max_drawdown is not None and m.max_drawdown > 0
    assert m.gross_exposure == pytest.approx(0.0042)
    # limits: the configured limit, the VaR against it, the agent's last view
    lim = risk.limits
    assert lim is not None and lim.var_limit == 0.001 and lim.var_method == "historical"
    assert lim.var == pytest.approx(hist99.var) and lim.ratio == pytest.approx(hist99.var / 0.001)
    assert lim.agent_level == "warning" and lim.agent_ratio == 0.85 and lim.agent_bar_seq == 139
    # equity band: quantiles ordered, starting at the equity now
    band = risk.equity_band
    assert band is not None and band.observations == N_MARKS - 1 and band.quantiles == [
        0.05, 0.5, 0.95]
    lo, mid, hi = (np.array(b) for b in band.bands)
    assert lo[0] == pytest.approx(mark.equity) and np.all(lo <= mid) and np.all(mid <= hi)
    assert len(mid) == band.steps + 1


def test_risk_without_bars_still_answers(tmp_path: Path) -> None:
    with mesh(tmp_path) as h:
        risk = RiskFigures.model_validate(get(h, "/api/risk").json())
        assert all(e.var is None for e in risk.position_estimates)
        assert risk.limits is not None and risk.limits.level == "off"
        assert "no bar history of LTC/BTC" in risk.limits.reason


def test_report_endpoint(h: Harness) -> None:
    seed_run(h, "run-1")  # a finished, proposed run: 7/25 instead of 10/30
    r = get(h, "/api/report")
    assert r.status_code == 200, r.text
    rep = EvaluationReport.model_validate(r.json())
    assert rep.trades == 1 and rep.wins == 1 and rep.win_rate == 1.0 and rep.open_trades == 1
    assert rep.net_pnl == pytest.approx(0.005 - 0.05e-3 - 0.055e-3)
    assert rep.avg_trade_duration_s == pytest.approx(60.0)  # one bar step of the seed
    assert [b.name for b in rep.by_symbol] == ["ETH/BTC"] and rep.best_symbol == "ETH/BTC"
    assert [b.name for b in rep.by_strategy] == ["sma_cross"]
    assert [b.name for b in rep.by_regime] == ["unknown"]
    assert rep.bars == N_MARKS and rep.max_drawdown is not None and rep.sharpe is not None
    [s] = rep.suggestions
    assert s.suggested and s.baseline_measured and (s.score, s.baseline) == (1.2, 0.4)
    assert s.params == BEST
    assert {(c.name, c.current, c.suggested) for c in s.changes} == {
        ("fast", 10, 7), ("slow", 30, 25)}
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    later = EvaluationReport.model_validate(get(h, "/api/report", since=tomorrow).json())
    assert later.trades == 0 and later.since is not None and later.bars == 0
    bad = get(h, "/api/report", since="last tuesday")
    assert bad.status_code == 422 and "since" in bad.text
