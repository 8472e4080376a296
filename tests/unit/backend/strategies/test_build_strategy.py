"""Strategies built from configuration, everywhere one is built: settings validation,
simulate, the strategy agent (with hot reload), the backtester, the optimizer, the regime
on the wire, in the database and in the API view; the CLI listings."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from agents.strategy import StrategyAgent
from backend import channels
from backend.backtest import run_backtest
from backend.bus import Bus
from backend.marketdata import regime
from backend.marketdata.candles import Candles, load_dir
from backend.mesh.hotreload import running_params
from backend.mesh.pipeline import bar_message, signal_message
from backend.mesh.simulate import simulate
from backend.messages import UpdateStrategyParams
from backend.optimizer.fitness import Scorer
from backend.optimizer.models import OptimizeConfig
from backend.optimizer.runner import fitness_context, optimize
from backend.persistence import Store, make_engine
from backend.settings import ConfigError, Settings, StrategyConfig, load_settings
from backend.strategies.build import build_named, build_strategy, config_of
from backend.strategies.combiner import Combined
from backend.strategies.regime_gate import RegimeGated
from backend.strategies.registry import STRATEGIES, get_strategy
from backend.strategies.runner import StrategyRunner
from orchestrator.cli import app
from orchestrator.views import signal_views, strategies_view
from tests.support.agent_fixtures import drain, publish_bars, settings_for, wire

SAMPLE = Path(__file__).resolve().parents[4] / "data" / "sample"
NEW = ["vwap_momentum", "rsi_reversion", "bollinger_reversion"]
COMBINED = {"name": "combined", "threshold": 0.4, "regimes": ["ranging"], "components": [
    {"name": "rsi_reversion"}, {"name": "bollinger_reversion", "weight": 2},
    {"name": "vwap_momentum", "label": "vwap"}]}


@pytest.fixture(scope="module")
def data() -> dict[str, Candles]:
    return load_dir(SAMPLE)


@pytest.fixture(scope="module")
def eth(data) -> Candles:
    return data["ETH/BTC"]


# ------------------------------------------------------------------ building
def test_a_plain_config_builds_the_registered_class():
    for name in STRATEGIES:
        s = build_strategy(StrategyConfig(name=name))
        assert type(s) is STRATEGIES[name]  # kernels and model hooks still recognise it
        assert config_of(s) == StrategyConfig(name=name)


def test_gated_and_combined_configs():
    g = build_strategy(StrategyConfig(name="momentum", regimes=["trending_up"]))
    assert isinstance(g, RegimeGated) and g.name == "momentum"
    assert g.params == get_strategy("momentum").params
    c = build_strategy(StrategyConfig.model_validate(COMBINED))
    assert isinstance(c, RegimeGated) and isinstance(c.inner, Combined)
    assert c.name == "combined" and "vwap.target_pct" in [p.name for p in c.params]
    assert config_of(c).components[2].label == "vwap"
    with pytest.raises(ValueError, match="no parameter 'fsat'"):
        build_strategy(StrategyConfig(name="sma_cross", params={"fsat": 3}))
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        build_strategy(StrategyConfig(name="nope"))


def test_build_named_keeps_the_configured_structure():
    cfg = StrategyConfig.model_validate(COMBINED)
    same = build_named("combined", cfg)
    assert isinstance(same, RegimeGated) and isinstance(same.inner, Combined)
    other = build_named("sma_cross", cfg)  # another strategy keeps the regime gate only
    assert isinstance(other, RegimeGated) and other.allowed == ("ranging",)
    assert type(other.inner) is STRATEGIES["sma_cross"]
    assert type(build_named("momentum", StrategyConfig())) is STRATEGIES["momentum"]


@pytest.mark.parametrize(("strategy", "error"), [
    ({"name": "sma_cross", "components": [{"name": "momentum"}]}, "only for name"),
    ({"name": "combined"}, "at least one entry in 'components'"),
    ({"name": "combined", "components": [{"name": "momentum"}, {"name": "momentum"}]},
     "appear twice"),
    ({"name": "combined", "components": [{"name": "nope"}]}, "unknown strategy 'nope'"),
    ({"name": "combined", "components": [{"name": "momentum", "params": {"lookback": 0}}]},
     "component 'momentum'.*'lookback'"),
    ({"name": "combined", "components": [{"name": "momentum", "weight": 0}]}, "weight"),
    ({"name": "sma_cross", "regimes": ["sideways"]}, "unknown regime 'sideways'"),
    ({"name": "sma_cross", "regime": ["ranging"]}, "regime"),  # a typo is not ignored
    ({"name": "combined", "threshold": 0, "components": [{"name": "momentum"}]},
     "threshold"),
])
def test_settings_refuse_bad_strategy_configs_with_the_field(strategy, error):
    with pytest.raises(ConfigError, match=f"strategies.ETHBTC(?s:.*){error}"):
        load_settings(strategies={"ETHBTC": strategy})


# ------------------------------------------------------------------ in-process replay
def test_simulate_runs_a_gated_combined_portfolio_with_regimes_on_signals(data):
    s = Settings(symbols=["ETH/BTC", "LTC/BTC"], strategies={"ETHBTC": COMBINED})
    res = simulate(s, data, limit=1000)
    eth_sigs = [x for x in res.signals if x.symbol == "ETH/BTC"]
    ltc_sigs = [x for x in res.signals if x.symbol == "LTC/BTC"]
    assert eth_sigs and ltc_sigs
    assert all(x.strategy == "combined" and "vwap.target_pct" in x.params for x in eth_sigs)
    assert all(x.strategy == "sma_cross" for x in ltc_sigs)
    assert all(x.regime in regime.LABELS for x in res.signals)
    entries = [x for x in eth_sigs if x.confidence > 0]
    assert entries and all(regime.matches(x.regime, ["ranging"]) for x in entries)
    # the same signals as the strategy's own runner (what the mesh agent runs)
    r = StrategyRunner(build_strategy(s.strategy_for("ETH/BTC")))
    c = data["ETH/BTC"]
    ref = [p for i in range(1000) if (p := r.on_bar(
        int(c.time[i]), c.open[i], c.high[i], c.low[i], c.close[i], c.volume[i]))]
    assert [(x.bar_time, x.side.sign, x.regime) for x in eth_sigs] == [
        (p.time, p.side, p.regime) for p in ref]


# ------------------------------------------------------------------ the regime downstream
def test_regime_goes_to_the_message_the_database_and_the_api_view(tmp_path, eth):
    s = get_strategy("rsi_reversion")
    point = s.generate(eth.slice(0, 1500)).points()[-1]
    assert point.regime in regime.LABELS
    bar = bar_message(eth, point.index, point.index + 1, "5m", ts=1)
    sig = signal_message(point, bar, s.name, s.resolve_params({}), ts=1)
    assert sig.regime == point.regime
    store = Store(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    assert store.record_signal(sig)
    (row,) = store.signals()
    assert row["regime"] == point.regime
    (view,) = signal_views([row], [], [])
    assert view.regime == point.regime


def test_an_older_database_gets_the_regime_column(tmp_path, eth):
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = make_engine(url)
    with engine.begin() as conn:  # the signals table as released before this column
        conn.exec_driver_sql(
            "CREATE TABLE signals (id VARCHAR(128) PRIMARY KEY, correlation_id VARCHAR(128), "
            "ts BIGINT NOT NULL, symbol VARCHAR(32) NOT NULL, side VARCHAR(8) NOT NULL, "
            "confidence FLOAT, entry_price FLOAT, stop_loss FLOAT, take_profit FLOAT, "
            "strategy VARCHAR(64), params JSON, reason TEXT, bar_seq BIGINT, bar_time BIGINT, "
            "source VARCHAR(128))")
        conn.exec_driver_sql(
            "INSERT INTO signals (id, ts, symbol, side) VALUES ('old', 1, 'ETH/BTC', 'BUY')")
    store = Store(engine)
    assert "regime" in {c["name"] for c in sa.inspect(engine).get_columns("signals")}
    assert store.signals()[0]["regime"] == ""
    s = get_strategy("bollinger_reversion")
    point = s.generate(eth.slice(0, 800)).points()[-1]
    sig = signal_message(point, bar_message(eth, point.index, 9, "5m", ts=2), s.name, {}, ts=2)
    assert store.record_signal(sig)
    assert store.signals()[-1]["regime"] == point.regime


def test_configured_parameters_in_the_views_and_hot_reload_state(tmp_path, fake_redis):
    s = settings_for(tmp_path, default_strategy=COMBINED)
    view = strategies_view(s, {"ETH/BTC": None})
    (agent,) = view.agents
    assert agent.configured_strategy == "combined"
    assert agent.configured_params["threshold"] == 0.4
    assert agent.configured_params["vwap.max_session_bars"] == 288
    name, params = asyncio.run(running_params(fake_redis, s, "ETH/BTC"))
    assert name == "combined" and params == agent.configured_params


# ------------------------------------------------------------------ the strategy agent
def test_strategy_agent_runs_a_combined_portfolio_and_hot_reloads_it(tmp_path, fake_redis):
    cfg = {"name": "combined", "threshold": 0.4, "components": [
        {"name": "rsi_reversion"}, {"name": "bollinger_reversion", "weight": 2}]}
    settings = settings_for(tmp_path, default_strategy=cfg)
    candles = load_dir(SAMPLE, ["ETH/BTC"])["ETH/BTC"]
    new = {"threshold": 0.3, "rsi_reversion.period": 10}
    half, n = 550, 1000

    async def go() -> None:
        agent = StrategyAgent(settings, "strategy:ETHBTC", symbol="ETH/BTC")
        await wire(agent, fake_redis)
        await agent.setup()
        assert agent.strategy.name == "combined" and isinstance(agent.strategy, Combined)
        last = await publish_bars(fake_redis, candles, range(half), 1)
        await drain(agent)
        await Bus(fake_redis, "orchestrator").publish(channels.STRATEGY_PARAMS,
            UpdateStrategyParams(source="orchestrator", symbol="ETH/BTC", strategy="combined",
                                 params=new, after_seq=last, actor="tester", reason="test"))
        await publish_bars(fake_redis, candles, range(half, n), last + 1)
        await drain(agent)
        sigs = agent.store.signals()
        built = build_strategy(StrategyConfig.model_validate(cfg))
        old_p, new_p = built.resolve_params({}), built.resolve_params(new)
        expect = []
        for params, rows in ((old_p, range(half)), (new_p, range(half, n))):
            r = StrategyRunner(built, params)
            for i in range(n):
                p = r.on_bar(int(candles.time[i]), candles.open[i], candles.high[i],
                             candles.low[i], candles.close[i], candles.volume[i])
                if p is not None and i in rows:
                    expect.append((i + 1, "BUY" if p.side > 0 else "SELL", p.regime, params))
        got = [(x["bar_seq"], x["side"], x["regime"], x["params"]) for x in sigs]
        assert got == expect
        assert any(x["bar_seq"] > last for x in sigs) and any(x["bar_seq"] <= last for x in sigs)
        assert agent.params == new_p and isinstance(agent.strategy, Combined)

    asyncio.run(go())


# ------------------------------------------------------------------ backtester
@pytest.mark.parametrize("name", NEW)
def test_run_backtest_trades_with_each_new_strategy(eth, name):
    res = run_backtest({"ETH/BTC": eth.slice(0, 3000)}, name, sizing="risk")
    assert res.strategy == name and res.stats.trades > 0
    allin = run_backtest({"ETH/BTC": eth.slice(0, 3000)}, name, sizing="all-in")
    assert allin.stats.trades > 0


def test_run_backtest_takes_an_instance_or_a_config(eth):
    c = {"ETH/BTC": eth.slice(0, 1500)}
    by_name = run_backtest(c, "rsi_reversion", {"period": 10}, sizing="all-in")
    inst = run_backtest(c, get_strategy("rsi_reversion"), {"period": 10}, sizing="all-in")
    assert inst.stats == by_name.stats and inst.trades == by_name.trades
    cfg = StrategyConfig.model_validate(COMBINED)
    base = Settings()
    loose = base.model_copy(update={"risk": base.risk.model_copy(
        update={"min_confidence": 0.3})})  # a vote of 0.4 rarely reaches the default 0.85
    risk = run_backtest(c, cfg, sizing="risk", settings=loose)
    also = run_backtest(c, build_strategy(cfg), sizing="risk", settings=loose)
    assert risk.strategy == "combined" and risk.stats.trades > 0
    assert risk.trades == also.trades and risk.params == also.params
    custom = Combined(build_strategy(cfg).inner.components)  # not from a configuration
    run_backtest(c, custom, sizing="all-in")
    # an instance no configuration describes runs itself through the risk replay
    mine = run_backtest(c, custom, sizing="risk", settings=loose)
    assert mine.strategy == "combined" and mine.extra["signals"] > 0


# ------------------------------------------------------------------ optimizer
@pytest.mark.parametrize("name", NEW)
def test_a_tiny_optimizer_run_for_each_new_strategy(eth, name):
    cfg = OptimizeConfig(strategy=name, population=6, generations=1, walk_forward=1, seed=3)
    run = optimize([eth.slice(0, 3000)], cfg)
    assert run.status == "finished" and len(run.folds) == 1
    assert set(run.best_params) == {p.name for p in STRATEGIES[name].params}
    assert run.evaluations > 0


def test_a_combined_strategy_optimizes_and_pickles_to_workers(eth):
    strat = build_strategy(StrategyConfig.model_validate(COMBINED))
    cfg = OptimizeConfig(strategy="combined", population=6, generations=1, walk_forward=1,
                         seed=3, fixed={"vwap.session_hours": 24, "vwap.flatten": 1})
    bars = [eth.slice(0, 2000)]
    run = optimize(bars, cfg, strategy=strat)
    assert run.status == "finished" and "rsi_reversion.period" in run.best_params
    assert run.best_params["vwap.session_hours"] == 24
    ctx = fitness_context(bars, cfg, strategy=strat)
    back = pickle.loads(pickle.dumps(ctx))  # what a process pool / Dask worker receives
    w = ctx.full_window()
    assert Scorer(back).score(w, run.best_params) == Scorer(ctx).score(w, run.best_params)
    with pytest.raises(ValueError, match="does not match"):
        fitness_context(bars, cfg.model_copy(update={"strategy": "sma_cross"}), strategy=strat)


# ------------------------------------------------------------------ CLI
def test_cli_lists_the_new_strategies_and_backtests_a_configured_one(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["strategies"])
    assert res.exit_code == 0
    for word in (*NEW, "oversold", "num_sd", "session_hours", "flatten_minutes"):
        assert word in res.output
    toml = tmp_path / "mesh.toml"
    toml.write_text('symbols = ["ETH/BTC"]\n[strategies.ETHBTC]\nname = "combined"\n'
                    'threshold = 0.4\nregimes = ["ranging"]\ncomponents = [\n'
                    '  { name = "rsi_reversion" },\n  { name = "bollinger_reversion", '
                    'weight = 2 },\n]\n')
    data = tmp_path / "ETH_BTC-5m.csv"
    lines = (SAMPLE / "ETH_BTC-5m.csv").read_text().splitlines()[:1501]
    data.write_text("\n".join(lines) + "\n")
    env = {"TRADINGMESH_CONFIG": str(toml), "TRADINGMESH_VAR_DIR": str(tmp_path)}
    res = runner.invoke(app, ["backtest", "--data", str(data), "--strategy", "configured",
                              "--report", str(tmp_path / "r.json")], env=env)
    assert res.exit_code == 0, res.output
    assert "backtest combined (threshold=0.4" in " ".join(res.output.split())
    res = runner.invoke(app, ["backtest", "--data", str(data), "--strategy", "rsi_reversion",
                              "--regimes", "sideways"], env=env)
    assert res.exit_code == 2 and "unknown regime 'sideways'" in " ".join(res.output.split())
