"""Strategy configuration: the models of ``[strategies.*]``.

Which strategy a symbol's agent runs and its parameters (:class:`StrategyConfig`), and the
members of a ``combined`` one (:class:`ComponentConfig`).  The structure is checked here;
what needs the strategies themselves (a known name, parameters the strategy declares) is
checked when :mod:`backend.strategies.build` builds it, which :class:`backend.settings.Settings`
does for every ``combined`` configuration on load.  Kept light on purpose (pydantic only):
loading settings loads no strategy, no numpy.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backend.marketdata.regime_names import validate_regimes

__all__ = ["COMBINED", "ComponentConfig", "StrategyConfig"]

#: The configured name of a fusion of several strategies (:mod:`backend.strategies.combiner`).
COMBINED = "combined"


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
        # An unknown component or a bad component parameter is refused when the strategy
        # is built (backend.strategies.build), which Settings does on load.
        return self
