"""Build the venue the execution agent trades on, from ``settings.venue.kind``.

* ``paper`` -> :class:`~backend.venues.paper.adapter.PaperVenue` (the simulated book in Redis);
* ``ccxt`` / ``mt5`` / ``ibkr`` -> :class:`~backend.venues.live.LiveVenue` over the
  kind's :class:`~backend.venues.broker.BrokerClient`, imported only when selected
  (``backend.venues.ccxt.client.CcxtClient``, ``backend.venues.mt5.client.Mt5Client``,
  ``backend.venues.ib.client.IbClient``; each built from its config section and the
  mesh's symbols, or by the module's ``make_client(settings)`` when it has one).  A kind
  whose module or SDK cannot be imported fails with :class:`VenueConfigError` naming
  what is missing.

Tests inject a client (``make_venue(settings, redis, client=fake)``).  For agent
*processes*, the environment variable ``TRADINGMESH_TEST_BROKER=<module>:<callable>``
names a factory ``callable(settings) -> BrokerClient`` that replaces the configured
kind's client; it is read only when set (never in production), so the kill -9 tests can
run a real execution process against a fake broker whose state outlives the process.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from backend.venues.base import Venue
from backend.venues.broker import BrokerClient
from backend.venues.config import VenueConfigError, VenueSettings
from backend.venues.ledger import Accounting
from backend.venues.live import LiveVenue
from backend.venues.paper.adapter import PaperVenue
from backend.venues.placement import PlacerTiming, SendJournal

__all__ = ["TEST_BROKER_ENV", "VenueConfigError", "make_client", "make_venue", "placer_timing"]

#: ``<module>:<callable>`` of a test broker-client factory (tests only; see above).
TEST_BROKER_ENV = "TRADINGMESH_TEST_BROKER"

#: kind -> (module, client class, config section, accounting of the account).
_KINDS: dict[str, tuple[str, str, str, Accounting]] = {
    "ccxt": ("backend.venues.ccxt.client", "CcxtClient", "ccxt", "spot"),
    "mt5": ("backend.venues.mt5.client", "Mt5Client", "mt5", "margin"),
    "ibkr": ("backend.venues.ib.client", "IbClient", "ibkr", "spot"),
}


def quote_currency(settings: VenueSettings) -> str:
    """The account currency of a live venue: ``venue.quote_currency`` or the quote of
    the first symbol (``ETH/BTC`` -> ``BTC``)."""
    if settings.venue.quote_currency:
        return settings.venue.quote_currency
    first = settings.symbols[0] if settings.symbols else ""
    return first.split("/")[-1] if "/" in first else settings.paper.quote_currency


def _load_callable(spec: str) -> Callable[[VenueSettings], BrokerClient]:
    module, _, name = spec.partition(":")
    if not module or not name:
        raise VenueConfigError(f"{TEST_BROKER_ENV}={spec!r}: expected <module>:<callable>")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise VenueConfigError(f"{TEST_BROKER_ENV}={spec!r}: {exc}") from exc
    return fn  # type: ignore[no-any-return]


def make_client(settings: VenueSettings) -> BrokerClient:
    """The broker client of ``settings.venue.kind`` (a live kind), imported lazily.

    Raises
    ------
    VenueConfigError
        ``paper`` (no client), or the kind's module / SDK cannot be imported here
        (e.g. ``MetaTrader5`` off Windows, ``ccxt`` not installed).
    """
    kind = settings.venue.kind
    if kind not in _KINDS:
        raise VenueConfigError(f"venue kind {kind!r} has no broker client")
    module_name, cls_name, section, _ = _KINDS[kind]
    try:
        module: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise VenueConfigError(
            f"venue kind {kind!r} is not available here: {exc} "
            f"(install the extra: pip install 'tradingmesh[{kind}]')") from exc
    factory = getattr(module, "make_client", None)
    if factory is not None:
        return factory(settings)  # type: ignore[no-any-return]
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise VenueConfigError(f"{module_name} defines neither make_client nor {cls_name}")
    return cls(getattr(settings.venue, section), list(settings.symbols))  # type: ignore[no-any-return]


def placer_timing(settings: VenueSettings) -> PlacerTiming:
    """The UNKNOWN protocol's timings from ``settings.venue``."""
    v = settings.venue
    return PlacerTiming(call_timeout_s=v.submit_timeout_s, backoff_s=v.resolve_backoff_s,
                        backoff_max_s=max(v.resolve_backoff_s, min(v.retry_max_s, 4.0)),
                        margin_s=v.unknown_margin_s, window_s=v.unknown_window_s,
                        unreachable_attempts=v.resolve_attempts)


def make_venue(settings: VenueSettings, redis: Redis, client: BrokerClient | None = None, *,
               journal: SendJournal | None = None,
               pause: Callable[[float], Awaitable[bool]] | None = None,
               fence: Callable[[], Awaitable[None]] | None = None) -> Venue:
    """The venue execution trades on.

    Parameters
    ----------
    settings
        Mesh settings (``settings.venue.kind`` selects the venue).
    redis
        The execution agent's Redis client (the venue's local state lives there).
    client
        A broker client to use instead of the configured one (tests): the venue is
        then a :class:`LiveVenue` over it, whatever ``kind`` says.
    journal, pause, fence
        A live venue's send journal, stop-aware pause and lease check
        (:class:`~backend.venues.placement.Placer`); ignored by the paper venue.

    Returns
    -------
    Venue
        Not yet loaded: the caller runs ``await venue.load()`` (which connects).
    """
    kind = settings.venue.kind
    accounting: Accounting = _KINDS[kind][3] if kind in _KINDS else "spot"
    if client is None:
        hook = os.environ.get(TEST_BROKER_ENV, "").strip()
        if hook:
            client = _load_callable(hook)(settings)
        elif kind == "paper":
            return PaperVenue(redis, settings.paper)
        else:
            client = make_client(settings)
    return LiveVenue(client, redis, symbols=settings.symbols,
                     quote_currency=quote_currency(settings), accounting=accounting,
                     journal=journal, timing=placer_timing(settings), pause=pause,
                     fence=fence, flatten_scope=settings.venue.flatten_scope)
