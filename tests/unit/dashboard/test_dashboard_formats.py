"""What the dashboard shows a trader (issue 20, item 5): prices with their significant
digits and currency, the pipeline's colours, rounded parameters and no ``None`` cells, no
VaR table over zero observations."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from backend.rest.models import (
    FillView,
    OptimizerRunDetail,
    RiskFigures,
    VaREstimate,
)
from dashboard import charts
from dashboard.common import fmt_price, quote_currency
from tests.support.dashboard_kit import T0, FakeApi, frames, start, texts


class AdaApi(FakeApi):
    """The stub API with an ADA/BTC round trip whose prices differ in the 4th digit."""

    def routes(self) -> dict[tuple[str, str], Any]:
        routes = super().routes()
        fills = [FillView(fill_id=f"a{i}", client_order_id=f"co-a{i}", symbol="ADA/BTC",
                          side=side, quantity=1000.0, price=price, fee=price * 1e-3,
                          realized_pnl=0.0, ts=T0 + i, fill_time=T0 + i)
                 for i, (side, price) in enumerate((("BUY", 5.321e-05), ("SELL", 5.207e-05)))]
        routes[("GET", "/api/fills")] = lambda r: fills
        return routes


def test_prices_keep_their_digits_and_show_the_quote_currency() -> None:
    at = start(AdaApi(), "trading")
    table = next(df.value for df in at.dataframe if "price (BTC)" in df.value.columns)
    assert set(table["price (BTC)"]) == {"0.00005321", "0.00005207"}  # 0.0001 both, before
    assert set(table["fee (BTC)"]) == {"0.00000005321", "0.00000005207"}
    assert "avg price (BTC)" in frames(at)  # the positions table too


@pytest.mark.parametrize(("x", "shown"), [
    (5.321e-05, "0.00005321"), (0.09, "0.09"), (1234.5678901, "1234.5679"),
    (-0.0004567, "-0.0004567"), (0.0, "0"), (None, "—")])
def test_fmt_price(x: float | None, shown: str) -> None:
    assert fmt_price(x) == shown


def test_one_quote_currency_or_none() -> None:
    assert quote_currency(["ETH/BTC", "ADA/BTC"]) == "BTC"
    assert quote_currency(["ETH/BTC", "BTC/USDT"]) == ""
    assert quote_currency([]) == ""


def test_pipeline_colours_green_for_passed_red_for_refused() -> None:
    stages = ["signals", "compliance approved", "compliance rejected", "risk approved",
              "risk rejected", "ordered", "pending"]
    spec = charts.stage_chart(pd.DataFrame({"stage": stages, "signals": range(7)})).to_dict()
    scale = spec["encoding"]["color"]["scale"]
    colour = dict(zip(scale["domain"], scale["range"], strict=True))
    assert colour["compliance approved"] == colour["risk approved"] == charts.GREEN
    assert colour["ordered"] == charts.GREEN
    assert colour["compliance rejected"] == colour["risk rejected"] == charts.RED


def test_optimizer_parameters_rounded_and_no_none_cells() -> None:
    from tests.unit.dashboard.test_dashboard_pages import optimizer_run

    api = FakeApi()
    run: OptimizerRunDetail = optimizer_run()
    api.optimizer = [run.model_copy(update={
        "best_params": {"fast": 9, "stop_atr": 2.4117930851}, "overfit": None})]
    at = start(api, "optimizer")
    tables = frames(at)
    assert "2.412" in tables and "2.4117930851" not in tables
    assert "None" not in tables and "nan" not in tables.lower()
    assert "Overfit=—" in texts(at)


def test_risk_page_says_why_there_is_no_position_var() -> None:
    class NoHistory(FakeApi):
        def routes(self) -> dict[tuple[str, str], Any]:
            routes = super().routes()
            base: RiskFigures = routes[("GET", "/api/risk")](None)
            est = VaREstimate(method="historical", level=0.95, var=0.0, cvar=0.0,
                              var_quote=0.0)
            routes[("GET", "/api/risk")] = lambda r: base.model_copy(update={
                "position_estimates": [est], "position_observations": 0})
            return routes

    at = start(NoHistory(), "risk")
    text = texts(at)
    assert "last 0 bar returns" not in text
    assert "no bar returns of the symbols yet" in text
