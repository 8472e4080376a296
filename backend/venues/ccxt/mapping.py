"""ccxt plumbing of :class:`~backend.venues.ccxt.client.CcxtClient`: building the exchange
object, reading its keys, and mapping ccxt's order and fee structures to ours.

Pure functions (no request is made here), so the mapping is tested without a server.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import ccxt.async_support as ccxt_async
from ccxt.base import errors as cx

from backend.messages import OrderStatus, Side
from backend.runtime.secretfiles import SecretFileError, secret_from
from backend.venues.broker import VenueFill, VenueOrder, VenueRejected
from backend.venues.config import CcxtConfig

__all__ = [
    "EXTERNAL_PREFIX",
    "OUR_ID_PREFIX",
    "check_amount",
    "check_cost",
    "recv_window_s",
    "rests_stop_orders",
    "to_venue_fill",
    "credentials",
    "fee_in_base",
    "fee_in_quote",
    "make_exchange",
    "to_venue_order",
]

#: Prefix of the client order ids the mesh generates (``client_order_id_for``).
OUR_ID_PREFIX = "tm-"
#: Prefix of the id we give an order someone else placed.
EXTERNAL_PREFIX = "ext-"
#: Request signatures (query parameter) are blanked in error texts.
SIGNATURE = re.compile(r"(signature=)[0-9A-Za-z%+/=_-]+")


def _wire_logger() -> logging.Logger:
    """ccxt's request/response logger: DEBUG lines carry the API-key header, so drop them."""
    wire = logging.getLogger(f"{__name__}.wire")
    wire.setLevel(logging.INFO)
    return wire


def credentials(cfg: CcxtConfig) -> dict[str, str]:
    """``apiKey``/``secret``/``password`` for ccxt from the env or the secrets file.

    Raises
    ------
    VenueRejected
        The secrets file is unusable (message without any secret).
    """
    out: dict[str, str] = {}
    try:
        for ccxt_key, env, key in (
            ("apiKey", cfg.api_key_env, "api_key"),
            ("secret", cfg.secret_env, "secret"),
            ("password", cfg.password_env, "password"),
        ):
            value = secret_from(env, cfg.secrets_file, key)
            if value is not None and value.get_secret_value():
                out[ccxt_key] = value.get_secret_value()
    except SecretFileError as exc:
        raise VenueRejected(f"ccxt:{cfg.exchange}: {exc}") from None
    return out


def make_exchange(cfg: CcxtConfig, credentials: dict[str, str] | None = None) -> Any:
    """A configured ``ccxt.async_support`` exchange object (no request made yet).

    Rate limiter per ``cfg.enable_rate_limit`` (``cfg.rate_limit_ms`` overrides the
    exchange's spacing), ``timeout = cfg.timeout_ms``, sandbox mode, ``cfg.options``,
    the ``cfg.market_types`` filter, no ``sapi`` currency/margin calls, then ``cfg.urls``
    on top of ``urls['api']`` (after the sandbox switch, so a loopback fake wins).

    Raises
    ------
    VenueRejected
        ``cfg.exchange`` is not a ccxt exchange id, or it has no sandbox.
    """
    klass = getattr(ccxt_async, cfg.exchange, None)
    if cfg.exchange not in ccxt_async.exchanges or klass is None:
        raise VenueRejected(f"ccxt has no exchange {cfg.exchange!r}")
    params: dict[str, Any] = {
        "enableRateLimit": cfg.enable_rate_limit,
        "timeout": cfg.timeout_ms,
        "logger": _wire_logger(),
        "verbose": False,
        **(credentials or {}),
    }
    if cfg.rate_limit_ms is not None:
        params["rateLimit"] = cfg.rate_limit_ms
    ex = klass(params)
    if cfg.sandbox:
        try:
            ex.set_sandbox_mode(True)
        except cx.NotSupported:
            raise VenueRejected(f"ccxt:{cfg.exchange} has no sandbox/testnet") from None
    # Binance: the currency list and margin pairs are key-protected sapi calls the mesh
    # does not need (spot only).
    ex.options["fetchCurrencies"] = False
    ex.options["fetchMargins"] = False
    if cfg.market_types:
        current = ex.options.get("fetchMarkets")
        if isinstance(current, dict) and "types" in current:
            current["types"] = list(cfg.market_types)
        elif isinstance(current, list):
            ex.options["fetchMarkets"] = list(cfg.market_types)
    ex.options.update(cfg.options)
    if cfg.urls:
        api = ex.urls.get("api")
        if isinstance(api, dict):
            api.update(cfg.urls)
        else:
            ex.urls["api"] = dict(cfg.urls)
    return ex


def to_venue_order(o: dict, symbol: str, sent_coid: str | None = None) -> VenueOrder:
    """A ccxt order structure as a :class:`VenueOrder`.

    Status: ``open`` -> ACCEPTED (PARTIALLY_FILLED once something filled); ``closed`` ->
    FILLED; ``canceled``/``canceling``/``expired`` -> CANCELLED; ``rejected`` -> REJECTED;
    no status -> FILLED when fully filled, else ACCEPTED.  An order whose client order id
    is not ours (``tm-...``) is external: ``client_order_id = "ext-<exchange id>"``.  The
    average price comes from the order's own trades when it has them (exact), else from
    ``average`` or ``cost / filled``.
    """
    oid = str(o.get("id") or "")
    raw_info = o.get("info")
    info = raw_info if isinstance(raw_info, dict) else {}
    # A Binance cancel answers with the cancel request's own id in clientOrderId and
    # the order's in origClientOrderId.
    raw = info.get("origClientOrderId") or o.get("clientOrderId") or sent_coid
    external = not (raw and raw.startswith(OUR_ID_PREFIX))
    coid = f"{EXTERNAL_PREFIX}{oid}" if external else str(raw)
    amount = float(o.get("amount") or 0.0)
    filled = float(o.get("filled") or 0.0)
    avg = o.get("average")
    trades = [t for t in o.get("trades") or [] if t.get("price") and t.get("amount")]
    if trades:  # exact, where cost / filled would carry the exchange's cost rounding
        prices = {float(t["price"]) for t in trades}
        qty = sum(float(t["amount"]) for t in trades)
        avg = prices.pop() if len(prices) == 1 else sum(
            float(t["price"]) * float(t["amount"]) for t in trades) / qty
    elif avg is None and filled > 0 and o.get("cost"):
        avg = float(o["cost"]) / filled
    status = o.get("status")
    reason = ""
    stop = o.get("stopPrice") or o.get("triggerPrice")
    if status == "open":
        st = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED
    elif status == "closed":
        st = OrderStatus.FILLED
    elif status in ("canceled", "canceling", "expired"):
        st, reason = OrderStatus.CANCELLED, str(status)
    elif status == "rejected":
        st, reason = OrderStatus.REJECTED, "rejected by the exchange"
    else:
        st = OrderStatus.FILLED if amount > 0 and filled >= amount else OrderStatus.ACCEPTED
    return VenueOrder(
        client_order_id=coid,
        venue_order_id=oid,
        symbol=o.get("symbol") or symbol,
        side=Side.BUY if o.get("side") == "buy" else Side.SELL,
        quantity=amount,
        filled=min(filled, amount) if amount else filled,
        avg_price=float(avg) if avg else None,
        status=st,
        reason=reason,
        external=external,
        stop_price=float(stop) if stop else None,
    )


def fee_in_quote(fee: dict | None, symbol: str, price: float) -> float | None:
    """A ccxt fee ``{cost, currency}`` in the quote currency of ``symbol``.

    A fee in the base currency is ``cost x price`` (quote/base); in the quote currency (or
    without a currency) it is the cost; in a third currency (e.g. BNB) ``None``: there is
    no rate here to convert it.
    """
    if not fee or not fee.get("cost"):
        return 0.0
    base, quote = symbol.split("/")[0], symbol.split("/")[1].split(":")[0]
    cur = fee.get("currency")
    cost = float(fee["cost"])
    if cur is None or cur == quote:
        return cost
    if cur == base:
        return cost * price
    return None


def fee_in_base(fee: dict | None, symbol: str) -> float:
    """The part of a ccxt fee ``{cost, currency}`` paid in the *base* currency of
    ``symbol`` (base units; 0 when the fee is in another currency)."""
    if not fee or not fee.get("cost") or fee.get("currency") != symbol.split("/")[0]:
        return 0.0
    return float(fee["cost"])


def check_amount(market: dict, symbol: str, amount: float) -> None:
    """Refuse an amount (base units, already truncated to the step) outside the market's
    ``limits.amount``.

    Raises
    ------
    VenueRejected
        Naming the limit.
    """
    limits = market.get("limits") or {}
    amin = (limits.get("amount") or {}).get("min")
    amax = (limits.get("amount") or {}).get("max")
    if amin is not None and amount < amin:
        raise VenueRejected(f"amount {amount:g} {symbol} below the market minimum amount "
                            f"{amin:g} (limits.amount.min)")
    if amax is not None and amax > 0 and amount > amax:
        raise VenueRejected(f"amount {amount:g} {symbol} above the market maximum amount "
                            f"{amax:g} (limits.amount.max)")


def check_cost(market: dict, symbol: str, amount: float, price: float | None) -> None:
    """Refuse an order whose cost (``amount x price``, quote currency) is below the
    market's ``limits.cost.min``; no price known: nothing to check.

    Raises
    ------
    VenueRejected
        Naming the limit.
    """
    cmin = ((market.get("limits") or {}).get("cost") or {}).get("min")
    if cmin is None or price is None or amount * price >= cmin:
        return
    raise VenueRejected(
        f"cost {amount * price:.8g} {market.get('quote', '')} of {amount:g} {symbol} at "
        f"{price:.8g} below the market minimum cost {cmin:g} (limits.cost.min)")


def recv_window_s(ex: Any) -> float | None:
    """The ``recvWindow`` (s) every signed request of ``ex`` carries -- the longest a
    request can take to land at Binance and its kin -- or ``None`` for an exchange whose
    requests carry none (5 s when the option is there but unset: Binance's default)."""
    options = getattr(ex, "options", None) or {}
    if "recvWindow" not in options:
        return None
    return (float(options["recvWindow"]) if options["recvWindow"] else 5000.0) / 1000.0


def rests_stop_orders(ex: Any, symbols: list[str]) -> bool:
    """True when ``ex`` creates stop-market orders (ccxt ``createStopLossOrder`` or
    ``createStopMarketOrder``) and every one of ``symbols`` lists ``STOP_LOSS`` among its
    order types (where the market says)."""
    if not (ex.has.get("createStopLossOrder") or ex.has.get("createStopMarketOrder")):
        return False
    for sym in symbols:
        info = ((ex.markets or {}).get(sym) or {}).get("info") or {}
        types = info.get("orderTypes") if isinstance(info, dict) else None
        if types is not None and "STOP_LOSS" not in types:
            return False
    return True


def to_venue_fill(trade: dict, symbol: str, client_order_id: str, quote_fee: float
                  ) -> VenueFill:
    """A ccxt trade as a :class:`VenueFill` of ``client_order_id``: its ``fee`` is
    ``quote_fee`` (the client's conversion), a fee in the base currency is ``base_fee``
    (base units); time ns UTC (the exchange's ms x 1e6)."""
    return VenueFill(
        fill_id=str(trade["id"]), client_order_id=client_order_id,
        venue_order_id=str(trade.get("order") or ""), symbol=symbol,
        side=Side.BUY if trade["side"] == "buy" else Side.SELL,
        quantity=float(trade["amount"]), price=float(trade["price"]), fee=quote_fee,
        time_ns=int(trade["timestamp"]) * 1_000_000,
        base_fee=fee_in_base(trade.get("fee"), symbol),
    )
