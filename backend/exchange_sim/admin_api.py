"""The simulator's admin API (``/_sim/...``, JSON), served next to the Binance API.

No Binance signature; a request is refused unless it comes from the loopback interface
(403), and when the simulator has an ``admin_token`` the header ``X-Sim-Token`` must
carry it (401).  Errors are ``{"error": "..."}`` (400, 404) or, for an order the exchange
refuses, Binance's ``{"code": ..., "msg": ...}`` (400).

==========================  ============================================================
``GET /_sim/state``         ``clock_ms``; ``balances`` (asset -> ``free``/``locked``
                            decimal strings); ``orders`` and ``trades`` (Binance's JSON
                            plus ``marketClockMs``, ``lockAsset``, ``lockAmount``);
                            ``faults`` (armed)
``POST /_sim/faults``       arm a fault: ``{"kind", "method", "path", "apply",
                            "delay_s" (or "stall_s"), "count", "rate", "fill_ratio"}``
                            -> the fault with its ``fault_id``
``DELETE /_sim/faults``     disarm all -> ``{"cleared": n}``
``POST /_sim/clock``        ``{"advance_bars": n}`` -> ``{"clock_ms": ...}``
``POST /_sim/orders``       an order by another client: ``{"symbol", "side", "qty",
                            "price"?, "client_order_id"?}`` (LIMIT when ``price`` is
                            given, else MARKET) -> ``{"order": ..., "trades": [...]}``
``GET /_sim/requests``      the request log (``?since=N``: from the N-th) ->
                            ``{"requests": [...], "next": N}``
==========================  ============================================================
"""

from __future__ import annotations

import hmac
import json
import threading
from typing import Any

from aiohttp import web

from backend.exchange_sim.book import Book
from backend.exchange_sim.faults import FaultSet, make_fault
from backend.exchange_sim.model import BinanceError, Request, f8

PREFIX = "/_sim/"
TOKEN_HEADER = "X-Sim-Token"
LOOPBACK = ("127.0.0.1", "::1")
_FAULT_FIELDS = ("kind", "method", "path", "apply", "delay_s", "count", "rate", "fill_ratio")


class AdminError(Exception):
    """A refused admin request: HTTP ``status`` with ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def state_json(book: Book, faults: FaultSet) -> dict[str, Any]:
    """The simulator's state as the admin API shows it (``GET /_sim/state``)."""
    with book.lock:
        book.settle()
        return {
            "clock_ms": book.clock_ms(),
            "balances": {a: {"free": f8(f), "locked": f8(lk)}
                         for a, (f, lk) in sorted(book.balances().items())},
            "orders": [o.to_admin_json() for o in book.orders],
            "trades": [t.to_json() for t in book.trades],
            "faults": [f.to_json() for f in faults.armed()],
        }


class AdminApi:
    """Handler of ``/_sim/...`` requests.

    Parameters
    ----------
    book : Book
        The exchange state.
    faults : FaultSet
        The simulator's armed faults.
    requests : list of Request
        The simulator's request log (read under ``book.lock``).
    token : str, optional
        Required ``X-Sim-Token`` value; ``None``: no token.
    """

    def __init__(self, book: Book, faults: FaultSet, requests: list[Request],
                 token: str | None = None) -> None:
        self.book, self.faults, self.requests, self.token = book, faults, requests, token
        self._lock: threading.RLock = book.lock

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one admin request (the path starts with :data:`PREFIX`)."""
        try:
            self._allow(request)
            body = await request.text()
            data = json.loads(body) if body.strip() else {}
            if not isinstance(data, dict):
                raise AdminError("the body must be a JSON object")
            return web.json_response(self._route(request.method, request.path, data,
                                                 dict(request.query)))
        except BinanceError as exc:
            return web.json_response({"code": exc.code, "msg": exc.msg}, status=exc.status)
        except AdminError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        except (ValueError, TypeError, KeyError) as exc:  # bad JSON or a bad field
            return web.json_response({"error": f"bad request: {exc}"}, status=400)

    def _allow(self, request: web.Request) -> None:
        if request.remote not in LOOPBACK:
            raise AdminError("the admin API answers loopback clients only", 403)
        if self.token is not None:
            sent = request.headers.get(TOKEN_HEADER, "")
            if not hmac.compare_digest(sent.encode(), self.token.encode()):
                raise AdminError(f"missing or wrong {TOKEN_HEADER}", 401)

    def _route(self, method: str, path: str, data: dict[str, Any],
               query: dict[str, str]) -> Any:
        name = path.removeprefix(PREFIX).strip("/")
        if (method, name) == ("GET", "state"):
            return state_json(self.book, self.faults)
        if (method, name) == ("GET", "faults"):
            return [f.to_json() for f in self.faults.armed()]
        if (method, name) == ("POST", "faults"):
            return self._arm(data).to_json()
        if (method, name) == ("DELETE", "faults"):
            return {"cleared": self.faults.clear()}
        if (method, name) == ("POST", "clock"):
            bars = data.get("advance_bars")
            if not isinstance(bars, int) or isinstance(bars, bool):
                raise AdminError("advance_bars must be an integer")
            return {"clock_ms": self.book.advance(bars)}
        if (method, name) == ("POST", "orders"):
            return self._order(data)
        if (method, name) == ("GET", "requests"):
            since = int(query.get("since", "0"))
            with self._lock:
                rows = [r.to_json() for r in self.requests[since:]]
                return {"requests": rows, "next": len(self.requests)}
        raise AdminError(f"no admin endpoint {method} {path}", 404)

    def _arm(self, data: dict[str, Any]) -> Any:
        unknown = set(data) - set(_FAULT_FIELDS) - {"stall_s"}
        if unknown:
            raise AdminError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        if "kind" not in data:
            raise AdminError("a fault needs a kind")
        fields = {k: data[k] for k in _FAULT_FIELDS if data.get(k) is not None}
        if "delay_s" not in fields and data.get("stall_s") is not None:
            fields["delay_s"] = data["stall_s"]
        return self.faults.arm(make_fault(**fields))

    def _order(self, data: dict[str, Any]) -> dict[str, Any]:
        for key in ("symbol", "side", "qty"):
            if key not in data:
                raise AdminError(f"an order needs {key}")
        price = data.get("price")
        order, trades = self.book.manual_order(
            str(data["symbol"]), str(data["side"]), str(data["qty"]),
            None if price is None else str(price), data.get("client_order_id"))
        return {"order": order.to_admin_json(), "trades": [t.to_json() for t in trades]}
