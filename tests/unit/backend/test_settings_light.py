"""Loading settings loads no strategy and no numeric library (issue 17: fast start)."""

from tests.support.imports import modules_after


def test_loading_settings_imports_no_strategy_numpy_or_pandas():
    mods = modules_after("from backend.settings import Settings\nSettings()")
    heavy = {m for m in mods if m.split(".")[0] in {"numpy", "pandas", "talib", "scipy",
                                                    "sklearn", "sqlalchemy"}}
    strategies = {m for m in mods if m.startswith("backend.strategies.")}
    assert not heavy, sorted(heavy)[:10]
    assert strategies == {"backend.strategies.config"}, sorted(strategies)


def test_a_combined_strategy_is_still_built_and_checked_on_load():
    mods = modules_after(
        "from backend.settings import Settings\n"
        "Settings(strategies={'ETHBTC': {'name': 'combined', 'components': "
        "[{'name': 'momentum'}]}})")
    assert "backend.strategies.build" in mods
