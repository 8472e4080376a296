"""Small helpers every package of ``backend`` uses (no imports from the rest of it)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["PERIODS_5M_24_7", "ConfigError", "finite_or_none", "json_safe"]

#: 5-minute bars on a market open 24/7 (periods per year, for annualising).
PERIODS_5M_24_7 = 365 * 24 * 12


def finite_or_none(x: object) -> float | None:
    """``x`` as a float for a report or a JSON body, ``None`` when it is not a finite
    number (NaN, +/-inf, ``None``, or not convertible); ``-0.0`` becomes ``0.0``.

    JSON has no NaN or infinity, and an undefined figure (the Sharpe ratio of a flat
    curve, a VaR with too few observations) is reported as missing, not as 0.
    """
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v + 0.0 if math.isfinite(v) else None


class ConfigError(ValueError):
    """The configuration is invalid; the message names the field and the problem."""


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None``, recursively (JSON has no
    NaN or infinity); dicts, lists and tuples are rebuilt, anything else is returned."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj
