"""Check the books after a fault drill: nothing lost, nothing duplicated, nothing stuck.

Read after the mesh has stopped, from the database (our records), the order-path Redis
Streams (what was sent) and the paper venue's own state in Redis (what the venue saw):

* ``signals_accounted`` — every valid ``SignalGenerated`` on the ``signals`` stream is in
  the database; each has a compliance decision, each compliance approval a risk decision,
  each rejection a reason and each risk approval an order;
* ``orders_unique`` — no client order id appears in two ``SubmitOrder`` entries of the
  ``orders`` stream (sent twice);
* ``orders_recorded`` — every ``SubmitOrder`` sent has an order row;
* ``venue_orders`` — the venue's status of every client order id equals ours; orders we
  have that the venue never saw were denied before it (``REJECTED``);
* ``venue_fills`` — the venue's executions equal our fills (id, order, side, quantity,
  price, fee), and every ``OrderFilled`` on ``trading_events`` is recorded;
* ``positions`` — per symbol, the signed sum of fills equals our position and the venue's;
* ``nothing_pending`` — every consumer group of every stream has nothing pending (delivered
  but not acknowledged) and nothing undelivered (lag 0).

``lost`` counts signals, orders and fills that were sent but are missing downstream;
``duplicated`` counts repeated client order ids and fills the venue did not make.
After Redis lost its data (``data_lost_ns``: when it came back empty), a signal the
database recorded before that moment whose next step is missing went with the streams:
it is counted in ``lost_with_data`` and reported, not failed -- the mesh halts on the
loss and no order can come of it -- while every signal after the loss must be whole.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis

from backend import channels
from backend.bus import DATA_FIELD
from backend.messages import OrderFilled, SignalGenerated, SubmitOrder, decode
from backend.persistence import Store
from backend.venues.paper.adapter import FILLS_HASH, ORDERS_HASH

#: Relative tolerance for quantities and money compared across the three records.
REL_TOL = 1e-9


@dataclass
class Check:
    """One named check: passed or not, with what was found."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class BooksReport:
    """Result of :func:`check_books` (counts are message / row counts)."""

    checks: list[Check] = field(default_factory=list)
    signals: int = 0
    orders: int = 0
    fills: int = 0
    lost: int = 0
    duplicated: int = 0
    lost_with_data: int = 0

    @property
    def ok(self) -> bool:
        """Every check passed."""
        return all(c.ok for c in self.checks)

    def failures(self) -> list[str]:
        """``name: detail`` of each failed check."""
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ok": self.ok, "signals": self.signals, "orders": self.orders, "fills": self.fills,
            "lost": self.lost, "duplicated": self.duplicated,
            "lost_with_data": self.lost_with_data,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
        }


def _entries(r: redis.Redis, stream: str) -> Iterable[tuple[str, Any]]:
    """Every decodable message of ``stream`` as ``(entry id, message)``; junk is skipped
    (hostile payloads are judged by their own drill)."""
    for entry_id, fields in r.xrange(stream, "-", "+"):
        raw = fields.get(DATA_FIELD)
        if raw is None:
            continue
        try:
            yield entry_id.decode(), decode(raw)
        except ValueError:
            continue


def close_enough(a: float, b: float, scale: float = 1.0) -> bool:
    """``a`` and ``b`` agree within :data:`REL_TOL` (relative to ``scale``)."""
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=REL_TOL * max(scale, 1e-12))


def sample(items: Iterable[str], n: int = 5) -> str:
    """The first ``n`` of ``items`` (sorted) for a report line, with a count of the rest."""
    items = sorted(items)
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def check_signals(r: redis.Redis, store: Store, rep: BooksReport,
                  data_lost_ns: int | None = None) -> None:
    """``signals_accounted`` (see the module docstring), added to ``rep``; ``data_lost_ns``
    (ns UTC): when Redis lost its data, if it did."""
    sent = {m.id for _, m in _entries(r, channels.SIGNALS) if isinstance(m, SignalGenerated)}
    rows = store.signals()
    db_signals = {s["id"] for s in rows}
    before_loss = ({s["id"] for s in rows if int(s["ts"]) < data_lost_ns}
                   if data_lost_ns is not None else set())
    decided: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for d in store.decisions():
        decided[d["signal_id"]][d["stage"]] = d
    ordered = {o["signal_id"] for o in store.orders()}
    missing = sent - db_signals
    problems: list[str] = []
    with_data: list[str] = []
    for sid in sorted(db_signals | sent):
        stages = decided.get(sid, {})
        n = len(problems)
        comp, risk = stages.get("compliance"), stages.get("risk")
        if comp is None:
            problems.append(f"{sid}: no compliance decision")
        elif not comp["approved"]:
            if not comp["reason"]:
                problems.append(f"{sid}: compliance rejection without a reason")
        elif risk is None:
            problems.append(f"{sid}: approved by compliance, no risk decision")
        elif not risk["approved"]:
            if not risk["reason"]:
                problems.append(f"{sid}: risk rejection without a reason")
        elif sid not in ordered:
            problems.append(f"{sid}: approved by risk, no order")
        if len(problems) > n and sid in before_loss:
            with_data.append(problems.pop())
    rep.signals = len(sent | db_signals)
    rep.lost += len(missing) + len(problems)
    rep.lost_with_data += len(with_data)
    detail = f"{len(sent)} sent, {len(db_signals)} recorded"
    if missing:
        detail += f"; not recorded: {sample(missing)}"
    if problems:
        detail += f"; unaccounted: {len(problems)} ({'; '.join(problems[:3])})"
    if with_data:
        detail += (f"; in flight when Redis lost its data: {len(with_data)} "
                   f"({'; '.join(with_data[:3])})")
    rep.checks.append(Check("signals_accounted", not missing and not problems, detail))


def check_orders(r: redis.Redis, store: Store, rep: BooksReport) -> dict[str, dict[str, Any]]:
    """``orders_unique``, ``orders_recorded`` and ``orders_placed`` (at least one order),
    added to ``rep``; returns our orders by client order id."""
    sent = Counter(m.client_order_id for _, m in _entries(r, channels.ORDERS)
                   if isinstance(m, SubmitOrder))
    twice = {c: n for c, n in sent.items() if n > 1}
    rep.duplicated += sum(n - 1 for n in twice.values())
    rep.checks.append(Check(
        "orders_unique", not twice,
        f"{len(sent)} client order ids sent" + (f"; sent twice: {sample(twice)}" if twice
                                                 else "")))
    ours = {o["client_order_id"]: o for o in store.orders()}
    missing = set(sent) - set(ours)
    rep.lost += len(missing)
    rep.orders = len(ours)
    rep.checks.append(Check(
        "orders_recorded", not missing,
        f"{len(ours)} order rows" + (f"; sent but not recorded: {sample(missing)}"
                                     if missing else "")))
    # a run without a single order proved nothing about the order path: it fails
    rep.checks.append(Check(
        "orders_placed", bool(ours),
        f"{len(ours)} orders" if ours else "no order was placed: the run proved nothing "
        "about losing or duplicating orders (raise --limit: the strategies need bars to "
        "warm up and to signal)"))
    return ours


def _check_venue(r: redis.Redis, fills: list[dict[str, Any]], ours: dict[str, dict[str, Any]],
                 rep: BooksReport) -> None:
    venue_status = {k.decode(): v.decode() for k, v in r.hgetall(ORDERS_HASH).items()}
    differ = [f"{c}: venue {s} != ours {ours[c]['status']}" for c, s in venue_status.items()
              if c in ours and ours[c]["status"] != s]
    unknown_to_us = set(venue_status) - set(ours)
    never_sent = [c for c, o in ours.items() if c not in venue_status
                  and o["status"] != "REJECTED" and not o["external"]]
    rep.lost += len(unknown_to_us) + len(never_sent)
    ok = not differ and not unknown_to_us and not never_sent
    detail = f"{len(venue_status)} orders at the venue"
    if differ:
        detail += f"; status differs: {'; '.join(differ[:3])}"
    if unknown_to_us:
        detail += f"; at the venue, not in our records: {sample(unknown_to_us)}"
    if never_sent:
        detail += f"; ours, never reached the venue and not rejected: {sample(never_sent)}"
    rep.checks.append(Check("venue_orders", ok, detail))

    venue_fills = {}
    for raw in r.hvals(FILLS_HASH):
        f = decode(raw)
        if isinstance(f, OrderFilled):
            venue_fills[f.fill_id] = (f.client_order_id, f.side.value, f.quantity, f.price, f.fee)
    db_fills = {f["fill_id"]: (f["client_order_id"], f["side"], f["quantity"], f["price"],
                               f["fee"]) for f in fills}
    events = {m.fill_id for _, m in _entries(r, channels.TRADING_EVENTS)
              if isinstance(m, OrderFilled)}
    compare_fills(rep, "venue_fills", venue_fills, db_fills, also_missing=events)


def compare_fills(rep: BooksReport, name: str, venue: dict[str, tuple[Any, ...]],
                  ours: dict[str, tuple[Any, ...]], also_missing: set[str] = frozenset()
                  ) -> None:
    """Check ``name``: the venue's executions (fill id -> fields) equal our fills, fields
    compared exactly when they are strings and within :data:`REL_TOL` when numbers;
    ``also_missing``: fill ids seen elsewhere (published events) that must be ours too."""
    def same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
        return all(x == y if isinstance(x, str) else close_enough(x, y, max(abs(x), abs(y)))
                   for x, y in zip(a, b, strict=True))

    missing = (set(venue) | also_missing) - set(ours)
    extra = set(ours) - set(venue)
    differ = [k for k in set(venue) & set(ours) if not same(venue[k], ours[k])]
    rep.fills = len(ours)
    rep.lost += len(missing)
    rep.duplicated += len(extra)
    detail = f"{len(venue)} venue executions, {len(ours)} recorded fills"
    if missing:
        detail += f"; not recorded: {sample(missing)}"
    if extra:
        detail += f"; recorded, not made by the venue: {sample(extra)}"
    if differ:
        detail += f"; differ: {sample(differ)}"
    rep.checks.append(Check(name, not missing and not extra and not differ, detail))


def _check_positions(r: redis.Redis, store: Store, fills: list[dict[str, Any]],
                     rep: BooksReport) -> None:
    summed: dict[str, float] = defaultdict(float)
    traded: dict[str, float] = defaultdict(float)
    for f in fills:
        sign = 1.0 if f["side"] == "BUY" else -1.0
        summed[f["symbol"]] += sign * f["quantity"]
        traded[f["symbol"]] += f["quantity"]
    ours = {p["symbol"]: p["quantity"] for p in store.positions()}
    raw = r.get(channels.PAPER_VENUE_KEY)
    venue = ({s: p["quantity"] for s, p in orjson.loads(raw).get("positions", {}).items()}
             if raw else {})
    bad = []
    for sym in sorted(set(summed) | set(ours) | set(venue)):
        scale = traded.get(sym, 1.0)
        s, o, v = summed.get(sym, 0.0), ours.get(sym, 0.0), venue.get(sym, 0.0)
        if not (close_enough(s, o, scale) and close_enough(s, v, scale)):
            bad.append(f"{sym}: fills sum {s:.10g}, ours {o:.10g}, venue {v:.10g}")
    rep.checks.append(Check(
        "positions", not bad,
        "; ".join(bad) if bad else f"{len(summed)} symbols: fills sum = ours = venue"))


def check_pending(r: redis.Redis, rep: BooksReport) -> None:
    """``nothing_pending``, added to ``rep``."""
    stuck = []
    groups = 0
    for stream in channels.STREAMS:
        if not r.exists(stream):
            continue
        for g in r.xinfo_groups(stream):
            groups += 1
            name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
            pending, lag = int(g.get("pending") or 0), g.get("lag")
            if pending or (lag is not None and int(lag) > 0):
                stuck.append(f"{stream}/{name}: pending {pending}, lag {lag}")
    rep.checks.append(Check(
        "nothing_pending", not stuck,
        "; ".join(stuck[:6]) if stuck else f"{groups} consumer groups drained"))


def check_books(r: redis.Redis, store: Store, data_lost_ns: int | None = None) -> BooksReport:
    """Run every check (see the module docstring) on a stopped paper-venue mesh.

    Parameters
    ----------
    r
        Synchronous client of the mesh's Redis (read access to every stream and the
        paper venue's keys).
    store
        The mesh's database.
    data_lost_ns
        When Redis lost its data (ns UTC), if it did.
    """
    rep = BooksReport()
    check_signals(r, store, rep, data_lost_ns)
    ours = check_orders(r, store, rep)
    fills = store.fills()
    _check_venue(r, fills, ours, rep)
    _check_positions(r, store, fills, rep)
    check_pending(r, rep)
    return rep
