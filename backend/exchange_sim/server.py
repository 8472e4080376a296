"""The exchange simulator's HTTP server: Binance's spot REST API on loopback, with faults.

:class:`ExchangeSim` runs an aiohttp server on ``127.0.0.1`` in a thread of its own (so
sync code, async code and other processes can all talk to it) and answers what
``ccxt.binance`` uses for spot trading (:mod:`backend.exchange_sim.routes`) plus the admin
API under ``/_sim/`` (:mod:`backend.exchange_sim.admin_api`).

Signed requests are checked like Binance does: ``X-MBX-APIKEY`` must be the simulator's
key (-2015, HTTP 401), ``signature`` the hex HMAC-SHA256 of the query string + body
without it, keyed with its secret (-1022), ``timestamp`` present (-1102).  At the moment
a signed request is *applied* (after a ``late`` fault's hold), its ``timestamp`` (client
wall clock, ms) must be within ``recvWindow`` ms (default 5000, at most 60000: -1131)
of the simulator's wall clock and not more than 1000 ms ahead of it, else it is refused
with -1021 and not applied: that bounds how late a request can take effect.  Errors are
Binance's JSON ``{"code": ..., "msg": ...}`` (HTTP 400 unless stated).

Faults (:mod:`backend.exchange_sim.faults`) are armed with :meth:`ExchangeSim.inject` or
``POST /_sim/faults``.  Every Binance API request is recorded in
:attr:`ExchangeSim.requests` (:class:`~backend.exchange_sim.model.Request`) with its
outcome.  All state is guarded by one lock, the book's.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from backend.exchange_sim.admin_api import PREFIX, AdminApi, state_json
from backend.exchange_sim.book import Book
from backend.exchange_sim.faults import ORDER_PATH, Fault, FaultSet, make_fault
from backend.exchange_sim.model import BinanceError, Order, Request, Trade, now_ms
from backend.exchange_sim.routes import PRIVATE, answer

ROOT = Path(__file__).resolve().parents[2]
#: The sample candles shipped with the repository.
DEFAULT_DATA = ROOT / "data" / "sample"
SAMPLE_SYMBOLS = ["ETH/BTC", "LTC/BTC", "ADA/BTC", "DASH/BTC"]
#: The simulator's default credentials (it accepts no others unless told).
TEST_KEY = "fake-binance-test-key-0123456789"
TEST_SECRET = "fake-binance-test-secret-9876543210"
API = "/api/v3/"
DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60_000
AHEAD_MS = 1000
_HTTP_FAULTS = {"500": "Internal Server Error", "502": "Bad Gateway",
                "503": "Service Unavailable"}
_TOO_MANY = {"code": -1003,
             "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE."}
_OTHER_APIS = ("sapi", "sapiV2", "sapiV3", "sapiV4", "fapiPublic", "fapiPublicV2",
               "fapiPublicV3", "fapiPrivate", "fapiPrivateV2", "fapiPrivateV3", "fapiData",
               "dapiPublic", "dapiPrivate", "dapiPrivateV2", "dapiData", "eapiPublic",
               "eapiPrivate", "papi", "papiV2")


class ExchangeSim:
    """The simulated Binance spot exchange; a context manager or :meth:`start`/:meth:`stop`.

    Parameters
    ----------
    data_dir : pathlib.Path or str
        Directory of ``BASE_QUOTE-<timeframe>.csv`` candles (default: the sample data).
    symbols : list of str, optional
        ``BASE/QUOTE`` markets (default :data:`SAMPLE_SYMBOLS`).
    api_key, secret : str
        The only credentials it accepts.
    seed : int
        Seed of the random faults' ``random.Random``.
    admin_token : str, optional
        When set, the admin API wants it in ``X-Sim-Token``.
    port : int
        TCP port on 127.0.0.1 (0: any free one; see :attr:`port` once started).
    timeframe, balances, fee_rate, fee_asset, start_bar, bars_per_s, dup_scope
        As :class:`backend.exchange_sim.book.Book` (``dup_scope`` defaults to ``"all"``;
        real Binance behaves as ``"open"``).

    Raises
    ------
    backend.marketdata.candles.DataError
        Missing or invalid candle data.
    ValueError
        An invalid book parameter.
    """

    def __init__(
        self,
        data_dir: Path | str = DEFAULT_DATA,
        symbols: list[str] | None = None,
        *,
        api_key: str = TEST_KEY,
        secret: str = TEST_SECRET,
        seed: int = 0,
        admin_token: str | None = None,
        port: int = 0,
        timeframe: str = "5m",
        balances: dict[str, str] | None = None,
        fee_rate: str = "0.001",
        fee_asset: str = "quote",
        start_bar: int = 60,
        bars_per_s: float | None = None,
        dup_scope: str = "all",
    ) -> None:
        self.book = Book(Path(data_dir), list(symbols or SAMPLE_SYMBOLS), timeframe=timeframe,
                         balances=balances, fee_rate=fee_rate, fee_asset=fee_asset,
                         start_bar=start_bar, bars_per_s=bars_per_s, dup_scope=dup_scope)
        self.api_key, self.secret = api_key, secret
        #: Every Binance API request received, oldest first (admin requests are not).
        self.requests: list[Request] = []
        self.faults = FaultSet(self.book.lock, seed)
        self._admin = AdminApi(self.book, self.faults, self.requests, admin_token)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._want_port = port
        self.port = 0

    # ------------------------------------------------------------------ life cycle
    def start(self) -> ExchangeSim:
        """Serve on 127.0.0.1 (returns once listening).

        Raises
        ------
        OSError
            The port cannot be bound.
        RuntimeError
            The server did not come up within 10 s.
        """
        ready = threading.Event()
        failed: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._dispatch)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2,
                                         handler_cancellation=False)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", self._want_port)
            await site.start()
            self.port = self._runner.addresses[0][1]

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(serve())
            except BaseException as exc:  # reported by start() in the caller's thread
                failed.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="exchange-sim", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the exchange simulator did not start")
        if failed:
            self._thread.join(5)
            self._loop.close()
            self._loop = self._thread = None
            raise failed[0]
        return self

    def stop(self) -> None:
        """Stop serving (requests still held by a fault are dropped) and join the thread."""
        if self._loop is None or self._thread is None:
            return

        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:  # e.g. a handler still holding a late or stalled request
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> ExchangeSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def ccxt_urls(self) -> dict[str, str]:
        """``urls['api']`` overrides for ccxt's binance: spot to the simulator, and every
        other API family too (they answer 404), so nothing can reach the real exchange."""
        urls = {"public": f"{self.base_url}/api/v3", "private": f"{self.base_url}/api/v3",
                "v1": f"{self.base_url}/api/v1"}
        for name in _OTHER_APIS:
            urls[name] = f"{self.base_url}/unsupported/{name}"
        return urls

    def ccxt_config(self, **options: Any) -> dict[str, Any]:
        """Constructor config for ``ccxt.binance`` / ``ccxt.async_support.binance`` against
        the simulator: its credentials and URLs, no rate limiter, spot markets only, no
        ``sapi`` calls; ``options`` are added to ccxt's ``options``
        (e.g. ``recvWindow=2000``)."""
        return {"apiKey": self.api_key, "secret": self.secret, "enableRateLimit": False,
                "urls": {"api": self.ccxt_urls()},
                "options": {"fetchCurrencies": False, "fetchMargins": False,
                            "fetchMarkets": {"types": ["spot"]}, **options}}

    # ------------------------------------------------------------------ controls
    def inject(
        self, kind: str, method: str = "POST", path: str = ORDER_PATH, *,
        apply: bool = True, stall_s: float | None = None, delay_s: float | None = None,
        count: int | None = None, rate: float | None = None, fill_ratio: float = 0.5,
    ) -> Fault:
        """Arm a fault (see :mod:`backend.exchange_sim.faults`); returns it.

        ``stall_s`` is the old name of ``delay_s`` (seconds, default 2).  Without ``count``
        and ``rate`` the fault acts on the next matching request only.

        Raises
        ------
        ValueError
            As :func:`backend.exchange_sim.faults.make_fault`; or ``stall_s`` and
            ``delay_s`` that disagree.
        """
        if stall_s is not None and delay_s is not None and stall_s != delay_s:
            raise ValueError("stall_s is delay_s: give one of them")
        delay = next((d for d in (delay_s, stall_s) if d is not None), 2.0)
        return self.faults.arm(make_fault(kind, method, path, apply=apply, delay_s=delay,
                                          count=count, rate=rate, fill_ratio=fill_ratio))

    def clear_faults(self) -> int:
        """Disarm every fault; returns how many were armed."""
        return self.faults.clear()

    def advance(self, bars: int = 1) -> int:
        """Move the market clock ``bars`` bars on (stops trigger); returns it (ms)."""
        return self.book.advance(bars)

    def state(self) -> dict[str, Any]:
        """The admin API's ``GET /_sim/state`` document."""
        return state_json(self.book, self.faults)

    def requests_to(self, method: str, path: str) -> list[Request]:
        """Requests received for ``method path``."""
        with self.book.lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def orders(self) -> list[Order]:
        """Every order the exchange holds, oldest first (stops evaluated first)."""
        return self.book.all_orders()

    def trades(self) -> list[Trade]:
        """Every trade of the account, oldest first (stops evaluated first)."""
        return self.book.all_trades()

    def add_order(self, symbol: str, side: str, qty: str, price: str,
                  client_order_id: str | None = None) -> Order:
        """Place a resting LIMIT order directly, as another client (web UI) would.

        ``symbol`` is ``BASE/QUOTE`` or the exchange id, ``qty`` in base units, ``price``
        in quote per base.  Raises :class:`~backend.exchange_sim.model.BinanceError` when
        the exchange refuses it.
        """
        return self.book.manual_order(symbol, side, qty, price, client_order_id)[0]

    def manual_trade(self, symbol: str, side: str, qty: str,
                     client_order_id: str | None = None) -> Order:
        """A MARKET order by another client (client order id ``web_...`` unless given);
        fills at once.  Raises :class:`~backend.exchange_sim.model.BinanceError` when the
        exchange refuses it."""
        return self.book.manual_order(symbol, side, qty, None, client_order_id)[0]

    # ------------------------------------------------------------------ HTTP
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith(PREFIX):
            return await self._admin.handle(request)
        body = await request.text()
        params = dict(parse_qsl(request.query_string, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        signature = params.pop("signature", None)
        record = Request(request.method, request.path, dict(params), time_ms=now_ms())
        with self.book.lock:
            self.requests.append(record)
        fault = self.faults.take(request.method, request.path, params)
        kind = fault.kind if fault is not None else None
        record.fault = kind
        if kind in _HTTP_FAULTS or kind == "429" or (
                kind == "drop" and fault is not None and not fault.apply):
            record.outcome = "faulted"
            return self._fault_answer(request, record, kind)
        result, status = await self._apply(request, body, signature, params, record, fault)
        if kind == "drop":
            record.status = None
            return self._drop(request)
        if kind == "stall" and fault is not None:
            await asyncio.sleep(fault.delay_s)
        if result is None:
            return web.Response(status=404, text="Not Found")
        return web.json_response(result, status=status)

    def _fault_answer(self, request: web.Request, record: Request, kind: str | None
                      ) -> web.StreamResponse:
        if kind == "drop":
            return self._drop(request)
        if kind == "429":
            record.status, record.error = 429, _TOO_MANY["code"]
            return web.json_response(_TOO_MANY, status=429, headers={"Retry-After": "1"})
        assert kind is not None
        record.status = int(kind)
        return web.Response(status=int(kind), text=_HTTP_FAULTS[kind])

    async def _apply(self, request: web.Request, body: str, signature: str | None,
                     params: dict[str, str], record: Request, fault: Fault | None
                     ) -> tuple[Any, int]:
        """Authenticate, hold (``late``), check the recvWindow and answer the request."""
        kind = fault.kind if fault is not None else None
        path = request.path
        try:
            if not path.startswith(API):
                result: Any = None
            else:
                name = path.removeprefix(API)
                if name in PRIVATE:
                    self._authenticate(request, body, signature, params)
                if kind == "late" and fault is not None:
                    await asyncio.sleep(fault.delay_s)
                if name in PRIVATE:
                    self._check_window(params)
                ratio = fault.fill_ratio if kind == "expire" and fault is not None else None
                result = answer(self.book, request.method, name, params, ratio)
            status = 200 if result is not None else 404
        except BinanceError as err:
            result, status = {"code": err.code, "msg": err.msg}, err.status
            record.error = err.code
        except (ValueError, KeyError) as exc:  # a malformed number or a missing parameter
            result, status = {"code": -1100, "msg": f"Illegal parameter: {exc}"}, 400
            record.error = -1100
        record.status = status
        record.outcome = "applied" if status == 200 else "rejected"
        return result, status

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

    @staticmethod
    def _check_window(params: dict[str, str]) -> None:
        """Binance's recvWindow rule, against the wall clock now (ms)."""
        try:
            ts = int(params["timestamp"])
            window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW_MS))
        except ValueError:
            raise BinanceError(-1100, "Illegal characters found in parameter 'timestamp' "
                                      "or 'recvWindow'.") from None
        if not 0 < window <= MAX_RECV_WINDOW_MS:
            raise BinanceError(-1131, "recvWindow must be less than 60000")
        now = now_ms()
        if ts - now > AHEAD_MS:
            raise BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the "
                                      "server's time.")
        if now - ts > window:
            raise BinanceError(-1021, "Timestamp for this request is outside of the "
                                      "recvWindow.")
