"""Settings: env and TOML sources, clear errors naming the bad field."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.settings import ConfigError, Settings, load_settings, write_resolved

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("TRADINGMESH_CONFIG", "TRADINGMESH_SETTINGS_FILE", "REDIS_URL", "DATABASE_URL"):
        monkeypatch.delenv(k, raising=False)


def test_defaults_match_the_product_brief() -> None:
    s = load_settings()
    assert s.risk.risk_per_trade == 0.01
    assert s.risk.min_confidence == 0.85
    assert s.risk.daily_drawdown_limit == 0.02
    assert s.symbols == ["ETH/BTC", "LTC/BTC", "ADA/BTC", "DASH/BTC"]
    assert s.db_url().startswith("sqlite:///") and s.db_url().endswith("var/tradingmesh.db")


def test_env_overrides_nested_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADINGMESH_RISK__MIN_CONFIDENCE", "0.7")
    monkeypatch.setenv("REDIS_URL", "redis://10.1.2.3:6380/1")
    s = load_settings()
    assert s.risk.min_confidence == 0.7
    assert s.redis_url == "redis://10.1.2.3:6380/1"


def test_example_toml_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADINGMESH_CONFIG", str(ROOT / "config" / "tradingmesh.example.toml"))
    s = load_settings()
    assert s.strategy_for("ADA/BTC").name == "momentum"
    assert s.strategy_for("ETH-BTC").name == "sma_cross"
    assert s.data_dir.is_absolute()


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("[risk]\nmin_confidence = 1.5\n", "risk.min_confidence"),
        ("symbols = ['ETH/BTC', 'BTC/USDT']\n", "one quote currency"),
        ("symbols = ['ETHBTC']\n", "BASE/QUOTE"),
        ("unknown_key = 1\n", "unknown_key"),
        ("[paper]\nfee_rate = 'cheap'\n", "paper.fee_rate"),
        ("this is = = not toml\n", "invalid configuration"),
        # a typo inside a section is refused, not ignored (issue 20, item 4)
        ("[risk]\nmin_confidense = 0.8\n",
         "risk.min_confidense: Extra inputs are not permitted (did you mean 'min_confidence'?)"),
        ("[compliance]\nmax_trades_per_dya = 3\n", "did you mean 'max_trades_per_day'?"),
        ("[paper]\nfee = 0.001\n", "paper.fee"),
        ("[orchestrator]\nstuck_alert = 5\n", "orchestrator.stuck_alert"),
        ("[api]\nprot = 8001\n", "did you mean 'port'?"),
        ("[dashboard]\nenable = false\n", "did you mean 'enabled'?"),
        ("[optimizer]\nintervall_s = 60\n", "did you mean 'interval_s'?"),
        ("[ml]\nmodel_dri = 'x'\n", "did you mean 'model_dir'?"),
    ],
)
def test_bad_config_names_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, fragment: str
) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    monkeypatch.setenv("TRADINGMESH_CONFIG", str(cfg))
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert fragment in str(err.value)


def test_missing_config_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADINGMESH_CONFIG", "/nonexistent/mesh.toml")
    with pytest.raises(ConfigError, match="no such file"):
        load_settings()


def test_agents_load_the_resolved_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(replay_speed=12.0, symbols=["LTC/BTC"])
    monkeypatch.setenv("TRADINGMESH_SETTINGS_FILE", str(write_resolved(s, tmp_path / "s.json")))
    monkeypatch.setenv("TRADINGMESH_REPLAY_SPEED", "99")  # ignored: the file is authoritative
    t = load_settings()
    assert t.replay_speed == 12.0 and t.symbols == ["LTC/BTC"]


def test_the_account_currency_must_be_the_symbols_quote() -> None:
    """Issue 15: equity must not add amounts in two currencies."""
    with pytest.raises(ValidationError, match="venue.quote_currency is 'USDT'"):
        Settings(symbols=["ETH/BTC"], venue={"kind": "ccxt", "quote_currency": "USDT"})
    assert Settings(symbols=["ETH/USDT"], venue={"kind": "ccxt", "quote_currency": "USDT"})
    assert Settings(symbols=["ETH/USDT"])  # the paper default is not the user's choice
