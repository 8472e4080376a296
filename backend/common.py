"""Small helpers every package of ``backend`` uses (no imports from the rest of it)."""

from __future__ import annotations

import math

__all__ = ["finite_or_none"]


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
