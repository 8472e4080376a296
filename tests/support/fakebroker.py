"""A fake :class:`~backend.venues.broker.BrokerClient` with fault injection (venue core tests).

Behaves like a small spot venue: market orders fill at once at the symbol's price
(``fill_mode="immediate"``), rest until the test fills them (``"rest"``), or fill
``expire_ratio`` of their quantity and expire (``"expire"``: a market order without
enough liquidity, status CANCELLED); fills carry a fee of ``fee_rate * notional`` in the
quote currency, or -- ``fee_asset="base"`` -- a buy's fee in the base asset it receives
(Binance spot); positions and balances follow the fills.  Stop-market orders
(``place_stop_order``) rest until :meth:`FakeBroker.set_price` crosses them.  It keeps
every order it was sent -- it does *not* refuse a client order id used before -- so a
test can count how many orders with one client order id reached the venue.

Faults (``fail_next(method, mode)``, consumed one per call; or ``set_unreachable``):

* ``unreachable`` / ``timeout_before``: ``VenueUnavailable`` before anything happens;
* ``timeout_after``: the call takes effect (the order is placed), then
  ``VenueUnavailable`` -- the in-flight timeout;
* ``hang`` / ``hang_after``: never returns (before / after taking effect): the caller's
  own timeout must fire;
* ``reject``: ``VenueRejected``;
* ``late`` (in-memory only): ``VenueUnavailable`` at once, and the order lands
  ``late_s`` seconds later (a request that took effect after the client timed out).

Behind the agent's back: ``add_external_order``, ``fill`` (a resting order fills while
the agent is down), ``set_position``.

State lives in memory, or in a JSON file (``path``) shared by processes under an
``flock``: the kill -9 tests run the execution agent as a process against the same
file (``TRADINGMESH_TEST_BROKER=tests.support.fakebroker:from_env`` with
``TRADINGMESH_FAKEBROKER_STATE=<file>``; see :mod:`backend.venues.factory`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from backend.messages import OrderStatus, Side
from backend.venues.broker import VenueFill, VenueOrder, VenueRejected, VenueUnavailable

STATE_ENV = "TRADINGMESH_FAKEBROKER_STATE"
_WORKING = (OrderStatus.ACCEPTED.value, OrderStatus.PARTIALLY_FILLED.value)


def from_env(settings: Any) -> FakeBroker:
    """Factory for ``TRADINGMESH_TEST_BROKER``: the file-backed fake named by
    ``TRADINGMESH_FAKEBROKER_STATE``."""
    del settings
    return FakeBroker(os.environ[STATE_ENV])


class FakeBroker:
    """In-memory or file-backed fake venue (see the module docstring).

    Parameters
    ----------
    path
        JSON state file shared across processes (created if missing); ``None``: memory.
    prices
        Fill price per symbol (quote/base); default ``{"ETH/BTC": 0.1}``.
    cash
        Initial balance of ``quote``.
    fee_rate
        Fee as a fraction of notional.
    fill_mode
        ``"immediate"`` or ``"rest"``.
    request_lifetime_s
        How late a request may land (``BrokerClient.request_lifetime_s``): the fake
        never applies a request after its call returned or failed, except ``late``
        faults, which land within it.  ``None``: an unbounded venue (MT5/IB-like).
    unique_client_order_ids, supports_stop_orders
        The capabilities it declares.
    step
        Quantity step: market orders are truncated to it (``quantity_step``).
    """

    def __init__(self, path: str | Path | None = None, *, prices: dict[str, float] | None = None,
                 cash: float = 10.0, quote: str = "BTC", fee_rate: float = 0.001,
                 fill_mode: str = "immediate", name: str = "fake",
                 request_lifetime_s: float | None = 0.2,
                 unique_client_order_ids: bool = False,
                 supports_stop_orders: bool = False, fee_asset: str = "quote",
                 expire_ratio: float = 0.5, late_s: float = 0.1, step: float = 0.0) -> None:
        self.name = name
        self.request_lifetime_s = request_lifetime_s
        self.unique_client_order_ids = unique_client_order_ids
        self.supports_stop_orders = supports_stop_orders
        self.late_s = late_s
        self.step = step
        self.path = Path(path) if path is not None else None
        init = {
            "orders": [], "fills": [], "positions": {}, "balances": {quote: cash},
            "prices": prices or {"ETH/BTC": 0.1}, "faults": {}, "unreachable": False,
            "fill_mode": fill_mode, "fee_rate": fee_rate, "quote": quote, "seq": 0,
            "calls": {}, "fee_asset": fee_asset, "expire_ratio": expire_ratio,
        }
        self._mem: dict[str, Any] | None = None
        if self.path is None:
            self._mem = init
        elif not self.path.exists():
            self.path.write_text(json.dumps(init))

    # ------------------------------------------------------------------ state
    @contextlib.contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        if self._mem is not None:
            yield self._mem
            return
        assert self.path is not None
        with open(f"{self.path}.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            st = json.loads(self.path.read_text())
            try:
                yield st
            finally:
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps(st))
                os.replace(tmp, self.path)

    @staticmethod
    def _gate(st: dict[str, Any], method: str) -> str:
        st["calls"][method] = st["calls"].get(method, 0) + 1
        if st["unreachable"]:
            raise VenueUnavailable(f"fake broker unreachable ({method})")
        queue = st["faults"].get(method) or []
        mode = queue.pop(0) if queue else ""
        if mode in ("unreachable", "timeout_before"):
            raise VenueUnavailable(f"fake broker: {mode} on {method}")
        if mode == "reject":
            raise VenueRejected(f"fake broker refuses {method}")
        return mode

    @staticmethod
    def _view(o: dict[str, Any]) -> VenueOrder:
        return VenueOrder(
            client_order_id=o["coid"], venue_order_id=o["vid"], symbol=o["symbol"],
            side=Side(o["side"]), quantity=o["quantity"], filled=o["filled"],
            avg_price=o["avg"], status=OrderStatus(o["status"]), reason=o.get("reason", ""),
            external=o["external"], stop_price=o.get("stop"))

    @staticmethod
    def _find(st: dict[str, Any], coid: str) -> dict[str, Any] | None:
        found = [o for o in st["orders"] if o["coid"] == coid]
        return found[-1] if found else None

    @staticmethod
    def _new_order(st: dict[str, Any], coid: str, symbol: str, side: str, qty: float,
                   external: bool = False) -> dict[str, Any]:
        st["seq"] += 1
        vid = f"F{st['seq']}"
        o = {"coid": f"ext-{vid}" if external else coid, "vid": vid, "symbol": symbol,
             "side": side, "quantity": qty, "filled": 0.0, "avg": None,
             "status": OrderStatus.ACCEPTED.value, "external": external,
             "time_ns": time.time_ns()}
        st["orders"].append(o)
        return o

    @staticmethod
    def _fill(st: dict[str, Any], o: dict[str, Any], qty: float | None = None,
              price: float | None = None) -> None:
        qty = o["quantity"] - o["filled"] if qty is None else qty
        price = st["prices"][o["symbol"]] if price is None else price
        sign = 1 if o["side"] == "BUY" else -1
        st["seq"] += 1
        fee, base_fee = qty * price * st["fee_rate"], 0.0
        if sign > 0 and st.get("fee_asset") == "base":
            fee, base_fee = 0.0, qty * st["fee_rate"]
        st["fills"].append({
            "fill_id": f"T{st['seq']}", "coid": o["coid"], "vid": o["vid"],
            "symbol": o["symbol"], "side": o["side"], "quantity": qty, "price": price,
            "fee": fee, "base_fee": base_fee, "time_ns": time.time_ns()})
        prev = o["filled"]
        o["filled"] = prev + qty
        o["avg"] = ((o["avg"] or 0.0) * prev + price * qty) / o["filled"]
        done = o["filled"] >= o["quantity"] * (1 - 1e-9)
        o["status"] = OrderStatus.FILLED.value if done else OrderStatus.PARTIALLY_FILLED.value
        pos = st["positions"].get(o["symbol"], 0.0) + sign * qty - base_fee
        st["positions"][o["symbol"]] = pos
        if abs(pos) < 1e-12:
            del st["positions"][o["symbol"]]
        base = o["symbol"].split("/")[0]
        st["balances"][base] = st["balances"].get(base, 0.0) + sign * qty - base_fee
        st["balances"][st["quote"]] -= sign * qty * price + fee

    # ------------------------------------------------------------------ BrokerClient
    async def connect(self) -> None:
        """Fails only through faults."""
        with self._state() as st:
            self._gate(st, "connect")

    async def close(self) -> None:
        """Nothing to release."""

    async def place_market_order(
        self, client_order_id: str, symbol: str, side: Side, quantity: float
    ) -> VenueOrder:
        """Place (and, in ``immediate`` mode, fill) a market order."""
        with self._state() as st:
            mode = self._gate(st, "place_market_order")
        if mode == "hang":
            await asyncio.Event().wait()
        if mode == "late":
            asyncio.get_running_loop().call_later(
                self.late_s, self._land, client_order_id, symbol, Side(side).value, quantity)
            raise VenueUnavailable("fake broker: timed out (the request lands later)")
        view = self._land(client_order_id, symbol, Side(side).value, quantity)
        if mode == "timeout_after":
            raise VenueUnavailable("fake broker: timeout after the order was placed")
        if mode == "hang_after":
            await asyncio.Event().wait()
        return view

    def quantity_step(self, symbol: str) -> float:
        """The fake's quantity step (orders are truncated to it; 0 = none)."""
        del symbol
        return self.step

    def _land(self, coid: str, symbol: str, side: str, quantity: float) -> VenueOrder:
        """A market order arrives at the fake venue (truncated to the step, if any)."""
        if self.step:
            quantity = round(int(quantity / self.step + 1e-9) * self.step, 12)
        with self._state() as st:
            if symbol not in st["prices"]:
                raise VenueRejected(f"unknown symbol {symbol}")
            held = st["positions"].get(symbol, 0.0)
            if side == "SELL" and st.get("spot_checks") and quantity > held + 1e-12:
                raise VenueRejected("insufficient balance")
            o = self._new_order(st, coid, symbol, side, quantity)
            if st["fill_mode"] == "immediate":
                self._fill(st, o)
            elif st["fill_mode"] == "expire":
                self._fill(st, o, o["quantity"] * st.get("expire_ratio", 0.5))
                o["status"], o["reason"] = OrderStatus.CANCELLED.value, "expired"
            return self._view(o)

    async def place_stop_order(self, client_order_id: str, symbol: str, side: Side,
                               quantity: float, stop_price: float) -> VenueOrder:
        """Rest a stop-market order until :meth:`set_price` crosses ``stop_price``."""
        with self._state() as st:
            mode = self._gate(st, "place_stop_order")
            o = self._new_order(st, client_order_id, symbol, Side(side).value, quantity)
            o["stop"] = stop_price
            view = self._view(o)
        if mode == "timeout_after":
            raise VenueUnavailable("fake broker: timeout after the stop was placed")
        return view

    async def fetch_order(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """The latest order with this client order id, or ``None``."""
        with self._state() as st:
            self._gate(st, "fetch_order")
            o = self._find(st, client_order_id)
            return None if o is None else self._view(o)

    async def fetch_open_orders(self, symbols: Sequence[str] | None = None) -> list[VenueOrder]:
        """Working orders (ours and external)."""
        with self._state() as st:
            self._gate(st, "fetch_open_orders")
            return [self._view(o) for o in st["orders"] if o["status"] in _WORKING
                    and (symbols is None or o["symbol"] in symbols)]

    async def cancel_order(self, client_order_id: str, symbol: str) -> VenueOrder:
        """Cancel a working order (a final one is returned unchanged)."""
        with self._state() as st:
            self._gate(st, "cancel_order")
            o = self._find(st, client_order_id)
            if o is None:
                raise VenueRejected(f"unknown order {client_order_id}")
            if o["status"] in _WORKING:
                o["status"] = OrderStatus.CANCELLED.value
            return self._view(o)

    async def fetch_fills(self, symbols: Sequence[str], since_ns: int) -> list[VenueFill]:
        """Fills of ``symbols`` at or after ``since_ns``, oldest first."""
        with self._state() as st:
            self._gate(st, "fetch_fills")
            return [
                VenueFill(fill_id=f["fill_id"], client_order_id=f["coid"],
                          venue_order_id=f["vid"], symbol=f["symbol"], side=Side(f["side"]),
                          quantity=f["quantity"], price=f["price"], fee=f["fee"],
                          time_ns=f["time_ns"], base_fee=f.get("base_fee", 0.0))
                for f in st["fills"] if f["symbol"] in symbols and f["time_ns"] >= since_ns
            ]

    async def fetch_positions(self) -> dict[str, float]:
        """Signed positions (flat omitted)."""
        with self._state() as st:
            self._gate(st, "fetch_positions")
            return dict(st["positions"])

    async def fetch_balances(self) -> dict[str, float]:
        """Balances per currency."""
        with self._state() as st:
            self._gate(st, "fetch_balances")
            return dict(st["balances"])

    # ------------------------------------------------------------------ test controls
    def set_unreachable(self, flag: bool = True) -> None:
        """Every call fails with ``VenueUnavailable`` while set."""
        with self._state() as st:
            st["unreachable"] = flag

    def fail_next(self, method: str, mode: str, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` fail with ``mode``."""
        with self._state() as st:
            st["faults"].setdefault(method, []).extend([mode] * times)

    def clear_faults(self) -> None:
        """Drop every pending fault (and reachability)."""
        with self._state() as st:
            st["faults"], st["unreachable"] = {}, False

    def set_fill_mode(self, mode: str) -> None:
        """``"immediate"`` or ``"rest"``."""
        with self._state() as st:
            st["fill_mode"] = mode

    def set_price(self, symbol: str, price: float) -> None:
        """The price the next fills of ``symbol`` get; resting stops it crosses (a sell
        stop at or above it, a buy stop at or below) fill at it."""
        with self._state() as st:
            st["prices"][symbol] = price
            for o in st["orders"]:
                stop = o.get("stop")
                if (stop is None or o["symbol"] != symbol or o["status"] not in _WORKING):
                    continue
                if (price <= stop) if o["side"] == "SELL" else (price >= stop):
                    self._fill(st, o)

    def set_spot_checks(self, flag: bool = True) -> None:
        """Refuse a market sell of more than the position (a spot account's balance)."""
        with self._state() as st:
            st["spot_checks"] = flag

    def add_external_order(self, symbol: str, side: Side, quantity: float) -> VenueOrder:
        """A working order placed by someone else (client order id ``ext-<venue id>``)."""
        with self._state() as st:
            return self._view(self._new_order(st, "", symbol, side.value, quantity, True))

    def fill(self, client_order_id: str, quantity: float | None = None,
             price: float | None = None) -> None:
        """Fill (part of) a working order now, e.g. while the agent is down."""
        with self._state() as st:
            o = self._find(st, client_order_id)
            assert o is not None and o["status"] in _WORKING, client_order_id
            self._fill(st, o, quantity, price)

    def set_position(self, symbol: str, quantity: float) -> None:
        """Change a position behind the agent's back (deposit, manual trade)."""
        with self._state() as st:
            st["positions"][symbol] = quantity
            if quantity == 0:
                del st["positions"][symbol]

    def orders(self, client_order_id: str | None = None) -> list[VenueOrder]:
        """Every order the venue received (all with ``client_order_id`` if given)."""
        with self._state() as st:
            return [self._view(o) for o in st["orders"]
                    if client_order_id is None or o["coid"] == client_order_id]

    def fills(self) -> list[dict[str, Any]]:
        """Every fill (raw records)."""
        with self._state() as st:
            return list(st["fills"])

    def positions(self) -> dict[str, float]:
        """Positions now (no fault applies)."""
        with self._state() as st:
            return dict(st["positions"])

    def calls(self, method: str) -> int:
        """How many times ``method`` was called."""
        with self._state() as st:
            return int(st["calls"].get(method, 0))
