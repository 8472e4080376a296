"""Check the books after a venue-fault drill against the **exchange's own records**.

Read after the mesh has stopped, from the database (our records), the order-path streams
and the exchange simulator's book (what the exchange did), besides the paper drill's
``signals_accounted``, ``orders_unique``, ``orders_recorded`` and ``nothing_pending``
(:mod:`orchestrator.drills.books`):

* ``exchange_ids_unique`` — every client order id of ours at most once at the exchange;
* ``exchange_orders`` — every order of ours at the exchange is in our records with its
  exchange id, symbol, side and quantity, and the same status; every order we have that
  is not ``REJECTED`` is at the exchange (a rejected one is not);
* ``exchange_fills`` — every trade of the account (ours and by hand) is one of our fills
  and the reverse: quantity net of a fee taken in the base asset, price, fee's value in
  the quote currency, side;
* ``positions`` — per symbol: what the exchange holds minus what it held before the mesh
  traded = our position = the signed sum of our fills;
* ``protected`` — every open position with a stop loss has a protective stop resting at
  the exchange for its quantity;
* ``unknown_alerted`` — no order is left ``UNKNOWN`` without its symbol halted and an
  alert raised.

``lost`` counts exchange orders and trades missing from our records and orders of ours
that claim to be at the exchange but are not; ``duplicated`` counts client order ids at
the exchange more than once and fills the exchange did not make.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import orjson
import redis

from backend import channels
from backend.exchange_sim import ExchangeSim
from backend.persistence import Store
from backend.venues.ledger import is_protective
from backend.venues.live import ledger_keys
from orchestrator.drills.books import (
    BooksReport,
    Check,
    check_orders,
    check_pending,
    check_signals,
    close_enough,
    compare_fills,
    sample,
)

__all__ = ["check_venue_books"]

VENUE = "ccxt:binance"
#: exchange status -> ours
STATUS = {"FILLED": "FILLED", "CANCELED": "CANCELLED", "EXPIRED": "CANCELLED",
          "NEW": "ACCEPTED", "PARTIALLY_FILLED": "PARTIALLY_FILLED", "REJECTED": "REJECTED"}


def _orders(sim: ExchangeSim, ours: dict[str, dict[str, Any]], rep: BooksReport) -> None:
    ex = [o for o in sim.orders() if o.client_order_id.startswith("tm-")]
    counts = Counter(o.client_order_id for o in ex)
    twice = {c: n for c, n in counts.items() if n > 1}
    rep.duplicated += sum(n - 1 for n in twice.values())
    rep.checks.append(Check(
        "exchange_ids_unique", not twice, f"{len(counts)} client order ids at the exchange"
        + (f"; more than once: {sample(twice)}" if twice else "")))
    problems, lost = [], 0
    symbols = {m.id: m.symbol for m in sim.book.markets.values()}
    for o in ex:
        mine = ours.get(o.client_order_id)
        if mine is None:
            lost += 1
            problems.append(f"{o.client_order_id}: at the exchange, not in our records")
            continue
        want = STATUS.get(o.status, o.status)
        if (mine["status"] != want or mine["venue_order_id"] != str(o.order_id)
                or mine["symbol"] != symbols[o.symbol] or mine["side"] != o.side):
            problems.append(f"{o.client_order_id}: exchange {o.status} #{o.order_id} "
                            f"{o.side}, ours {mine['status']} #{mine['venue_order_id']} "
                            f"{mine['side']}")
    at_exchange = set(counts)
    for c, mine in ours.items():
        if mine["external"] or not c.startswith("tm-"):
            continue
        landed = mine["status"] not in ("REJECTED", "NEW")
        if landed and c not in at_exchange:
            lost += 1
            problems.append(f"{c}: ours {mine['status']}, not at the exchange")
        if mine["status"] == "REJECTED" and c in at_exchange:
            problems.append(f"{c}: rejected in our books but at the exchange")
        if mine["status"] == "NEW" and mine.get("sent_ts") is not None:
            problems.append(f"{c}: sent, still NEW")
    rep.lost += lost
    rep.checks.append(Check("exchange_orders", not problems,
                            f"{len(ex)} orders of ours at the exchange"
                            + (f"; {len(problems)} differ: {'; '.join(problems[:3])}"
                               if problems else "")))


def _fills(sim: ExchangeSim, store: Store, rep: BooksReport) -> None:
    symbols = {m.id: m for m in sim.book.markets.values()}
    ex = {}
    for t in sim.trades():
        m = symbols[t.symbol]
        qty, fee = t.qty, t.commission
        if t.commission_asset == m.base:  # netted out of the coins, its value in quote
            qty = qty - t.commission if t.side == "BUY" else qty + t.commission
            fee = t.commission * t.price
        ex[f"{VENUE}:{t.trade_id}"] = (t.side, float(qty), float(t.price), float(fee))
    ours = {f["fill_id"]: (f["side"], f["quantity"], f["price"], f["fee"])
            for f in store.fills()}
    compare_fills(rep, "exchange_fills", ex, ours)


def _positions(r: redis.Redis, sim: ExchangeSim, store: Store, rep: BooksReport) -> None:
    baseline = (store.get_state(f"venue_baseline:{VENUE}") or {}).get("positions", {})
    balances = sim.book.balances()
    summed: dict[str, float] = defaultdict(float)
    for f in store.fills():
        summed[f["symbol"]] += f["quantity"] if f["side"] == "BUY" else -f["quantity"]
    ours = {p["symbol"]: p["quantity"] for p in store.positions()}
    blob = r.get(ledger_keys(VENUE)[0])
    ledger = orjson.loads(blob).get("positions", {}) if blob else {}
    resting = defaultdict(Decimal)
    for o in sim.orders():
        if is_protective(o.client_order_id) and o.status == "NEW":
            resting[o.symbol] += o.orig_qty
    bad, unprotected = [], []
    for m in sim.book.markets.values():
        sym = m.symbol
        free, locked = balances[m.base]
        venue = float(free + locked) - float(baseline.get(sym, 0.0))
        scale = max(abs(venue), 1e-9)
        s, o = summed.get(sym, 0.0), ours.get(sym, 0.0)
        if not (close_enough(s, o, scale) and close_enough(o, venue, scale)):
            bad.append(f"{sym}: exchange {venue:.10g}, ours {o:.10g}, fills sum {s:.10g}")
        held = float((ledger.get(sym) or {}).get("quantity", 0.0))
        step = float(m.filters["stepSize"])
        if (held > step and (ledger.get(sym) or {}).get("stop_loss") is not None
                and float(resting[m.id]) < held - step):
            unprotected.append(f"{sym}: {held:.10g} held, {resting[m.id]} resting at the "
                               "exchange as a protective stop")
    rep.checks.append(Check("positions", not bad, "; ".join(bad) if bad else
                            "exchange - baseline = ours = fills sum, every symbol"))
    rep.checks.append(Check("protected", not unprotected, "; ".join(unprotected) if unprotected
                            else "every open position has its stop resting at the exchange"))


def _unknown(r: redis.Redis, store: Store, rep: BooksReport) -> None:
    halted = {k.decode() for k in r.hkeys(channels.SYMBOL_HALTS_KEY)}
    alarmed = {a["subject_id"] for a in store.audit(action="venue_alarm")}
    silent = [o["client_order_id"] for o in store.orders("UNKNOWN")
              if o["symbol"] not in halted or o["client_order_id"] not in alarmed]
    rep.checks.append(Check("unknown_alerted", not silent,
                            f"left UNKNOWN without a halt and an alert: {sample(silent)}"
                            if silent else f"{len(store.orders('UNKNOWN'))} UNKNOWN, "
                            f"{len(halted)} symbols halted"))


def check_venue_books(r: redis.Redis, store: Store, sim: ExchangeSim,
                      data_lost_ns: int | None = None) -> BooksReport:
    """Every check of the module docstring on a stopped mesh and its exchange.

    Parameters
    ----------
    r
        Synchronous client of the mesh's Redis (read access to every key).
    store
        The mesh's database.
    sim
        The exchange simulator the mesh traded on.
    data_lost_ns
        When Redis lost its data (ns UTC), if it did.
    """
    rep = BooksReport()
    check_signals(r, store, rep, data_lost_ns)
    ours = check_orders(r, store, rep)
    _orders(sim, ours, rep)
    _fills(sim, store, rep)
    _positions(r, sim, store, rep)
    _unknown(r, store, rep)
    check_pending(r, rep)
    return rep
