"""A loopback fake of the Binance spot REST API, for driving the real ccxt library in tests.

Test-only code.  :class:`FakeBinance` runs an aiohttp server on ``127.0.0.1`` and a free
port in a thread of its own (so sync tests, async tests and agent subprocesses can all talk
to it) and speaks what ``ccxt.binance`` uses for spot trading:

=========================  =========================================================
``GET /api/v3/ping``       ``{}``
``GET /api/v3/time``       ``{"serverTime": <market clock ms>}``
``GET /api/v3/exchangeInfo``  the sample pairs with PRICE_FILTER, LOT_SIZE, NOTIONAL
``GET /api/v3/klines``     closed candles up to the market clock + the one in progress
``GET /api/v3/ticker/24hr`` / ``ticker/price``  last price = last closed close
``POST /api/v3/order``     signed; MARKET fills at once, LIMIT rests
``GET /api/v3/order``      signed; by ``orderId`` or ``origClientOrderId`` (-2013)
``DELETE /api/v3/order``   signed; cancels a working order (-2011 otherwise)
``GET /api/v3/openOrders`` signed; one symbol or all
``GET /api/v3/account``    signed; balances (free, locked) of every asset
``GET /api/v3/myTrades``   signed; ``startTime``/``endTime``/``fromId``/``limit``
=========================  =========================================================

Signed requests are checked like Binance does: ``X-MBX-APIKEY`` must be the test key
(-2015, HTTP 401) and ``signature`` the hex HMAC-SHA256 of the query string + body
without it, keyed with the test secret (-1022).  Errors are Binance's JSON
``{"code": ..., "msg": ...}`` with HTTP 400.  Exchange state and its rules (market clock,
fill prices, fees, duplicate ids) are in :mod:`fakes.binance_book`.

Fault injection (:meth:`FakeBinance.inject`, each fault used by the next matching request):
``"stall"`` applies the request, then holds the response for ``stall_s`` (a client
timeout that *did* reach the exchange); ``"503"`` answers ``503 Service Unavailable``
without applying; ``"drop"`` closes the connection without an answer (after applying it
when ``apply=True``).  Every request is recorded in :attr:`FakeBinance.requests`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

from aiohttp import web

from fakes.binance_book import MAX_QTY, MIN_NOTIONAL, BinanceError, Book, Order, Trade, f8

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_SYMBOLS = ["ETH/BTC", "LTC/BTC", "ADA/BTC", "DASH/BTC"]
TEST_KEY = "fake-binance-test-key-0123456789"
TEST_SECRET = "fake-binance-test-secret-9876543210"
PRIVATE = {"order", "openOrders", "account", "myTrades", "allOrders"}


@dataclass
class Fault:
    """One injected fault (see the module docstring)."""

    kind: str  # "stall" | "503" | "drop"
    method: str
    path: str
    apply: bool = True
    stall_s: float = 2.0


@dataclass
class Request:
    """One request the fake received (``params`` without the signature)."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    #: Binance error code of the answer (``None``: success or no answer).
    error: int | None = None


class FakeBinance:
    """The fake exchange server; use as a context manager or :meth:`start`/:meth:`stop`.

    Parameters are those of :class:`fakes.binance_book.Book` plus ``api_key``/``secret``
    (the credentials it accepts).
    """

    def __init__(
        self,
        data_dir: Path = ROOT / "data" / "sample",
        symbols: list[str] | None = None,
        *,
        api_key: str = TEST_KEY,
        secret: str = TEST_SECRET,
        **book_kwargs: object,
    ) -> None:
        self.book = Book(Path(data_dir), list(symbols or SAMPLE_SYMBOLS), **book_kwargs)  # type: ignore[arg-type]
        self.api_key, self.secret = api_key, secret
        self.requests: list[Request] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ life cycle
    def start(self) -> FakeBinance:
        """Serve on a free loopback port (returns once listening)."""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._dispatch)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = self._runner.addresses[0][1]
            ready.set()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-binance", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Binance did not start")
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop is None or self._thread is None:
            return
        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:  # e.g. a handler still stalling
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def ccxt_urls(self) -> dict[str, str]:
        """``urls['api']`` overrides for ccxt's binance: spot to the fake, and the other
        API families too (they answer 404), so nothing can reach the real exchange."""
        urls = {"public": f"{self.base_url}/api/v3", "private": f"{self.base_url}/api/v3",
                "v1": f"{self.base_url}/api/v1"}
        for name in ("sapi", "sapiV2", "sapiV3", "sapiV4", "fapiPublic", "fapiPublicV2",
                     "fapiPublicV3", "fapiPrivate", "fapiPrivateV2", "fapiPrivateV3",
                     "fapiData", "dapiPublic", "dapiPrivate", "dapiPrivateV2", "dapiData",
                     "eapiPublic", "eapiPrivate", "papi", "papiV2"):
            urls[name] = f"{self.base_url}/unsupported/{name}"
        return urls

    # ------------------------------------------------------------------ test controls
    def inject(
        self, kind: str, method: str = "POST", path: str = "/api/v3/order", *,
        apply: bool = True, stall_s: float = 2.0,
    ) -> None:
        """Arm a fault for the next ``method path`` request (see the module docstring)."""
        if kind not in ("stall", "503", "drop"):
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self._faults.append(Fault(kind, method.upper(), path, apply, stall_s))

    def requests_to(self, method: str, path: str) -> list[Request]:
        """Requests received for ``method path``."""
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def orders(self) -> list[Order]:
        """Every order the exchange holds, oldest first."""
        with self.book.lock:
            return list(self.book.orders)

    def trades(self) -> list[Trade]:
        """Every trade of the account, oldest first."""
        with self.book.lock:
            return list(self.book.trades)

    def add_order(self, symbol: str, side: str, qty: str, price: str,
                  client_order_id: str | None = None) -> Order:
        """Place a resting LIMIT order directly, as another client (web UI) would."""
        order, _ = self.book.place(symbol.replace("/", ""), side, "LIMIT", qty, price,
                                   client_order_id or None, "GTC")
        return order

    # ------------------------------------------------------------------ HTTP
    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for i, f in enumerate(self._faults):
                if f.method == method and f.path == path:
                    return self._faults.pop(i)
        return None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        params = dict(parse_qsl(request.query_string, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        signature = params.pop("signature", None)
        path = request.path
        record = Request(request.method, path, dict(params))
        with self._lock:
            self.requests.append(record)
        fault = self._take_fault(request.method, path)
        if fault is not None and fault.kind == "503":
            return web.Response(status=503, text="Service Unavailable")
        if fault is not None and fault.kind == "drop" and not fault.apply:
            return self._drop(request)
        try:
            name = path.removeprefix("/api/v3/")
            if not path.startswith("/api/v3/"):
                return web.Response(status=404, text="Not Found")
            if name in PRIVATE:
                self._authenticate(request, body, signature, params)
            result = self._route(request.method, name, params)
            status = 200
        except BinanceError as err:
            result, status = {"code": err.code, "msg": err.msg}, err.status
            record.error = err.code
        if fault is not None and fault.kind == "drop":
            return self._drop(request)
        if fault is not None and fault.kind == "stall":
            await asyncio.sleep(fault.stall_s)
        if result is None:
            return web.Response(status=404, text="Not Found")
        return web.json_response(result, status=status)

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()
        return web.Response(status=500)  # never reaches the client: the socket is gone

    def _authenticate(self, request: web.Request, body: str, signature: str | None,
                      params: dict[str, str]) -> None:
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        total = "&".join(p for p in (request.query_string, body) if p)
        unsigned = total.replace(f"&signature={signature}", "").replace(
            f"signature={signature}", "")
        want = hmac.new(self.secret.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
        if signature is None or not hmac.compare_digest(signature, want):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        if "timestamp" not in params:
            raise BinanceError(-1102, "Mandatory parameter 'timestamp' was not sent, was "
                                      "empty/null, or malformed.")

    def _route(self, method: str, name: str, p: dict[str, str]) -> object:  # noqa: PLR0911
        book = self.book
        if (method, name) == ("GET", "ping"):
            return {}
        if (method, name) == ("GET", "time"):
            return {"serverTime": book.clock_ms()}
        if (method, name) == ("GET", "exchangeInfo"):
            return self._exchange_info()
        if (method, name) == ("GET", "klines"):
            book.market(p.get("symbol"))
            limit = min(int(p.get("limit", 500)), 1000)
            start = int(p["startTime"]) if "startTime" in p else None
            end = int(p["endTime"]) if "endTime" in p else None
            return book.klines(p["symbol"], start, end, limit)
        if (method, name) in (("GET", "ticker/24hr"), ("GET", "ticker/price")):
            return self._ticker(name, p.get("symbol"))
        if name == "order":
            return self._order(method, p)
        if (method, name) == ("GET", "openOrders"):
            if p.get("symbol"):
                book.market(p["symbol"])
            return [o.to_json() for o in book.open_orders(p.get("symbol"))]
        if (method, name) == ("GET", "account"):
            return self._account()
        if (method, name) == ("GET", "myTrades"):
            return self._my_trades(p)
        return None

    def _order(self, method: str, p: dict[str, str]) -> dict:
        book = self.book
        if method == "POST":
            order, trades = book.place(
                p.get("symbol", ""), p.get("side", ""), p.get("type", ""),
                p.get("quantity", "0"), p.get("price"), p.get("newClientOrderId"),
                p.get("timeInForce"),
            )
            out = order.to_json()
            out["transactTime"] = order.time_ms
            kind = p.get("newOrderRespType", "FULL")
            if kind == "ACK":
                return {k: out[k] for k in ("symbol", "orderId", "orderListId",
                                            "clientOrderId", "transactTime")}
            if kind == "FULL":
                out["fills"] = [{"price": f8(t.price), "qty": f8(t.qty),
                                 "commission": f8(t.commission),
                                 "commissionAsset": t.commission_asset,
                                 "tradeId": t.trade_id} for t in trades]
            for k in ("time", "updateTime", "isWorking", "stopPrice", "icebergQty"):
                out.pop(k, None)
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
            for k in ("time", "updateTime", "isWorking", "stopPrice", "icebergQty"):
                out.pop(k, None)
            return out
        raise BinanceError(-1014, "Unsupported order combination.")

    def _ticker(self, name: str, symbol: str | None) -> object:
        book = self.book
        ids = [symbol] if symbol else list(book.markets)
        out = []
        for sid in ids:
            book.market(sid)
            px = f8(book.price(sid))
            if name == "ticker/price":
                out.append({"symbol": sid, "price": px})
            else:
                out.append({"symbol": sid, "lastPrice": px, "bidPrice": px, "askPrice": px,
                            "openPrice": px, "highPrice": px, "lowPrice": px,
                            "volume": "0.00000000", "quoteVolume": "0.00000000",
                            "closeTime": book.clock_ms(), "count": 0})
        return out[0] if symbol else out

    def _account(self) -> dict:
        bals = self.book.balances()
        return {
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0,
            "sellerCommission": 0, "canTrade": True, "canWithdraw": True,
            "canDeposit": True, "brokered": False, "requireSelfTradePrevention": False,
            "updateTime": 0, "accountType": "SPOT", "permissions": ["SPOT"],
            "balances": [{"asset": a, "free": f8(f), "locked": f8(lk)}
                         for a, (f, lk) in sorted(bals.items())],
        }

    def _my_trades(self, p: dict[str, str]) -> list[dict]:
        book = self.book
        book.market(p.get("symbol"))
        start = int(p["startTime"]) if "startTime" in p else None
        end = int(p["endTime"]) if "endTime" in p else None
        from_id = int(p["fromId"]) if "fromId" in p else None
        limit = min(int(p.get("limit", 500)), 1000)
        with book.lock:
            rows = [t for t in book.trades if t.symbol == p["symbol"]
                    and (start is None or t.time_ms >= start)
                    and (end is None or t.time_ms <= end)
                    and (from_id is None or t.trade_id >= from_id)]
        return [t.to_json() for t in rows[:limit]]

    def _exchange_info(self) -> dict:
        symbols = []
        for m in self.book.markets.values():
            f = m.filters
            symbols.append({
                "symbol": m.id, "status": "TRADING", "baseAsset": m.base,
                "baseAssetPrecision": 8, "quoteAsset": m.quote, "quotePrecision": 8,
                "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT",
                               "TAKE_PROFIT_LIMIT"],
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
        return {"timezone": "UTC", "serverTime": self.book.clock_ms(),
                "rateLimits": [], "exchangeFilters": [], "symbols": symbols}
