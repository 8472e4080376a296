"""The names of the market regimes, and the checks of a configured list of them.

Light on purpose (no numpy): the configuration models validate ``regimes`` with it, so
loading settings does not load the regime computation (:mod:`backend.marketdata.regime`,
which re-exports these names).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["LABELS", "TRENDS", "VOLS", "matches", "validate_regimes"]

TRENDS: tuple[str, ...] = ("trending_up", "trending_down", "ranging")
VOLS: tuple[str, ...] = ("high_vol", "low_vol")
#: Every full label, ``"<trend>/<vol>"``.
LABELS: tuple[str, ...] = tuple(f"{t}/{v}" for t in TRENDS for v in VOLS)


def validate_regimes(allowed: Iterable[str]) -> list[str]:
    """Check a list of allowed regimes (config ``regimes``); return it as a list.

    Raises
    ------
    ValueError
        An entry that is neither a full label, a trend nor a volatility level; the
        message lists the accepted ones.
    """
    out = list(allowed)
    known = set(LABELS) | set(TRENDS) | set(VOLS)
    for a in out:
        if a not in known:
            raise ValueError(
                f"unknown regime {a!r}: use a trend ({', '.join(TRENDS)}), a volatility "
                f"({', '.join(VOLS)}) or both as '<trend>/<vol>', e.g. 'ranging/low_vol'")
    return out


def matches(label: str, allowed: Sequence[str]) -> bool:
    """True when ``label`` (``"<trend>/<vol>"``) is allowed by any entry of ``allowed``
    (full label, trend or volatility); ``""`` never matches."""
    if not label:
        return False
    trend, _, vol = label.partition("/")
    return any(a in (label, trend, vol) for a in allowed)
