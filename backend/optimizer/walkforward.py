"""Walk-forward folds and the overfitting rule.

Folds
-----
The bar times of all symbols together (their sorted union) are cut into ``K + 1``
consecutive windows with (nearly) the same number of distinct bar times, ``W_0 ..
W_K``.  Fold ``k`` (``0 <= k < K``) fits the GA **in sample** on ``W_k`` (rolling,
the default) or on ``W_0 .. W_k`` (``anchored``) and scores the best parameter set
**out of sample** on ``W_{k+1}``, the window that immediately follows.  So within a
fold the two windows never overlap and the out-of-sample one comes after; the
out-of-sample windows of successive folds are disjoint and in time order.

``K = 0`` means no walk-forward: one fit on all the data, no out-of-sample score.

Overfitting rule
----------------
A fit is flagged **overfit** when it shone in sample and lost most of that out of
sample::

    overfit = IS > 0 and not (OOS >= ratio * IS)        (ratio = 0.5 by default)

i.e. the out-of-sample score is below half the in-sample one, which includes a sign
flip (OOS <= 0 < IS) and an undefined OOS score (``-inf``, e.g. no trade).  An
in-sample score <= 0 has no edge to lose: not flagged (``False``); without an
out-of-sample score there is nothing to judge (``None``).  The run as a whole applies
the same rule to the mean IS and mean OOS scores over the folds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from backend.optimizer.fitness import FitnessContext, Window

__all__ = ["OVERFIT_RATIO", "Fold", "is_overfit", "mean_score", "split_folds"]

#: Default ratio of the overfitting rule: OOS must keep at least half of IS.
OVERFIT_RATIO = 0.5

#: Fewest distinct bar times a walk-forward window may hold.
MIN_WINDOW_BARS = 50


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold.

    Attributes
    ----------
    index : int
        0-based.
    in_sample : Window
        Where the GA fits.
    out_of_sample : Window or None
        The next window, where the fit is scored (``None`` without walk-forward).
    """

    index: int
    in_sample: Window
    out_of_sample: Window | None


def split_folds(ctx: FitnessContext, k: int, *, anchored: bool = False,
                min_window_bars: int = MIN_WINDOW_BARS) -> list[Fold]:
    """The folds of a ``k``-fold walk-forward over ``ctx``'s bars (module docstring).

    Parameters
    ----------
    ctx : FitnessContext
    k : int
        Number of folds (>= 0; 0: a single in-sample fit on everything).
    anchored : bool
        In-sample windows start at the first bar (growing) instead of rolling.
    min_window_bars : int
        Fewest distinct bar times per window.

    Raises
    ------
    ValueError
        ``k < 0`` or too few bars for ``k + 1`` windows (the message says how many).
    """
    if k < 0:
        raise ValueError(f"walk-forward folds must be >= 0, got {k}")
    if k == 0:
        return [Fold(0, ctx.full_window(), None)]
    times = np.unique(np.concatenate([np.asarray(c.time, dtype=np.int64) for c in ctx.candles]))
    n = len(times)
    if n < (k + 1) * min_window_bars:
        raise ValueError(
            f"--walk-forward {k} needs at least {(k + 1) * min_window_bars} bars "
            f"({k + 1} windows of {min_window_bars}); the data has {n}")
    cuts = np.linspace(0, n, k + 2).round().astype(np.int64)
    edges = [int(times[i]) for i in cuts[:-1]] + [int(times[-1]) + 1]
    windows = [ctx.window(edges[i], edges[i + 1]) for i in range(k + 1)]
    return [
        Fold(i, ctx.window(edges[0], edges[i + 1]) if anchored else windows[i], windows[i + 1])
        for i in range(k)
    ]


def is_overfit(in_sample: float | None, out_of_sample: float | None,
               ratio: float = OVERFIT_RATIO) -> bool | None:
    """The overfitting rule (module docstring); ``None``/``-inf`` scores are undefined.

    Parameters
    ----------
    in_sample, out_of_sample : float or None
        Scores of the same parameter set (same objective, higher is better).
    ratio : float
        Share of the in-sample score the out-of-sample one must keep.

    Returns
    -------
    bool or None
        ``None`` when there is no out-of-sample score at all.
    """
    if out_of_sample is None:
        return None
    if in_sample is None or not math.isfinite(in_sample) or in_sample <= 0:
        return False
    return not (math.isfinite(out_of_sample) and out_of_sample >= ratio * in_sample)


def mean_score(scores: Sequence[float | None]) -> float | None:
    """Mean of fold scores; ``None`` for none, ``-inf`` if any is undefined."""
    vals = [float("-inf") if s is None else float(s) for s in scores]
    if not vals:
        return None
    if any(not math.isfinite(v) for v in vals):
        return float("-inf")
    return sum(vals) / len(vals)
