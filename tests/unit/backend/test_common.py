"""backend.common: the one NaN/inf-to-None helper the reports and REST bodies share."""

from __future__ import annotations

import math

import numpy as np

from backend.common import finite_or_none


def test_finite_numbers_pass_and_the_rest_is_none() -> None:
    assert finite_or_none(1.5) == 1.5 and finite_or_none(np.float64(2.0)) == 2.0
    assert finite_or_none(3) == 3.0 and finite_or_none("0.25") == 0.25
    for bad in (math.nan, math.inf, -math.inf, None, "x", object()):
        assert finite_or_none(bad) is None


def test_negative_zero_is_reported_as_zero() -> None:
    assert math.copysign(1.0, finite_or_none(-0.0) or 0.0) == 1.0
