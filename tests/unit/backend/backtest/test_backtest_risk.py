"""``--sizing risk`` is the mesh's pipeline: its trades are those of ``simulate``'s fills."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.backtest import backtest_settings, run_backtest
from backend.backtest.risk import equity_frame
from backend.marketdata.candles import Candles, load_candles
from backend.mesh.simulate import simulate
from backend.performance.report import build_report, extract_trades
from backend.settings import Settings

DATA = Path(__file__).resolve().parents[4] / "data" / "sample"
PARAMS = {"fast": 8, "slow": 24}
BARS = 3000


@pytest.fixture(scope="module")
def candles() -> dict[str, Candles]:
    out = {}
    for name in ("ETH_BTC-5m.csv", "LTC_BTC-5m.csv"):
        c = load_candles(DATA / name).slice(0, BARS)
        out[c.symbol] = c
    return out


@pytest.fixture(scope="module")
def base() -> Settings:
    s = Settings()
    return s.model_copy(update={"risk": s.risk.model_copy(update={"min_confidence": 0.6})})


@pytest.fixture(scope="module")
def result(candles, base):
    return run_backtest(candles, "sma_cross", PARAMS, sizing="risk", cash=2.0,
                        commission=0.002, slippage_bps=5.0, settings=base)


@pytest.fixture(scope="module")
def reference(candles, base):
    s = base.model_copy(update={
        "symbols": list(candles), "strategies": {},
        "default_strategy": base.default_strategy.model_copy(
            update={"name": "sma_cross", "params": PARAMS}),
        "paper": base.paper.model_copy(
            update={"initial_cash": 2.0, "fee_rate": 0.002, "slippage_bps": 5.0}),
    })
    return simulate(s, candles)


def test_trades_are_those_of_simulate(result, reference, candles) -> None:
    closed, still_open = extract_trades(reference.fills)
    assert len(closed) > 10 and {t.symbol for t in closed} == set(candles)
    assert result.stats.trades == len(closed)
    assert len(result.trades) == len(closed) and len(result.open_trades) == len(still_open)
    for ours, ref in zip(result.trades + result.open_trades, closed + still_open, strict=True):
        assert (ours.symbol, ours.side, ours.entry_time, ours.exit_time, ours.exit_reason) == (
            ref.symbol, ref.side, ref.entry_time, ref.exit_time, ref.exit_reason)
        assert (ours.size, ours.entry_price, ours.exit_price, ours.gross_pnl, ours.fees,
                ours.net_pnl) == (ref.quantity, ref.entry_price, ref.exit_price, ref.gross_pnl,
                                  ref.fees, ref.net_pnl)
        # bar indices are rows of the symbol's file: the fill happened at that bar's open
        c = candles[ours.symbol]
        assert c.time[ours.entry_bar] == ours.entry_time
        if ours.exit_bar is not None:
            assert c.time[ours.exit_bar] == ours.exit_time


def test_settings_reach_the_pipeline(result, reference) -> None:
    assert (result.cash, result.commission, result.slippage_bps) == (2.0, 0.002, 5.0)
    assert result.params["fast"] == 8 and result.params["slow"] == 24
    assert result.extra["signals"] == len(reference.signals)
    assert result.extra["fills"] == len(reference.fills)
    assert any(k.startswith("risk:") for k in result.extra["rejections"])
    fees = [f.fee for f in reference.fills]
    assert result.stats.fees_paid == pytest.approx(sum(fees))
    assert all(f.fee == pytest.approx(f.quantity * f.price * 0.002) for f in reference.fills)


def test_statistics_agree_with_the_mesh_report(result, reference) -> None:
    rep = build_report(reference.fills, equity_frame(reference), 2.0)
    assert result.stats.final_equity == reference.marks[-1].equity == rep.final_equity
    assert result.stats.sharpe == pytest.approx(rep.total.sharpe, rel=1e-12)
    assert result.stats.sortino == pytest.approx(rep.total.sortino, rel=1e-12)
    assert result.stats.max_drawdown == pytest.approx(rep.total.max_drawdown, rel=1e-12)
    assert result.stats.exposure == pytest.approx(rep.total.exposure)
    assert result.stats.win_rate == pytest.approx(rep.total.win_rate)
    assert result.stats.profit_factor == pytest.approx(rep.total.profit_factor)
    for sym, st in result.symbol_stats.items():
        assert st.trades == rep.symbols[sym].trades
        assert st.sharpe == pytest.approx(rep.symbols[sym].sharpe, rel=1e-12)
        assert st.exposure == pytest.approx(rep.symbols[sym].exposure)
    assert result.stats.bars == BARS
    assert np.all(np.diff(result.curve.time) > 0)


def test_bad_settings_are_one_line_errors(candles) -> None:
    with pytest.raises(ValueError, match=r"--commission"):
        run_backtest(candles, "sma_cross", {}, commission=0.5)
    with pytest.raises(ValueError, match="sizing"):
        run_backtest(candles, "sma_cross", {}, sizing="half")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="quote currency"):
        backtest_settings(Settings(), ["ETH/BTC", "ETH/USDT"], "sma_cross", {})
