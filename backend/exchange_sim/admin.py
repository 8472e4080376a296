"""A small synchronous client of the exchange simulator's admin API (``/_sim/...``).

>>> with SimAdmin("http://127.0.0.1:8765") as sim:          # doctest: +SKIP
...     sim.inject("late", delay_s=3.0)
...     sim.advance(5)
...     sim.state().balances["BTC"].free

Built on :mod:`httpx`; the answers are the simulator's own records
(:class:`~backend.exchange_sim.model.Order`, :class:`~backend.exchange_sim.model.Trade`,
:class:`~backend.exchange_sim.faults.Fault`, :class:`~backend.exchange_sim.model.Request`)
and the dataclasses below.  Amounts are :class:`~decimal.Decimal` (prices quote/base,
quantities base units), times ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from backend.exchange_sim.faults import ORDER_PATH, Fault
from backend.exchange_sim.model import Order, Request, Trade

TOKEN_HEADER = "X-Sim-Token"


class SimAdminError(Exception):
    """The admin API refused a request: HTTP ``status``, the simulator's message, and
    Binance's error ``code`` when the exchange refused an order."""

    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message, self.code = status, message, code


@dataclass(frozen=True)
class Balance:
    """One asset's balance (units of the asset)."""

    free: Decimal
    locked: Decimal


@dataclass(frozen=True)
class SimState:
    """The simulator's state (``GET /_sim/state``): market clock (ms, data time),
    balances per asset, every order and trade (oldest first), the armed faults."""

    clock_ms: int
    balances: dict[str, Balance]
    orders: list[Order]
    trades: list[Trade]
    faults: list[Fault]

    def order(self, client_order_id: str) -> Order | None:
        """The latest order with this client order id, if any."""
        return next((o for o in reversed(self.orders)
                     if o.client_order_id == client_order_id), None)


class SimAdmin:
    """Client of one simulator's admin API.

    Parameters
    ----------
    base_url : str
        The simulator's URL, ``http://127.0.0.1:<port>``.
    token : str, optional
        Its ``admin_token``, sent as ``X-Sim-Token``.
    timeout_s : float
        Per-request timeout in seconds.

    Every method raises :class:`SimAdminError` when the simulator refuses the request, and
    ``httpx.HTTPError`` when it cannot be reached.
    """

    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 10.0
                 ) -> None:
        headers = {TOKEN_HEADER: token} if token is not None else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/") + "/_sim", headers=headers,
                                  timeout=timeout_s)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> SimAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              params: dict[str, Any] | None = None) -> Any:
        r = self._http.request(method, path, json=body, params=params)
        try:
            data = r.json()
        except ValueError:
            data = {"error": r.text}
        if r.status_code != 200:
            if isinstance(data, dict) and "code" in data:
                raise SimAdminError(r.status_code, str(data.get("msg")), int(data["code"]))
            message = data.get("error") if isinstance(data, dict) else None
            raise SimAdminError(r.status_code, str(message or r.text))
        return data

    def state(self) -> SimState:
        """The simulator's state now (stops due by the market clock evaluated first)."""
        d = self._call("GET", "/state")
        return SimState(
            clock_ms=int(d["clock_ms"]),
            balances={a: Balance(Decimal(b["free"]), Decimal(b["locked"]))
                      for a, b in d["balances"].items()},
            orders=[Order.from_json(o) for o in d["orders"]],
            trades=[Trade.from_json(t) for t in d["trades"]],
            faults=[Fault.from_json(f) for f in d["faults"]],
        )

    def inject(
        self, kind: str, method: str = "POST", path: str = ORDER_PATH, *,
        apply: bool = True, delay_s: float = 2.0, count: int | None = None,
        rate: float | None = None, fill_ratio: float = 0.5,
    ) -> Fault:
        """Arm a fault (:func:`backend.exchange_sim.faults.make_fault`); returns it with
        its ``fault_id``."""
        body = {"kind": kind, "method": method, "path": path, "apply": apply,
                "delay_s": delay_s, "count": count, "rate": rate, "fill_ratio": fill_ratio}
        return Fault.from_json(self._call("POST", "/faults", body))

    def clear_faults(self) -> int:
        """Disarm every fault; returns how many were armed."""
        return int(self._call("DELETE", "/faults")["cleared"])

    def advance(self, bars: int = 1) -> int:
        """Move the market clock ``bars`` bars on; returns the new clock (ms)."""
        return int(self._call("POST", "/clock", {"advance_bars": bars})["clock_ms"])

    def add_order(self, symbol: str, side: str, qty: str, price: str,
                  client_order_id: str | None = None) -> Order:
        """A resting LIMIT order by another client (``symbol`` ``BASE/QUOTE``, ``qty``
        base units, ``price`` quote/base)."""
        body = {"symbol": symbol, "side": side, "qty": str(qty), "price": str(price),
                "client_order_id": client_order_id}
        return Order.from_json(self._call("POST", "/orders", body)["order"])

    def manual_trade(self, symbol: str, side: str, qty: str,
                     client_order_id: str | None = None) -> Order:
        """A MARKET order by another client; fills at once (its trade is in
        :meth:`state`)."""
        body = {"symbol": symbol, "side": side, "qty": str(qty),
                "client_order_id": client_order_id}
        return Order.from_json(self._call("POST", "/orders", body)["order"])

    def requests(self, since: int = 0) -> list[Request]:
        """The Binance API requests the simulator received, from the ``since``-th on."""
        d = self._call("GET", "/requests", params={"since": since})
        return [Request.from_json(r) for r in d["requests"]]
