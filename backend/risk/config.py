"""Configuration of the risk limits, sizing and VaR limit (``[risk]`` in the TOML).

Fractions of equity unless the name says otherwise; seconds; bars for VaR horizons and
windows.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["RiskConfig"]


class RiskConfig(BaseModel):
    """Risk limits (pure functions in ``backend.risk.rules``)."""

    model_config = ConfigDict(extra="forbid")  # a typo in the section is an error

    risk_per_trade: float = Field(default=0.01, gt=0, le=1)  # fraction of equity
    max_position_pct: float = Field(default=0.25, gt=0, le=10)  # notional / equity
    max_symbol_exposure_pct: float = Field(default=0.25, gt=0, le=10)
    max_total_exposure_pct: float = Field(default=1.0, gt=0, le=10)
    min_confidence: float = Field(default=0.85, ge=0, le=1)
    daily_drawdown_limit: float = Field(default=0.02, gt=0, le=1)
    allow_short: bool = False
    #: An entry signal whose bar is older than this behind the latest mark (s of bar
    #: time) is refused (``stale_signal``); 0 = no limit.  Closes always pass.
    max_signal_age_s: float = Field(default=900.0, ge=0)
    #: An order not sent within this many seconds of the decision is refused by
    #: execution (``expires_at``); 0 = never expires.
    order_ttl_s: float = Field(default=300.0, ge=0)
    #: How long risk/compliance wait for the portfolio state of a signal's bar
    #: (seconds).  ``0`` waits forever (deterministic replay).
    portfolio_wait_s: float = Field(default=0.0, ge=0)
    # -- portfolio VaR limit and alerts (backend.risk.var_limit); 0 = off
    #: Largest portfolio VaR after an order, fraction of equity (0 = no limit, no alerts).
    var_limit: float = Field(default=0.0, ge=0, le=1)
    var_level: float = Field(default=0.99, ge=0.5, lt=1)  # confidence level
    var_method: Literal["historical", "parametric", "monte_carlo"] = "historical"
    var_horizon: int = Field(default=1, ge=1, le=10_000)  # bars
    var_min_obs: int = Field(default=30, ge=2)  # fewest joint bar returns (else fail closed)
    var_window: int = Field(default=288, ge=2, le=100_000)  # bar returns used (288 = 1 day)
    var_mc_paths: int = Field(default=10_000, ge=100, le=1_000_000)
    var_seed: int = Field(default=0, ge=0)
    #: Alert on ``risk_alerts`` when VaR / limit reaches this (warning) or 1 (breach);
    #: a level is left when the ratio falls ``alert_hysteresis`` below its threshold.
    alert_ratio: float = Field(default=0.8, gt=0, lt=1)
    alert_hysteresis: float = Field(default=0.05, ge=0, lt=1)
    #: Symbol the API's beta is measured against ("" = the first configured symbol).
    benchmark_symbol: str = ""
    # -- position sizing (backend.risk.kelly)
    sizing: Literal["fixed_fractional", "kelly"] = "fixed_fractional"
    kelly_fraction: float = Field(default=0.5, gt=0, le=1)  # multiple of full Kelly
    kelly_cap: float = Field(default=0.02, gt=0, le=1)  # max fraction of equity at risk
    #: Win probability for Kelly (0 = the signal's confidence).
    kelly_win_rate: float = Field(default=0.0, ge=0, lt=1)

    @field_validator("var_window")
    @classmethod
    def _var_window(cls, v: int, info) -> int:  # noqa: ANN001 - pydantic ValidationInfo
        need = info.data.get("var_min_obs")
        if need is not None and v < need:
            raise ValueError(f"var_window {v} must be >= var_min_obs {need}")
        return v
