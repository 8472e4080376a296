"""The dashboard's Risk page shows the VaR limit, position VaR and portfolio metrics when
``GET /api/risk`` has them (the stubbed API of test_dashboard_pages)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from backend.rest.models import RiskFigures, SymbolExposure, VaREstimate
from backend.rest.risk import PortfolioMetricsView, RiskLimitsView
from tests.support.dashboard_kit import FakeApi, frames, start, texts


class AnalyticsApi(FakeApi):
    """The stub whose ``/api/risk`` carries the analytics."""

    def routes(self) -> dict[tuple[str, str], Callable[[httpx.Request], Any]]:
        routes = super().routes()
        routes[("GET", "/api/risk")] = lambda r: RiskFigures(
            equity=1.0, exposure=0.2, exposure_pct=0.2,
            by_symbol={"ETH/BTC": SymbolExposure(quantity=4.0, notional=0.2, exposure_pct=0.2)},
            observations=50, estimates=[],
            position_estimates=[VaREstimate(method="monte_carlo", level=0.99, var=0.00345,
                                            cvar=0.0041, var_quote=0.00345, horizon=1)],
            position_observations=287,
            limits=RiskLimitsView(var_limit=0.004, var_method="historical", var=0.0036,
                                  ratio=0.9, level="warning", agent_level="breach"),
            metrics=PortfolioMetricsView(sharpe=1.234, sortino=2.5, max_drawdown=0.031,
                                         benchmark="ETH/BTC", beta=0.87,
                                         correlation={"ETH/BTC": {"ETH/BTC": 1.0}}))
        return routes


def test_risk_page_shows_limit_position_var_and_metrics() -> None:
    at = start(AnalyticsApi(), "risk")
    text, tables = texts(at), frames(at)
    assert "VaR limit=0.400%" in text and "Of the limit=90%" in text
    assert "Alert level (risk agent)=breach" in text
    assert "Portfolio VaR (historical, 99%)=0.360%" in text
    assert "Sharpe=1.23" in text and "Beta to ETH/BTC=0.87" in text
    assert "Max drawdown=3.10%" in text
    assert "monte_carlo" in tables and "0.345%" in tables
    assert "last 287 bar returns" in text
