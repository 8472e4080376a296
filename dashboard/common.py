"""What every dashboard page shares: the API client, reads that fall back to the last
good answer (marked stale), UTC formatting, state colours, the banner and action
callbacks.

Tests replace the API client by putting one in ``st.session_state[CLIENT_KEY]`` before
the first run (see ``tests/unit/dashboard/test_dashboard_pages.py``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import streamlit as st

from dashboard.client import (
    ApiAuthError,
    ApiClient,
    ApiError,
    ApiUnavailable,
    resolve_token,
    resolve_url,
)

T = TypeVar("T")

CLIENT_KEY = "_tm_client"
CACHE_KEY = "_tm_cache"
FLASH_KEY = "_tm_flash"

#: Colour of each agent state (Streamlit badge colours).
STATE_COLOURS = {
    "running": "green", "degraded": "orange", "starting": "blue", "stopping": "blue",
    "restarting": "red", "stopped": "gray", "faulted": "red", "no_heartbeat": "red",
    "given_up": "red",
}


def refresh_s() -> float:
    """Seconds between refreshes (``TRADINGMESH_DASHBOARD_REFRESH_S``, default 1.5)."""
    try:
        value = float(os.environ.get("TRADINGMESH_DASHBOARD_REFRESH_S", "1.5"))
    except ValueError:
        value = 1.5
    return min(max(value, 0.5), 30.0)


@st.cache_resource(show_spinner=False)
def _shared_client(url: str, token: str | None) -> ApiClient:
    return ApiClient(url, token)


def get_client() -> ApiClient:
    """The API client: an injected one (tests), else one for the configured URL/token."""
    injected = st.session_state.get(CLIENT_KEY)
    if injected is not None:
        return injected
    return _shared_client(resolve_url(), resolve_token())


# ---------------------------------------------------------------- reads with fallback
@dataclass
class Fetched(Generic[T]):
    """An API read: the value (maybe the last good one), when it was read, the error."""

    value: T | None
    at: float | None
    error: ApiError | None = None

    @property
    def stale(self) -> bool:
        """True when this is not a fresh answer."""
        return self.error is not None


class Loader:
    """The API reads of one refresh.

    Each successful answer is remembered in session state; a failed read returns the last
    good answer with the error.  Once the API is found unreachable (or refuses the token)
    the remaining reads of this refresh do not try again, so a dead API costs one timeout.
    """

    def __init__(self, client: ApiClient | None = None) -> None:
        self.client = client or get_client()
        self.down: ApiError | None = None
        self.errors: list[ApiError] = []
        self._seen: dict[str, Fetched[Any]] = {}

    def get(self, key: str, fn: Callable[[ApiClient], T]) -> Fetched[T]:
        """Read ``fn(client)``, or the remembered value of ``key`` if that fails.

        Within one refresh, a key is read once (later calls get the same answer).
        """
        if key in self._seen:
            return self._seen[key]
        self._seen[key] = fetched = self._get(key, fn)
        return fetched

    def _get(self, key: str, fn: Callable[[ApiClient], T]) -> Fetched[T]:
        cache: dict[str, tuple[Any, float]] = st.session_state.setdefault(CACHE_KEY, {})
        error: ApiError | None = self.down
        if error is None:
            try:
                value = fn(self.client)
            except (ApiUnavailable, ApiAuthError) as exc:
                self.down = error = exc
            except ApiError as exc:
                error = exc
                self.errors.append(exc)
            else:
                now = time.time()
                cache[key] = (value, now)
                return Fetched(value, now)
        value, at = cache.get(key, (None, None))
        return Fetched(value, at, error)

    def banner(self) -> None:
        """A red banner when the API is down or refuses the token; nothing otherwise."""
        if isinstance(self.down, ApiAuthError):
            st.error(f"**API access refused.** {self.down}", icon=":material/lock:")
        elif self.down is not None:
            st.error(f"**API unreachable: the figures below are stale.** {self.down}",
                     icon=":material/cloud_off:")
        for exc in self.errors[:3]:
            st.warning(str(exc), icon=":material/warning:")


def stale_marker(f: Fetched[Any], what: str = "") -> None:
    """Under a section: red STALE with the time of the last good answer, if stale.

    Always one element (empty when fresh), so that what follows keeps its place in the
    page when the API goes down or comes back (Streamlit redraws elements whose position
    changed, which flickers).
    """
    if not f.stale:
        st.empty()
        return
    label = f"{what}: " if what else ""
    if f.at is None:
        st.markdown(f":red[**{label}no data** — the API did not answer]")
    else:
        st.markdown(f":red[**{label}STALE** — last update {fmt_clock(f.at)} "
                    f"({fmt_age(time.time() - f.at)} ago)]")


# ---------------------------------------------------------------- formatting (UTC)
def fmt_ts(ns: int | None, seconds: bool = True) -> str:
    """``2018-01-10 12:05:00 UTC`` from ns since the epoch ('—' for None)."""
    if ns is None:
        return "—"
    fmt = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime(fmt) + " UTC"


def fmt_clock(epoch_s: float) -> str:
    """``12:05:01 UTC`` from seconds since the epoch."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%H:%M:%S") + " UTC"


def to_utc(ns: int) -> datetime:
    """A timezone-aware UTC datetime from ns since the epoch (for charts)."""
    return datetime.fromtimestamp(ns / 1e9, UTC)


def fmt_age(seconds: float | None) -> str:
    """``0.8 s``, ``42 s``, ``3m 04s``, ``2h 05m`` ('—' for None)."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m {int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h {int(seconds % 3600 // 60):02d}m"


def fmt_num(x: float | None, digits: int = 6) -> str:
    """A number with ``digits`` decimals, '—' for None."""
    return "—" if x is None else f"{x:,.{digits}f}"


def fmt_price(x: float | None, significant: int = 8) -> str:
    """A price, fee or amount of the quote currency with ``significant`` significant
    digits, never in scientific notation (ADA/BTC 0.00005321 and 0.00005207 stay apart,
    where 4 decimals showed both as 0.0001); '—' for None."""
    if x is None:
        return "—"
    if x == 0:
        return "0"
    text = f"{x:.{significant}g}"
    if "e" not in text:
        return text
    digits = max(significant - 1 - int(text.split("e")[1]), 0)
    return f"{x:.{digits}f}".rstrip("0").rstrip(".")


def quote_currency(symbols: list[str]) -> str:
    """The quote currency of ``BASE/QUOTE`` symbols (the mesh trades one), '' if none or
    several."""
    quotes = {s.split("/")[-1] for s in symbols if "/" in s}
    return quotes.pop() if len(quotes) == 1 else ""


def in_quote(label: str, quote: str) -> str:
    """``"price (BTC)"`` (``label`` alone without a quote currency)."""
    return f"{label} ({quote})" if quote else label


def fmt_pct(x: float | None, digits: int = 2) -> str:
    """A fraction as a percentage, '—' for None."""
    return "—" if x is None else f"{x * 100:.{digits}f}%"


def slug(text: str) -> str:
    """A widget-key-safe form of an agent id (``strategy:ETHBTC`` -> ``strategy_ETHBTC``)."""
    return "".join(c if c.isalnum() else "_" for c in text)


# ---------------------------------------------------------------- actions and messages
def flash(kind: str, text: str) -> None:
    """Queue a message (``success`` / ``error`` / ``info``) for the next render."""
    st.session_state.setdefault(FLASH_KEY, []).append((kind, text))


def show_flash() -> None:
    """Show (and forget) the queued messages."""
    for kind, text in st.session_state.pop(FLASH_KEY, []):
        {"success": st.success, "error": st.error}.get(kind, st.info)(text)


def act(label: str, fn: Callable[[ApiClient], Any]) -> Any:
    """Run an operator action (from a button callback) and queue its outcome."""
    try:
        result = fn(get_client())
    except ApiError as exc:
        flash("error", f"{label} failed: {exc}")
        return None
    message = getattr(result, "message", None) or "done"
    flash("success", f"{label}: {message}")
    return result


def page_header(title: str, caption: str) -> None:
    """Page title and a one-line explanation (times are UTC)."""
    st.title(title)
    st.caption(caption + "  All times are UTC.")
