"""The strategies a configuration builds: ``[strategies.*]`` to strategy objects.

Everything that runs a *configured* strategy -- the strategy agent, the in-process replay
(:mod:`backend.mesh.simulate`), the backtester's risk sizing, hot reload, the REST views --
builds it here (from a :class:`~backend.strategies.config.StrategyConfig`), so a regime
gate or a ``combined`` portfolio is the same object everywhere:

* ``name = "combined"``: a :class:`~backend.strategies.combiner.Combined` of the
  ``components`` (each a registered strategy), with the config's ``threshold``;
* any other name: the registered strategy (:func:`backend.strategies.registry.get_strategy`),
  the very class the registry holds (so the backtester's vectorised kernels and the ML
  model hooks recognise it);

then, when ``regimes`` is not empty, wrapped in the regime gate
(:class:`~backend.strategies.regime_gate.RegimeGated`), and the config's ``params``
validated against the result's declared parameters.

Everything built here pickles (the optimizer ships strategies to worker processes).
"""

from __future__ import annotations

from backend.strategies.base import Strategy
from backend.strategies.combiner import Combined, Component
from backend.strategies.config import COMBINED, StrategyConfig
from backend.strategies.regime_gate import RegimeGated
from backend.strategies.registry import STRATEGIES, get_strategy

__all__ = ["build_named", "build_strategy", "config_of"]


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
