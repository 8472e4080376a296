"""Binance spot REST answers of the simulator, transport-free: params in, JSON out.

:func:`answer` is what :class:`backend.exchange_sim.server.ExchangeSim` calls once a
request is authenticated and due to be applied.  Endpoints (``/api/v3/<name>``):

==========================  =======================================================
``GET ping``                ``{}``
``GET time``                ``{"serverTime": <market clock ms>}``
``GET exchangeInfo``        the markets with PRICE_FILTER, LOT_SIZE, NOTIONAL
``GET klines``              closed candles up to the market clock + the one in progress
``GET ticker/24hr``,        last price = last closed close
``GET ticker/price``
``POST order``              signed; MARKET fills at once, LIMIT rests, STOP_LOSS /
                            TAKE_PROFIT rest until triggered
``GET order``               signed; by ``orderId`` or ``origClientOrderId`` (-2013)
``DELETE order``            signed; cancels a working order (-2011 otherwise)
``GET openOrders``          signed; one symbol or all
``GET account``             signed; balances (free, locked) of every asset
``GET myTrades``            signed; ``startTime``/``endTime``/``fromId``/``limit``
==========================  =======================================================
"""

from __future__ import annotations

from typing import Any

from backend.exchange_sim.book import Book
from backend.exchange_sim.model import MAX_QTY, MIN_NOTIONAL, STOP_TYPES, BinanceError, f8

#: Endpoints that need a signature.
PRIVATE = {"order", "openOrders", "account", "myTrades", "allOrders"}
#: Binance's spot order types (what exchangeInfo lists; ccxt checks the request against it).
LISTED_ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT",
                      "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"]
_NOT_IN_RESULT = ("time", "updateTime", "isWorking", "icebergQty")


def answer(book: Book, method: str, name: str, p: dict[str, str],
           fill_ratio: float | None = None) -> Any:
    """The JSON answer to ``method /api/v3/<name>`` with params ``p``.

    ``fill_ratio`` is the ``expire`` fault's, for a MARKET order creation.  Returns
    ``None`` for an unknown endpoint (HTTP 404).

    Raises
    ------
    BinanceError
        The exchange's refusal (answered as Binance's error JSON).
    """
    book.settle()
    if (method, name) == ("GET", "ping"):
        return {}
    if (method, name) == ("GET", "time"):
        return {"serverTime": book.clock_ms()}
    if (method, name) == ("GET", "exchangeInfo"):
        return exchange_info(book)
    if (method, name) == ("GET", "klines"):
        book.market(p.get("symbol"))
        limit = min(int(p.get("limit", 500)), 1000)
        start = int(p["startTime"]) if "startTime" in p else None
        end = int(p["endTime"]) if "endTime" in p else None
        return book.klines(p["symbol"], start, end, limit)
    if (method, name) in (("GET", "ticker/24hr"), ("GET", "ticker/price")):
        return ticker(book, name, p.get("symbol"))
    if name == "order":
        return order(book, method, p, fill_ratio)
    if (method, name) == ("GET", "openOrders"):
        if p.get("symbol"):
            book.market(p["symbol"])
        return [o.to_json() for o in book.open_orders(p.get("symbol"))]
    if (method, name) == ("GET", "account"):
        return account(book)
    if (method, name) == ("GET", "myTrades"):
        return my_trades(book, p)
    return None


def order(book: Book, method: str, p: dict[str, str], fill_ratio: float | None = None
          ) -> dict[str, Any]:
    """``POST`` / ``GET`` / ``DELETE /api/v3/order``."""
    if method == "POST":
        o, trades = book.place(
            p.get("symbol", ""), p.get("side", ""), p.get("type", ""),
            p.get("quantity", "0"), p.get("price"), p.get("newClientOrderId"),
            p.get("timeInForce"), stop_price=p.get("stopPrice"), fill_ratio=fill_ratio,
        )
        out = o.to_json()
        out["transactTime"] = o.time_ms
        kind = p.get("newOrderRespType", "FULL")
        if kind == "ACK":
            return {k: out[k] for k in ("symbol", "orderId", "orderListId",
                                        "clientOrderId", "transactTime")}
        if kind == "FULL":
            out["fills"] = [t.fill_json() for t in trades]
        for k in _NOT_IN_RESULT:
            out.pop(k, None)
        if o.type not in STOP_TYPES:
            out.pop("stopPrice")
        return out
    book.market(p.get("symbol"))
    oid, coid = p.get("orderId"), p.get("origClientOrderId")
    if oid is None and coid is None:
        raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, "
                                  "but both were empty/null!")
    if method == "GET":
        return book.find(p["symbol"], oid, coid).to_json()
    if method == "DELETE":
        o = book.cancel(p["symbol"], oid, coid)
        out = o.to_json()
        out["origClientOrderId"] = o.client_order_id
        out["clientOrderId"] = p.get("newClientOrderId") or f"cancel_{o.order_id}"
        out["transactTime"] = o.update_ms
        for k in _NOT_IN_RESULT:
            out.pop(k, None)
        if o.type not in STOP_TYPES:
            out.pop("stopPrice")
        return out
    raise BinanceError(-1014, "Unsupported order combination.")


def ticker(book: Book, name: str, symbol: str | None) -> Any:
    """``ticker/price`` or ``ticker/24hr`` of one symbol or all (last price everywhere)."""
    ids = [symbol] if symbol else list(book.markets)
    out = []
    for sid in ids:
        book.market(sid)
        assert sid is not None
        px = f8(book.price(sid))
        if name == "ticker/price":
            out.append({"symbol": sid, "price": px})
        else:
            out.append({"symbol": sid, "lastPrice": px, "bidPrice": px, "askPrice": px,
                        "openPrice": px, "highPrice": px, "lowPrice": px,
                        "volume": "0.00000000", "quoteVolume": "0.00000000",
                        "closeTime": book.clock_ms(), "count": 0})
    return out[0] if symbol else out


def account(book: Book) -> dict[str, Any]:
    """``GET /api/v3/account``: every asset's free and locked balance."""
    bals = book.balances()
    return {
        "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0,
        "sellerCommission": 0, "canTrade": True, "canWithdraw": True,
        "canDeposit": True, "brokered": False, "requireSelfTradePrevention": False,
        "updateTime": 0, "accountType": "SPOT", "permissions": ["SPOT"],
        "balances": [{"asset": a, "free": f8(f), "locked": f8(lk)}
                     for a, (f, lk) in sorted(bals.items())],
    }


def my_trades(book: Book, p: dict[str, str]) -> list[dict[str, Any]]:
    """``GET /api/v3/myTrades`` of one symbol (times in ms, ``fromId`` a trade id)."""
    book.market(p.get("symbol"))
    start = int(p["startTime"]) if "startTime" in p else None
    end = int(p["endTime"]) if "endTime" in p else None
    from_id = int(p["fromId"]) if "fromId" in p else None
    limit = min(int(p.get("limit", 500)), 1000)
    rows = [t for t in book.all_trades() if t.symbol == p["symbol"]
            and (start is None or t.time_ms >= start)
            and (end is None or t.time_ms <= end)
            and (from_id is None or t.trade_id >= from_id)]
    return [t.to_json() for t in rows[:limit]]


def exchange_info(book: Book) -> dict[str, Any]:
    """``GET /api/v3/exchangeInfo`` of the simulated markets."""
    symbols = []
    for m in book.markets.values():
        f = m.filters
        symbols.append({
            "symbol": m.id, "status": "TRADING", "baseAsset": m.base,
            "baseAssetPrecision": 8, "quoteAsset": m.quote, "quotePrecision": 8,
            "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8, "orderTypes": list(LISTED_ORDER_TYPES),
            "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True,
            "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": f["tickSize"],
                 "maxPrice": "1000.00000000", "tickSize": f["tickSize"]},
                {"filterType": "LOT_SIZE", "minQty": f["minQty"], "maxQty": MAX_QTY,
                 "stepSize": f["stepSize"]},
                {"filterType": "NOTIONAL", "minNotional": MIN_NOTIONAL,
                 "applyMinToMarket": True, "maxNotional": "9000000.00000000",
                 "applyMaxToMarket": False, "avgPriceMins": 5},
            ],
            "permissions": [], "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER",
                                                "EXPIRE_BOTH"],
        })
    return {"timezone": "UTC", "serverTime": book.clock_ms(),
            "rateLimits": [], "exchangeFilters": [], "symbols": symbols}
