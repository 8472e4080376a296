"""Configuration of the compliance rules (``[compliance]`` in the TOML).

Quantities: trades per UTC day, notional in quote currency, hours in UTC, seconds.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ComplianceConfig"]


class ComplianceConfig(BaseModel):
    """Compliance rules (pure functions in ``backend.compliance.rules``)."""

    model_config = ConfigDict(extra="forbid")  # a typo in the section is an error

    max_trades_per_day: int = Field(default=40, ge=0)
    max_notional_per_day: float = Field(default=50.0, ge=0)  # quote currency
    trading_hours_utc: tuple[int, int] = (0, 24)  # [start, end) hours; (0, 24) = 24/7
    restricted_symbols: list[str] = Field(default_factory=list)
    duplicate_window_s: float = Field(default=300.0, ge=0)
