"""Each agent process loads what its job needs and no more (issue 17: RSS per agent):
ccxt only for a live feed or venue, the VaR machinery only with the VaR limit on, the GA
and backtester only when the optimizer has a run, joblib only with a stored model."""

import pytest

from tests.support.imports import modules_after

#: role -> top-level packages its module must not import.
NOT_ON_IMPORT = {
    "market_data": {"ccxt", "scipy", "empyrical", "deap", "sklearn", "joblib"},
    "risk": {"ccxt", "scipy", "empyrical", "deap", "sklearn", "joblib"},
    "optimizer": {"ccxt", "scipy", "empyrical", "deap", "sklearn", "talib", "joblib"},
    "compliance": {"ccxt", "scipy", "empyrical", "deap", "sklearn", "joblib"},
    "strategy": {"ccxt", "scipy", "empyrical", "deap", "sklearn", "joblib"},
}


@pytest.mark.parametrize("role", sorted(NOT_ON_IMPORT))
def test_an_agent_module_imports_only_its_job(role: str):
    mods = modules_after(
        "import importlib\nfrom agents.run import AGENT_CLASSES\n"
        f"importlib.import_module(AGENT_CLASSES[{role!r}][0])")
    loaded = sorted({m.split(".")[0] for m in mods} & NOT_ON_IMPORT[role])
    assert not loaded, f"{role} imports {loaded}"
