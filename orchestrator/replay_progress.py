"""The progress line of ``tradingmesh run``: bars published of the total, rate and ETA."""

from __future__ import annotations

__all__ = ["PRINT_EVERY_S", "progress_line"]

#: Seconds between two progress lines (a replay of the sample data prints about a dozen).
PRINT_EVERY_S = 10.0


def progress_line(published: int, total: int | None, elapsed_s: float) -> str:
    """One line: ``bars published: 4,600 / 22,998 (20%), 171 bars/s, ETA 1m48s``.

    Parameters
    ----------
    published : int
        Bars market_data published so far (the replay cursor).
    total : int or None
        Bars the replay will publish (None or 0: unknown, no share or ETA).
    elapsed_s : float
        Seconds since the replay started.
    """
    rate = published / elapsed_s if elapsed_s > 0 else 0.0
    line = f"  bars published: {published:,}"
    if total:
        line += f" / {total:,} ({100 * published / total:.0f}%)"
    line += f", {rate:,.0f} bars/s"
    if total and rate > 0 and published < total:
        eta = int(round((total - published) / rate))
        line += f", ETA {eta // 60}m{eta % 60:02d}s" if eta >= 60 else f", ETA {eta}s"
    return line + f" ({elapsed_s:.0f}s)"
