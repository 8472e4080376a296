"""Pure mappings between Interactive Brokers (``ib_async``/``ib_insync``) and our model.

* :func:`import_ib` -- the one import helper: ``ib_async`` (the maintained
  continuation), else ``ib_insync`` (same API), else a clear error;
* :func:`contract_spec` -- our ``BASE/QUOTE`` to an IB contract description: a pair of
  currencies is FX (``EUR/USD`` -> ``Forex('EURUSD')`` on IDEALPRO), anything else a
  stock (``AAPL/USD`` -> ``Stock('AAPL', 'SMART', 'USD')``), overridable per symbol;
* :func:`status_of` -- ``Trade.orderStatus.status`` strings to our order states;
* :func:`to_tick` / :func:`stop_price_of` -- a stop price to the contract's minimum
  tick, and the trigger price of a stop order (``auxPrice``).

Source of the status strings: TWS API reference, "Order Status"
(https://interactivebrokers.github.io/tws-api/order_submission.html#order_status).
"""

from __future__ import annotations

import importlib
import math
from datetime import UTC, datetime
from typing import Any

from backend.messages import OrderStatus
from backend.venues.broker import VenueError
from backend.venues.config import IbContract

__all__ = [
    "CURRENCIES",
    "DEFAULT_TICKS",
    "IB_MISSING",
    "UNACKED",
    "IbNotInstalled",
    "contract_spec",
    "import_ib",
    "is_warning",
    "make_contract",
    "status_of",
    "stop_price_of",
    "time_ns_of",
    "to_tick",
]

IB_MISSING = (
    "venue 'ibkr' needs ib_async (or ib_insync): install it with "
    "`pip install tradingmesh[ibkr]`"
)

#: ISO codes IB trades as IDEALPRO cash pairs; ``X/Y`` with both in here is FX.
CURRENCIES = frozenset({
    "USD", "EUR", "GBP", "JPY", "CHF", "AUD", "NZD", "CAD", "SEK", "NOK", "DKK", "HKD",
    "SGD", "CNH", "MXN", "ZAR", "PLN", "CZK", "HUF", "ILS", "TRY", "KRW", "RUB",
})

#: Minimum price increment (quote/unit) by security type when TWS's contract details give
#: none: US stocks priced from USD 1 up trade in cents, IDEALPRO pairs in half pips
#: (the details' ``minTick``, read on connect, wins: JPY pairs are 0.005).
DEFAULT_TICKS = {"STK": 0.01, "CASH": 0.00005}

#: Statuses of an order TWS has not acknowledged yet (sent, or only known locally).
UNACKED = frozenset({"PendingSubmit", "ApiPending"})


class IbNotInstalled(VenueError):
    """Neither ``ib_async`` nor ``ib_insync`` can be imported."""


def import_ib() -> Any:
    """The IB API module: ``ib_async`` if installed, else ``ib_insync``.

    Raises
    ------
    IbNotInstalled
        Neither is installed (message: :data:`IB_MISSING`).
    """
    for name in ("ib_async", "ib_insync"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise IbNotInstalled(IB_MISSING)


def contract_spec(symbol: str, override: IbContract | None = None) -> IbContract:
    """The IB contract for our ``symbol`` (``BASE/QUOTE``), fields filled in.

    ``override`` (``[venue.ibkr.contracts."AAPL/USD"]``) wins field by field; empty
    fields default to: ``sec_type`` CASH when base and quote are both currencies
    (:data:`CURRENCIES`) else STK, ``symbol`` the base, ``currency`` the quote,
    ``exchange`` IDEALPRO for CASH and SMART for STK.
    """
    base, _, quote = symbol.partition("/")
    fx = base in CURRENCIES and quote in CURRENCIES
    sec_type = override.sec_type if override is not None else ("CASH" if fx else "STK")
    exchange = override.exchange if override is not None else "SMART"
    if sec_type == "CASH" and exchange == "SMART":
        exchange = "IDEALPRO"
    return IbContract(
        sec_type=sec_type,
        symbol=(override.symbol if override is not None else "") or base,
        exchange=exchange,
        currency=(override.currency if override is not None else "") or quote,
    )


def make_contract(mod: Any, spec: IbContract) -> Any:
    """``mod.Forex(pair, exchange)`` for CASH, ``mod.Stock(symbol, exchange, currency)``
    otherwise."""
    if spec.sec_type == "CASH":
        return mod.Forex(pair=spec.symbol + spec.currency, exchange=spec.exchange)
    return mod.Stock(spec.symbol, spec.exchange, spec.currency)


def is_warning(code: int) -> bool:
    """IB "errors" that are notices, not order failures (ib_async's warning list, and
    the 2100-2199 connectivity/farm messages)."""
    return code in {105, 110, 165, 321, 329, 399, 404, 434, 492, 10167} or 2100 <= code < 2200


def status_of(status: str, filled: float, error: str, cancel_requested: bool
              ) -> tuple[OrderStatus, str]:
    """Our ``(status, reason)`` of an IB order.

    ``Filled`` -> FILLED; ``Cancelled``/``ApiCancelled`` -> CANCELLED, or REJECTED when
    nothing filled, we did not ask for the cancel and TWS sent an error (IB reports a
    rejected order as cancelled + error 201); ``Inactive`` -> REJECTED (CANCELLED when
    partly filled) with the error text; every working status -> ACCEPTED, or
    PARTIALLY_FILLED once something filled.
    """
    if status == "Filled":
        return OrderStatus.FILLED, ""
    if status in ("Cancelled", "ApiCancelled"):
        if filled <= 0 and not cancel_requested and error:
            return OrderStatus.REJECTED, error
        return OrderStatus.CANCELLED, error if not cancel_requested else "cancelled"
    if status == "Inactive":
        if filled > 0:
            return OrderStatus.CANCELLED, error or "inactive"
        return OrderStatus.REJECTED, error or "inactive"
    return (OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED), ""


def to_tick(price: float, tick: float) -> float:
    """``price`` (quote/unit) rounded to the nearest multiple of ``tick`` (TWS refuses a
    price that does not conform to the contract's minimum price variation)."""
    if tick <= 0:
        return price
    decimals = max(0, -math.floor(math.log10(tick))) + 2
    return round(round(price / tick) * tick, decimals)


def stop_price_of(order: Any) -> float | None:
    """The trigger price (quote/unit) of a stop order (``STP``, ``STP LMT``: the order's
    ``auxPrice``), ``None`` for any other order or an unset price."""
    aux = getattr(order, "auxPrice", None)
    if getattr(order, "orderType", "") not in ("STP", "STP LMT") or aux is None:
        return None
    return float(aux) if 0 < aux < 1e300 else None  # ib_async's UNSET_DOUBLE is 1.8e308


def time_ns_of(t: datetime) -> int:
    """ns since the epoch of an execution time (aware datetime; naive = UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1_000
