"""Pure mappings between MetaTrader 5 and our order model (no terminal needed).

Result codes of ``order_send`` (``TRADE_RETCODE_*``), order states
(``ORDER_STATE_*``), lots <-> base units, prices to the symbol's point, the
``order_send`` requests themselves (market deals and pending stop orders), and symbol
names.  ``mod`` is the
``MetaTrader5`` module (or a fake with the same constants); constants are read from it,
never hard-coded, so a terminal build that renumbers them still maps correctly.

Source of the codes: MQL5 reference, "Trade Server Return Codes" and
"ENUM_ORDER_STATE" (https://www.mql5.com/en/docs/constants).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum
from typing import Any

from backend.messages import OrderStatus
from backend.venues.config import Mt5Config

__all__ = [
    "Outcome",
    "deal_request",
    "lots_for",
    "our_symbol",
    "outcome_of",
    "retcode_name",
    "status_of_state",
    "stop_price_of",
    "stop_request",
    "terminal_lost",
    "terminal_symbol",
    "to_point",
]


class Outcome(Enum):
    """What an ``order_send`` result code means for us."""

    DONE = "done"  # filled (TRADE_RETCODE_DONE)
    PARTIAL = "partial"  # part filled (TRADE_RETCODE_DONE_PARTIAL)
    PLACED = "placed"  # accepted, not filled yet (TRADE_RETCODE_PLACED)
    REQUOTE = "requote"  # price moved: definitive no-fill, may retry with a fresh price
    UNKNOWN = "unknown"  # timeout / connection: the order may exist -> VenueUnavailable
    REJECTED = "rejected"  # definitive refusal -> VenueRejected


_OUTCOMES: dict[str, Outcome] = {
    "TRADE_RETCODE_DONE": Outcome.DONE,
    "TRADE_RETCODE_DONE_PARTIAL": Outcome.PARTIAL,
    "TRADE_RETCODE_PLACED": Outcome.PLACED,
    "TRADE_RETCODE_REQUOTE": Outcome.REQUOTE,
    "TRADE_RETCODE_PRICE_CHANGED": Outcome.REQUOTE,
    "TRADE_RETCODE_PRICE_OFF": Outcome.REQUOTE,
    "TRADE_RETCODE_TIMEOUT": Outcome.UNKNOWN,
    "TRADE_RETCODE_CONNECTION": Outcome.UNKNOWN,
    "TRADE_RETCODE_ERROR": Outcome.UNKNOWN,
    "TRADE_RETCODE_TOO_MANY_REQUESTS": Outcome.UNKNOWN,
}


def retcode_name(mod: Any, code: int) -> str:
    """``TRADE_RETCODE_*`` name of ``code`` in ``mod`` (``"retcode <n>"`` if none)."""
    for name in dir(mod):
        if name.startswith("TRADE_RETCODE_") and getattr(mod, name) == code:
            return name
    return f"retcode {code}"


def outcome_of(mod: Any, code: int) -> Outcome:
    """Classify an ``order_send`` result code; anything not listed is a rejection
    (REJECT, INVALID, INVALID_VOLUME, INVALID_PRICE, INVALID_STOPS, TRADE_DISABLED,
    MARKET_CLOSED, NO_MONEY, INVALID_FILL, LIMIT_*, LONG_ONLY, ...)."""
    return _OUTCOMES.get(retcode_name(mod, code), Outcome.REJECTED)


def terminal_lost(error: tuple[int, str] | None) -> bool:
    """True when ``last_error()`` says the terminal's IPC link is gone
    (``RES_E_INTERNAL_FAIL*``: codes -10000 .. -10005)."""
    return error is not None and -10005 <= int(error[0]) <= -10000


def status_of_state(mod: Any, state: int, filled: float) -> OrderStatus:
    """Our status of an MT5 order in ``state`` (``ORDER_STATE_*``) with ``filled`` lots.

    STARTED/PLACED/REQUEST_* -> ACCEPTED (PARTIALLY_FILLED once something filled),
    PARTIAL -> PARTIALLY_FILLED, FILLED -> FILLED, CANCELED/EXPIRED -> CANCELLED
    (possibly partly filled), REJECTED -> REJECTED.
    """
    names = {getattr(mod, n): n for n in dir(mod) if n.startswith("ORDER_STATE_")}
    name = names.get(state, "")
    if name == "ORDER_STATE_FILLED":
        return OrderStatus.FILLED
    if name in ("ORDER_STATE_CANCELED", "ORDER_STATE_EXPIRED"):
        return OrderStatus.CANCELLED
    if name == "ORDER_STATE_REJECTED":
        return OrderStatus.REJECTED
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED


def _decimals(step: float) -> int:
    return max(0, -int(math.floor(math.log10(step)))) if step < 1 else 0


def lots_for(quantity: float, contract_size: float, step: float) -> float:
    """``quantity`` base units in lots, rounded *down* to the volume ``step``.

    Down, so an order never exceeds what risk sized; a close of a position opened in
    lots converts back exactly.  ``1e-9`` absorbs float noise (0.3/0.1 = 2.9999...).
    """
    steps = math.floor(quantity / contract_size / step + 1e-9)
    return round(steps * step, _decimals(step) + 2)


def to_point(price: float, point: float, digits: int) -> float:
    """``price`` (quote/base) rounded to the nearest multiple of the symbol's ``point``,
    written with ``digits`` decimals (a price with more digits is refused by the server
    with ``TRADE_RETCODE_INVALID_PRICE``)."""
    if point > 0:
        price = round(price / point) * point
    return round(price, digits)


def stop_price_of(mod: Any, order: Any) -> float | None:
    """The trigger price (quote/base) of a stop or stop-limit ``order``
    (``TradeOrder.price_open``), ``None`` for any other order type."""
    names = ("ORDER_TYPE_BUY_STOP", "ORDER_TYPE_SELL_STOP", "ORDER_TYPE_BUY_STOP_LIMIT",
             "ORDER_TYPE_SELL_STOP_LIMIT")
    kinds = {getattr(mod, n) for n in names if hasattr(mod, n)}
    return float(order.price_open) if order.type in kinds else None


def deal_request(mod: Any, cfg: Mt5Config, sym: str, lots: float, buy: bool, price: float,
                 comment: str, sl: float | None = None, tp: float | None = None
                 ) -> dict[str, Any]:
    """The ``order_send`` request of a market deal (``TRADE_ACTION_DEAL``) of ``lots`` of
    terminal symbol ``sym`` at ``price`` (quote/base: the ask for a buy, the bid for a
    sell) with ``deviation`` (points), ``magic``, ``comment`` (our client order id) and the
    configured filling; stop-loss/take-profit prices ``sl``/``tp`` only when given."""
    req: dict[str, Any] = {
        "action": mod.TRADE_ACTION_DEAL, "symbol": sym, "volume": lots,
        "type": mod.ORDER_TYPE_BUY if buy else mod.ORDER_TYPE_SELL, "price": price,
        "deviation": cfg.deviation, "magic": cfg.magic, "comment": comment,
        "type_time": mod.ORDER_TIME_GTC,
        "type_filling": getattr(mod, f"ORDER_FILLING_{cfg.filling.upper()}"),
    }
    if sl is not None:
        req["sl"] = float(sl)
    if tp is not None:
        req["tp"] = float(tp)
    return req


def stop_request(mod: Any, cfg: Mt5Config, sym: str, lots: float, buy: bool, stop: float,
                 comment: str, expiration_mode: int) -> dict[str, Any]:
    """The ``order_send`` request of a pending stop order (``TRADE_ACTION_PENDING``,
    ``ORDER_TYPE_BUY_STOP`` / ``ORDER_TYPE_SELL_STOP``) of ``lots`` of ``sym`` triggered at
    ``stop`` (quote/base, already rounded to the point), with ``magic`` and ``comment``.

    ``type_time`` is ``ORDER_TIME_GTC``, or ``ORDER_TIME_DAY`` when the symbol's
    ``expiration_mode`` flags do not allow GTC (``SYMBOL_EXPIRATION_GTC`` = 1).
    ``type_filling`` is ``ORDER_FILLING_RETURN`` whatever ``filling`` says: MetaQuotes'
    ``CTrade`` sends stop orders with RETURN on exchange-execution symbols and checks no
    filling mode for pending orders on market-execution ones (the triggered stop executes
    as a market order).
    """
    gtc = expiration_mode & getattr(mod, "SYMBOL_EXPIRATION_GTC", 1) or not expiration_mode
    return {
        "action": mod.TRADE_ACTION_PENDING, "symbol": sym, "volume": lots,
        "type": mod.ORDER_TYPE_BUY_STOP if buy else mod.ORDER_TYPE_SELL_STOP, "price": stop,
        "magic": cfg.magic, "comment": comment,
        "type_time": mod.ORDER_TIME_GTC if gtc else mod.ORDER_TIME_DAY,
        "type_filling": mod.ORDER_FILLING_RETURN,
    }


def terminal_symbol(symbol: str, mapping: Mapping[str, str]) -> str:
    """Terminal name of our ``symbol``: the configured one, else ``BASE/QUOTE`` ->
    ``BASEQUOTE`` (``EUR/USD`` -> ``EURUSD``)."""
    return mapping.get(symbol) or symbol.replace("/", "")


def our_symbol(name: str, reverse: Mapping[str, str]) -> str:
    """Our name for terminal symbol ``name``: the known mapping, else ``EURUSD`` ->
    ``EUR/USD`` for six letters, else ``name`` itself."""
    if name in reverse:
        return reverse[name]
    if len(name) == 6 and name.isalpha():
        return f"{name[:3]}/{name[3:]}"
    return name
