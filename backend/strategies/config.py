"""Strategy configuration: the models of ``[strategies.*]`` and the strategies they build.

Everything that runs a *configured* strategy -- the strategy agent, the in-process replay
(:mod:`backend.mesh.simulate`), the backtester's risk sizing, hot reload, the REST views --
builds it here, so a regime gate or a ``combined`` portfolio is the same object
everywhere:

* ``name = "combined"``: a :class:`~backend.strategies.combiner.Combined` of the
  ``components`` (each a registered strategy), with the config's ``threshold``;
* any other name: the registered strategy (:func:`backend.strategies.get_strategy`),
  the very class the registry holds (so the backtester's vectorised kernels and the ML
  model hooks recognise it);

then, when ``regimes`` is not empty, wrapped in the regime gate
(:class:`~backend.strategies.regime_gate.RegimeGated`), and the config's ``params``
validated against the result's declared parameters.

Everything built here pickles (the optimizer ships strategies to worker processes).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backend.marketdata.regime import validate_regimes
from backend.strategies.base import Strategy
from backend.strategies.combiner import COMBINED, Combined, Component
from backend.strategies.regime_gate import RegimeGated
from backend.strategies.registry import STRATEGIES, get_strategy

__all__ = [
    "COMBINED",
    "ComponentConfig",
    "StrategyConfig",
    "build_named",
    "build_strategy",
    "config_of",
]


class ComponentConfig(BaseModel):
    """One member of a ``combined`` strategy (``backend.strategies.combiner``)."""

    model_config = ConfigDict(extra="forbid")

    name: str  # a registered strategy
    weight: float = Field(default=1.0, gt=0, allow_inf_nan=False)  # vote weight
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)
    #: Prefix of its parameters in the combined strategy ("" = ``name``); unique.
    label: str = Field(default="", pattern=r"^[^.]*$")


class StrategyConfig(BaseModel):
    """Which strategy a symbol's strategy agent runs, and its parameters.

    ``regimes``: market regimes the strategy may open positions in (``backend.marketdata.regime``:
    ``"ranging"``, ``"high_vol"``, ``"trending_up/low_vol"``...; empty = all).
    ``components`` and ``threshold``: only for ``name = "combined"``, the strategies it
    fuses and the vote threshold (docs/strategies.md).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = "sma_cross"
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)
    regimes: list[str] = Field(default_factory=list)
    components: list[ComponentConfig] = Field(default_factory=list)
    threshold: float = Field(default=0.5, gt=0, le=1)

    @field_validator("regimes")
    @classmethod
    def _regimes(cls, v: list[str]) -> list[str]:
        return validate_regimes(v)

    @model_validator(mode="after")
    def _combined(self) -> StrategyConfig:
        if self.name != "combined":
            if self.components:
                raise ValueError(f"'components' are only for name = \"combined\" "
                                 f"(name is {self.name!r})")
            return self
        if not self.components:
            raise ValueError("name = \"combined\" needs at least one entry in 'components'")
        labels = [c.label or c.name for c in self.components]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"components {dup} appear twice: give each a distinct 'label'")
        build_strategy(self)  # unknown component, bad component parameter: clear errors
        return self



def _combined(cfg: StrategyConfig) -> Combined:
    if not cfg.components:
        raise ValueError("strategy 'combined' needs at least one entry in 'components'")
    comps = []
    for c in cfg.components:
        if c.name == COMBINED:
            raise ValueError("a 'combined' strategy cannot contain another 'combined'")
        comps.append(Component(label=c.label or c.name, strategy=get_strategy(c.name),
                               weight=c.weight, params=dict(c.params)))
    return Combined(comps, threshold=cfg.threshold, config=cfg)


def build_strategy(cfg: StrategyConfig) -> Strategy:
    """The strategy ``cfg`` describes (see the module docstring).

    Parameters
    ----------
    cfg : StrategyConfig

    Returns
    -------
    Strategy
        The registered strategy, a :class:`Combined`, or either inside a
        :class:`RegimeGated` (named and parametrised like it);
        ``resolve_params(cfg.params)`` has been checked.

    Raises
    ------
    ValueError
        Unknown strategy or component, components on a strategy other than
        ``combined``, an unknown regime, or a parameter the strategy rejects.
    """
    if cfg.name == COMBINED:
        inner: Strategy = _combined(cfg)
    else:
        if cfg.components:
            raise ValueError(f"strategy {cfg.name!r}: 'components' are only for "
                             f"name = {COMBINED!r}")
        inner = get_strategy(cfg.name)
    strat = RegimeGated(inner, cfg.regimes, config=cfg) if cfg.regimes else inner
    strat.resolve_params(cfg.params)
    return strat


def build_named(name: str, cfg: StrategyConfig) -> Strategy:
    """The strategy called ``name`` for a symbol configured with ``cfg``.

    Used when a command (hot reload) or a saved state names the strategy: ``name ==
    cfg.name`` keeps the configuration's structure (components, threshold, regimes);
    another registered name runs that strategy with the configuration's regime gate.
    """
    if name == cfg.name:
        return build_strategy(cfg.model_copy(update={"params": {}}))
    return build_strategy(StrategyConfig(name=name, regimes=list(cfg.regimes)))


def config_of(strategy: Strategy) -> StrategyConfig:
    """The configuration that builds ``strategy`` again (without parameter overrides).

    Raises
    ------
    ValueError
        A strategy neither built by :func:`build_strategy` nor a plain registered one.
    """
    cfg = getattr(strategy, "config", None) if isinstance(
        strategy, RegimeGated | Combined) else None
    if cfg is not None:
        return cfg.model_copy(update={"params": {}})
    if type(strategy) is STRATEGIES.get(strategy.name):
        return StrategyConfig(name=strategy.name)
    raise ValueError(f"strategy {strategy.name!r} ({type(strategy).__name__}) was not built "
                     "from a configuration; the risk pipeline needs one (build_strategy)")
