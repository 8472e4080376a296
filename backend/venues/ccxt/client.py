"""A :class:`~backend.venues.broker.BrokerClient` for any crypto exchange ccxt supports.

Built on ``ccxt.async_support`` (one exchange object per client, created lazily); the
mapping of ccxt's structures is in :mod:`backend.venues.ccxt.mapping`, the behaviour in
``docs/venues.md`` ("Crypto exchanges through ccxt").  What it adds to ccxt:

* every order carries our client order id (``params['clientOrderId']``; Binance
  ``newClientOrderId``); any other order at the exchange is *external*
  (``ext-<exchange order id>``);
* **no automatic retry of an order creation** (``maxRetriesOnFailure`` pinned to 0); a
  timeout or network error is :class:`VenueUnavailable` (outcome UNKNOWN, resolved by
  the caller); a create refused as a duplicate id is answered from the exchange's record;
* what the exchange guarantees: ``request_lifetime_s`` (its ``recvWindow``), whether it
  rests stop-market orders (protective stops), the amount step (dust below it);
* markets loaded once, pre-trade checks of the step and limits before anything is sent,
  ccxt's errors mapped to ``VenueUnavailable`` / ``VenueRejected`` / ``None``;
* secrets from the environment or a secrets file, never logged nor in an error text.

Units: amounts base units, prices quote per base, fees in quote (a fee in the base
currency is ``base_fee`` in base units; a third currency is reported as 0 with a
warning), times ns UTC.  Positions of a spot account are the base-currency balances.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from ccxt.base import errors as cx

from backend.messages import Side
from backend.venues.broker import (
    StopWouldTrigger,
    VenueFill,
    VenueOrder,
    VenueRejected,
    VenueUnavailable,
)
from backend.venues.ccxt.mapping import (
    EXTERNAL_PREFIX,
    OUR_ID_PREFIX,
    SIGNATURE,
    check_amount,
    check_cost,
    credentials,
    fee_in_base,
    fee_in_quote,
    make_exchange,
    recv_window_s,
    rests_stop_orders,
    to_venue_fill,
    to_venue_order,
)
from backend.venues.config import CcxtConfig

__all__ = ["OUR_ID_PREFIX", "CcxtClient", "make_exchange"]

log = logging.getLogger(__name__)
_NS_PER_MS = 1_000_000
_TRADES_PAGE = 1000

T = TypeVar("T")


class CcxtClient:
    """Broker client over one ccxt exchange (spot).

    Parameters
    ----------
    cfg : CcxtConfig
        ``settings.venue.ccxt``.
    symbols : sequence of str
        The mesh's symbols (``BASE/QUOTE``, ccxt's unified form): checked to be markets
        of the exchange on connect; their base currencies are the positions; open orders
        and fills are fetched per symbol.
    exchange : object, optional
        A prepared ccxt exchange (tests); default :func:`make_exchange`.
    """

    def __init__(
        self, cfg: CcxtConfig, symbols: Sequence[str], exchange: Any | None = None
    ) -> None:
        self.cfg = cfg
        self.symbols = list(symbols)
        self.name = f"ccxt:{cfg.exchange}"
        #: What the exchange guarantees (``BrokerClient``): declared in the config.
        self.unique_client_order_ids = cfg.unique_client_order_ids
        self._creds = credentials(cfg)
        self._secrets = [v for v in self._creds.values() if len(v) >= 4]
        self._ex = exchange
        self._markets_loaded = False
        self._coid_by_order: dict[tuple[str, str], str] = {}
        self._warned_fee: set[str] = set()

    # ------------------------------------------------------------------ plumbing
    @property
    def exchange(self) -> Any:
        """The ccxt exchange object (created on first use)."""
        if self._ex is None:
            self._ex = make_exchange(self.cfg, self._creds)
        return self._ex

    def _scrub(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return SIGNATURE.sub(r"\1***", text)

    async def call(
        self, what: str, fn: Callable[[], Awaitable[T]], *, not_found: bool = False
    ) -> T | None:
        """Run one ccxt call with the client's error mapping (see the module docstring).

        ``not_found=True``: ``OrderNotFound`` returns ``None`` instead of raising.
        """
        try:
            return await fn()
        except cx.OrderNotFound as exc:
            if not_found:
                return None
            raise VenueRejected(f"{self.name} {what}: {self._scrub(str(exc))}") from None
        except cx.AuthenticationError as exc:
            raise VenueRejected(
                f"{self.name} {what}: authentication failed ({self._scrub(str(exc))}); "
                f"check the API key and secret (env {self.cfg.api_key_env} / "
                f"{self.cfg.secret_env} or the secrets file)"
            ) from None
        except (cx.InvalidOrder, cx.InsufficientFunds, cx.BadRequest, cx.OperationRejected,
                cx.NotSupported, cx.ArgumentsRequired) as exc:
            raise VenueRejected(
                f"{self.name} {what}: {type(exc).__name__}: {self._scrub(str(exc))}"
            ) from None
        except cx.OperationFailed as exc:  # NetworkError, RequestTimeout, BadResponse, ...
            raise VenueUnavailable(
                f"{self.name} {what}: {type(exc).__name__}: {self._scrub(str(exc))}"
            ) from None
        except cx.BaseError as exc:  # unclassified exchange error: outcome unknown
            raise VenueUnavailable(
                f"{self.name} {what}: {type(exc).__name__}: {self._scrub(str(exc))}"
            ) from None
        except TimeoutError:
            raise VenueUnavailable(f"{self.name} {what}: timed out") from None
        except OSError as exc:
            raise VenueUnavailable(f"{self.name} {what}: {type(exc).__name__}") from None

    @property
    def request_lifetime_s(self) -> float | None:
        """How late a signed request can take effect: the ``recvWindow`` ccxt sends with
        every private request (Binance and its kin refuse one that arrives later),
        ``None`` for an exchange without one."""
        return recv_window_s(self.exchange)

    @property
    def supports_stop_orders(self) -> bool:
        """True when the exchange rests stop-market orders on our markets (ccxt's
        ``stopLossPrice`` -> Binance spot ``STOP_LOSS``) and the config wants them."""
        return (self.cfg.protective_stops and self._markets_loaded
                and rests_stop_orders(self.exchange, self.symbols))

    # ------------------------------------------------------------------ life cycle
    async def connect(self) -> None:
        """Load the markets (once) and check the symbols; with keys, check them too.

        Raises
        ------
        VenueUnavailable
            The exchange is unreachable.
        VenueRejected
            A symbol is not a market of the exchange, or the keys are refused.
        """
        if not self._markets_loaded:
            await self.call("load_markets", lambda: self.exchange.load_markets())
            self._markets_loaded = True
        markets = self.exchange.markets or {}
        missing = [s for s in self.symbols if s not in markets]
        if missing:
            raise VenueRejected(f"{self.name}: no market {', '.join(missing)} at the exchange")
        if self._creds.get("apiKey"):
            await self.call("fetch_balance", lambda: self.exchange.fetch_balance())

    async def reload_markets(self) -> None:
        """Reload the markets (precision/limits changed at the exchange)."""
        await self.call("load_markets", lambda: self.exchange.load_markets(True))
        self._markets_loaded = True

    async def close(self) -> None:
        """Close the HTTP session; never raises."""
        if self._ex is None:
            return
        try:
            await self._ex.close()
        except Exception as exc:  # noqa: BLE001 - closing must not fail
            log.debug("%s: close: %s", self.name, type(exc).__name__)

    async def ensure_connected(self) -> None:
        """Connect (load markets) unless done."""
        if not self._markets_loaded:
            await self.connect()

    # ------------------------------------------------------------------ orders
    async def place_market_order(
        self, client_order_id: str, symbol: str, side: Side, quantity: float
    ) -> VenueOrder:
        """Send a market order tagged with ``client_order_id`` (never retried by ccxt).

        Parameters
        ----------
        client_order_id, symbol, side
            Ours (``tm-...``, sent as the exchange's id), ``BASE/QUOTE``, buy or sell.
        quantity : float
            Base units; truncated to the market's amount step before sending.

        Returns
        -------
        VenueOrder
            As the exchange acknowledged it (``quantity`` = the amount sent).

        Raises
        ------
        VenueRejected
            Pre-trade check failed (nothing sent) or the exchange refused.
        VenueUnavailable
            Unreachable or timed out: the order's outcome is UNKNOWN.
        """
        return await self._create(client_order_id, symbol, side, quantity, {})

    async def place_stop_order(
        self, client_order_id: str, symbol: str, side: Side, quantity: float,
        stop_price: float,
    ) -> VenueOrder:
        """Rest a stop-market order (``stopLossPrice``: Binance spot ``STOP_LOSS``)
        tagged with ``client_order_id``; ``quantity`` truncated to the step, the trigger
        price rounded to the tick.  Same errors as :meth:`place_market_order`."""
        await self.ensure_connected()
        try:
            stop = float(self.exchange.price_to_precision(symbol, stop_price))
        except cx.BaseError:
            stop = stop_price
        return await self._create(client_order_id, symbol, side, quantity,
                                  {"stopLossPrice": stop})

    async def _create(self, client_order_id: str, symbol: str, side: Side, quantity: float,
                      extra: dict[str, Any]) -> VenueOrder:
        """One ``create_order`` (market, or a stop with ``extra``), never retried; a
        refused duplicate id is answered from the exchange's record of that order."""
        await self.ensure_connected()
        amount = await self._checked_amount(symbol, quantity)
        params = {"clientOrderId": client_order_id, "maxRetriesOnFailure": 0, **extra}
        ex = self.exchange
        try:
            order = await self.call(
                f"create_order {client_order_id}",
                lambda: ex.create_order(symbol, "market", side.value.lower(), amount, None,
                                        params),
            )
        except VenueRejected as exc:
            text = str(exc)
            if "OrderImmediatelyFillable" in text or "trigger immediately" in text.lower():
                raise StopWouldTrigger(text) from None
            if "duplicate" not in text.lower():
                raise
            # Sent before (a resend after an UNKNOWN outcome): answer from its record.
            known = await self.fetch_order(client_order_id, symbol)
            if known is None:
                raise
            return known
        assert order is not None
        return self._venue_order(order, symbol, client_order_id)

    async def _checked_amount(self, symbol: str, quantity: float) -> float:
        """``quantity`` truncated to the step and checked against the market's limits."""
        ex = self.exchange
        try:
            market = ex.market(symbol)
        except cx.BaseError:
            raise VenueRejected(f"{self.name}: no market {symbol}") from None
        if market.get("active") is False:
            raise VenueRejected(f"{self.name}: market {symbol} is not active")
        step = (market.get("precision") or {}).get("amount")
        try:
            amount = float(ex.amount_to_precision(symbol, quantity))
        except cx.BaseError:
            amount = 0.0
        if amount <= 0:
            raise VenueRejected(
                f"amount {quantity:g} {symbol} rounds to 0 at the market's amount step {step}"
            )
        check_amount(market, symbol, amount)
        cmin = ((market.get("limits") or {}).get("cost") or {}).get("min")
        if cmin is not None and cmin > 0:
            check_cost(market, symbol, amount, await self._last_price(symbol))
        return amount

    async def _last_price(self, symbol: str) -> float | None:
        ticker = await self.call(
            f"fetch_ticker {symbol}", lambda: self.exchange.fetch_ticker(symbol)
        )
        if not ticker:
            return None
        for key in ("last", "close", "bid", "ask"):
            v = ticker.get(key)
            if v:
                return float(v)
        return None

    async def fetch_order(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """The order with our ``client_order_id`` (an ``ext-<id>`` by the exchange's id),
        or ``None`` when the exchange answers that it does not exist."""
        await self.ensure_connected()
        ex = self.exchange
        if client_order_id.startswith(EXTERNAL_PREFIX):
            oid = client_order_id[len(EXTERNAL_PREFIX):]
            order = await self.call(
                f"fetch_order {oid}", lambda: ex.fetch_order(oid, symbol), not_found=True
            )
        else:
            order = await self.call(
                f"fetch_order {client_order_id}",
                lambda: ex.fetch_order(None, symbol, {"clientOrderId": client_order_id}),
                not_found=True,
            )
        return None if order is None else self._venue_order(order, symbol)

    async def fetch_open_orders(self, symbols: Sequence[str] | None = None) -> list[VenueOrder]:
        """Working orders of ``symbols`` (default: the configured ones), ours and external,
        one request per symbol (an all-symbols request costs far more weight)."""
        await self.ensure_connected()
        ex = self.exchange
        out: list[VenueOrder] = []
        for sym in symbols if symbols is not None else self.symbols:
            orders = await self.call(
                f"fetch_open_orders {sym}", functools.partial(ex.fetch_open_orders, sym)
            )
            out.extend(self._venue_order(o, sym) for o in orders or [])
        return out

    async def cancel_order(self, client_order_id: str, symbol: str) -> VenueOrder:
        """Cancel a working order; an order already final is returned as it is.

        Raises
        ------
        VenueRejected
            The exchange does not know the order.
        """
        await self.ensure_connected()
        ex = self.exchange
        if client_order_id.startswith(EXTERNAL_PREFIX):
            oid = client_order_id[len(EXTERNAL_PREFIX):]

            def call() -> Awaitable[Any]:
                return ex.cancel_order(oid, symbol)
        else:
            def call() -> Awaitable[Any]:
                return ex.cancel_order(None, symbol, {"clientOrderId": client_order_id})
        try:
            order = await self.call(f"cancel_order {client_order_id}", call, not_found=True)
        except VenueRejected:
            order = None  # e.g. Binance spot -2011 "Unknown order sent." for a filled one
        if order is not None and order.get("status") is not None:
            return self._venue_order(order, symbol, client_order_id)
        known = await self.fetch_order(client_order_id, symbol)
        if known is None:
            raise VenueRejected(f"{self.name}: cancel {client_order_id}: unknown order")
        return known

    # ------------------------------------------------------------------ fills, account
    async def fetch_fills(self, symbols: Sequence[str], since_ns: int) -> list[VenueFill]:
        """Our account's trades of ``symbols`` from ``since_ns`` (ms resolution), oldest
        first; the trade id is the fill id.  Trades carry no client order id at most
        exchanges: it is learnt from the order (cached per order id)."""
        await self.ensure_connected()
        ex = self.exchange
        fills: list[VenueFill] = []
        for sym in symbols:
            since_ms = max(0, since_ns // _NS_PER_MS)
            seen: set[str] = set()
            while True:
                trades = await self.call(
                    f"fetch_my_trades {sym}",
                    functools.partial(ex.fetch_my_trades, sym, since_ms, _TRADES_PAGE),
                ) or []
                new = [t for t in trades if str(t["id"]) not in seen]
                for t in new:
                    seen.add(str(t["id"]))
                    fills.append(await self._fill(t, sym))
                if len(trades) < _TRADES_PAGE or not new:
                    break
                since_ms = max(int(t["timestamp"]) for t in trades)
        fills.sort(key=lambda f: (f.time_ns, f.symbol, f.fill_id))
        return fills

    async def _fill(self, trade: dict, symbol: str) -> VenueFill:
        oid = str(trade.get("order") or "")
        coid = self._coid_by_order.get((symbol, oid))
        if coid is None and oid:
            order = await self.call(
                f"fetch_order {oid}", lambda: self.exchange.fetch_order(oid, symbol),
                not_found=True,
            )
            coid = self._venue_order(order, symbol).client_order_id if order else None
        fee = trade.get("fee")
        quote_fee = 0.0 if fee_in_base(fee, symbol) else self._fee(
            fee, symbol, float(trade["price"]))
        return to_venue_fill(trade, symbol, coid or f"{EXTERNAL_PREFIX}{oid}", quote_fee)

    def quantity_step(self, symbol: str) -> float:
        """The market's amount step (base units; 0 when unknown): a holding below it is
        dust that cannot be traded."""
        market = (self.exchange.markets or {}).get(symbol) or {}
        return float((market.get("precision") or {}).get("amount") or 0.0)

    async def fetch_positions(self) -> dict[str, float]:
        """Base-currency balance (total) of each configured symbol; amounts below the
        market's amount step (untradeable dust) count as flat."""
        balances = await self.fetch_balances()
        out: dict[str, float] = {}
        for sym in self.symbols:
            qty = balances.get(sym.split("/")[0], 0.0)
            if qty and abs(qty) >= self.quantity_step(sym):
                out[sym] = qty
        return out

    async def fetch_balances(self) -> dict[str, float]:
        """Total (free + used) per currency, zero balances omitted."""
        await self.ensure_connected()
        bal = await self.call("fetch_balance", lambda: self.exchange.fetch_balance()) or {}
        total = bal.get("total") or {}
        return {cur: float(v) for cur, v in total.items() if v}

    def _fee(self, fee: dict | None, symbol: str, price: float) -> float:
        """The fee in quote currency; a third-currency fee is 0 with one warning."""
        q = fee_in_quote(fee, symbol, price)
        if q is not None:
            return q
        cur = str((fee or {}).get("currency"))
        if cur not in self._warned_fee:
            self._warned_fee.add(cur)
            log.warning("%s: fees paid in %s are reported as 0 (no %s rate)",
                        self.name, cur, symbol.split("/")[1])
        return 0.0

    def _venue_order(self, o: dict, symbol: str, sent_coid: str | None = None) -> VenueOrder:
        """:func:`~backend.venues.ccxt.mapping.to_venue_order`, remembering which client
        order id the exchange's order id belongs to (trades only carry the latter)."""
        vo = to_venue_order(o, symbol, sent_coid)
        if vo.venue_order_id:
            self._coid_by_order[(vo.symbol, vo.venue_order_id)] = vo.client_order_id
        return vo

