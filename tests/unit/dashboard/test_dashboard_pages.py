"""The dashboard's pages under ``streamlit.testing.v1.AppTest`` against a stubbed API.

The stub is the real :class:`dashboard.client.ApiClient` over an ``httpx.MockTransport``
that answers every endpoint with bodies built from :mod:`backend.rest.models` (so the
client's parsing runs too), injected through ``st.session_state[CLIENT_KEY]``.  Setting
``FakeApi.down`` makes every call fail like a refused connection.
"""

from __future__ import annotations

import pytest

from backend.rest.models import (
    GenerationView,
    OptimizerRunDetail,
    ProposalView,
)
from tests.support.dashboard_kit import (
    AGENTS,
    T0,
    FakeApi,
    badges,
    frames,
    keyed,
    start,
    texts,
)


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


PAGES = ["agents", "trading", "pipeline", "risk", "optimizer", "channels"]


# ---------------------------------------------------------------- tests
def test_agents_page_shows_names_states_and_stale_heartbeat(api: FakeApi) -> None:
    at = start(api)
    text = texts(at)
    for agent_id in AGENTS:
        assert f"**{agent_id}**" in text
    assert keyed(at, "state_strategy_ETHBTC") == ":green-badge[running]"
    assert keyed(at, "state_risk") == ":red-badge[no heartbeat]"
    assert badges(at).count("running") == len(AGENTS) - 1
    assert ":red[**42 s · stale**]" in text  # the old heartbeat, in red
    assert "0.4 s" in text  # a fresh one, plain
    assert "Not running or heartbeat stale: risk" in text
    assert "Agents running=5/6" in text
    assert "boom: simulated failure" in text


def test_agents_restart_button_calls_the_api_and_shows_the_new_count(api: FakeApi) -> None:
    at = start(api)
    at.button(key="restart_strategy_ETHBTC").click().run()
    assert ("restart", "strategy:ETHBTC") in api.actions
    assert "Restart strategy:ETHBTC: strategy:ETHBTC restarted" in [s.value for s in at.success]
    assert keyed(at, "restarts_strategy_ETHBTC") == "1"
    assert keyed(at, "restarts_market_data") == "0"
    at.button(key="stop_compliance").click().run()
    assert ("stop", "compliance") in api.actions
    assert keyed(at, "state_compliance") == ":gray-badge[stopped]"
    assert at.button(key="start_compliance").disabled is False


def test_agents_create_strategy(api: FakeApi) -> None:
    at = start(api)
    def submit(symbol: str) -> None:
        at.text_input(key="create_symbol").set_value(symbol)
        next(b for b in at.button if b.label == "Create strategy agent").click().run()

    submit("ETH/BTC")
    assert api.actions == [("create", "ETH/BTC")]
    assert any("strategy:ETHBTC started" in e.value for e in at.success)
    submit("EUR/USD")
    assert len(api.actions) == 1
    assert any("unknown symbol 'EUR/USD'" in e.value for e in at.error)
    assert not at.exception


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(api: FakeApi, page: str) -> None:
    at = start(api, page)
    assert not at.exception
    assert page.capitalize() in [t.value for t in at.title]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_survives_the_api_going_down(api: FakeApi, page: str) -> None:
    at = start(api, page)
    api.down = True
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    banner = "\n".join(e.value for e in at.error)
    assert "API unreachable" in banner and "Connection refused" in banner
    if page not in ("optimizer",):
        assert "STALE" in texts(at)  # last data kept, marked stale


def test_pages_with_the_api_down_from_the_start(api: FakeApi) -> None:
    api.down = True
    at = start(api)
    assert "API unreachable" in "\n".join(e.value for e in at.error)
    assert "no data" in texts(at)
    for page in PAGES[1:]:
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])


def test_refused_token_is_a_clear_banner(api: FakeApi) -> None:
    api.status = 401
    at = start(api)
    banner = "\n".join(e.value for e in at.error)
    assert "API access refused" in banner and "401" in banner


def test_trading_page_shows_account_positions_orders_fills(api: FakeApi) -> None:
    at = start(api, "trading")
    text, tables = texts(at), frames(at)
    assert "Equity=1.000500" in text and "Trading=active" in text
    assert "0.0455" in tables and "co-sig-3" in tables  # position notional, open order
    assert "2018-01-15 07:06:40 UTC" in tables  # fill time in UTC, zone shown
    assert len(at.get("vega_lite_chart")) >= 3  # equity, drawdown, P&L by symbol


def test_pipeline_page_explains_decisions(api: FakeApi) -> None:
    at = start(api, "pipeline")
    tables = frames(at)
    assert "max_exposure · exposure 30% > 25%" in tables
    assert "rejected by risk" in tables and "ordered" in tables
    assert "signals=2" in texts(at) and "risk rejected=1" in texts(at)


def test_risk_page_emergency_stop_needs_confirmation(api: FakeApi) -> None:
    at = start(api, "risk")
    assert "Trading active" in texts(at)
    assert "Daily drawdown=0.50%" in texts(at)
    at.button(key="estop_open").click().run()
    assert api.actions == []  # only the confirmation step so far
    at.text_input(key="estop_reason").set_value("desk call")
    at.button(key="estop_confirm").click().run()
    assert api.actions == [("emergency_stop", "desk call")]
    assert "TRADING HALTED" in "\n".join(e.value for e in at.error)
    at.button(key="estop_open").click().run()
    at.button(key="estop_cancel").click().run()
    assert len(api.actions) == 1


def test_risk_page_reset_needs_a_reason(api: FakeApi) -> None:
    api.halted = True
    at = start(api, "risk")
    submit = next(b for b in at.button if b.label == "Reset breaker")
    submit.click().run()
    assert api.actions == [] and any("give a reason" in e.value for e in at.error)
    at.text_input(key="reset_reason").set_value("reviewed, resume")
    next(b for b in at.button if b.label == "Reset breaker").click().run()
    assert api.actions == [("reset", "reviewed, resume")]
    assert "Trading active" in texts(at)


def optimizer_run(run_id: str = "ga-1") -> OptimizerRunDetail:
    return OptimizerRunDetail(
        run_id=run_id, strategy="sma_cross", symbol="ETH/BTC", symbols=["ETH/BTC"],
        objective="sharpe", status="finished", started_ts=T0, finished_ts=T0 + 10**9,
        generations=[GenerationView(fold=f, generation=g, best=1.0 + g, mean=0.5 + g)
                     for f in (0, 1) for g in range(5)],
        best_params={"fast": 9, "slow": 42}, mean_in_sample=1.25, mean_out_of_sample=0.75,
        overfit=False, proposed=True, appliable=True, config={"sizing": "risk"},
        proposal=ProposalView(status="proposed", reason="beats the running parameters",
                              strategy="sma_cross", params={"fast": 9, "slow": 42},
                              current_strategy="sma_cross", current_params={"fast": 10},
                              score=0.75, baseline=0.2, margin=0.1, decided_ts=T0))


def test_optimizer_page_without_and_with_runs(api: FakeApi) -> None:
    at = start(api, "optimizer")  # a server without /api/optimizer/runs: 404
    assert any("No optimizer runs yet" in e.value for e in at.info)
    api.optimizer = [optimizer_run()]
    at.run()
    assert not at.info and not at.exception
    text = texts(at)
    assert "Out-of-sample score=0.7500" in text and "Overfit=no" in text
    assert "Proposed, waiting for approval" in text and "vs running 0.2000" in text
    assert "scored by the mesh's trading model (risk sizing" in text
    assert "slow" in frames(at)
    assert "fast=9, slow=42" in frames(at) and "optimizer" in frames(at)  # the agent table
    assert len(at.get("vega_lite_chart")) == 1  # best and mean fitness per generation, fold
    button = next(b for b in at.button if b.label == "Apply these parameters")
    assert button.disabled is False
    button.click().run()
    assert api.actions == [("apply", "ga-1")]
    assert any("switches on its first bar after seq 500" in e.value for e in at.success)
    assert next(b for b in at.button if b.label == "Apply these parameters").disabled


def test_optimizer_page_starts_a_run(api: FakeApi) -> None:
    api.optimizer = []
    at = start(api, "optimizer")
    at.text_input(key="opt_symbol").set_value("ETH-BTC")
    at.number_input(key="opt_generations").set_value(4)
    next(b for b in at.button if b.label == "Start").click().run()
    assert api.actions == [("start_optimizer", {"symbol": "ETH-BTC", "population": 30,
                                                "generations": 4, "walk_forward": 3,
                                                "seed": 0})]
    assert any("queued for the optimizer agent" in e.value for e in at.success)


def test_channels_page_rates_streams_groups(api: FakeApi) -> None:
    at = start(api, "channels")
    at.run()  # a second sample: rates appear
    tables = frames(at)
    assert "market_data" in tables and "execution" in tables
    assert len(at.get("vega_lite_chart")) >= 2  # rates over time, stream lengths
