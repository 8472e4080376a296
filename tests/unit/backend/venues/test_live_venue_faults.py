"""The live order path under the faults real venues produce (issue 14), at the venue
adapter: requests that land after the client timed out, venues that bound nothing, fees
taken in the base asset, partly filled exits that expire, a fill landing inside a
position check, and protective stops resting at the venue.

Each test is named after the scenario it guards; each failed before the change."""

from __future__ import annotations

import pytest

from backend.messages import ExitReason, OrderAccepted, OrderCancelled, OrderFilled, Side
from backend.venues import ledger as lg
from backend.venues.broker import OrderUnresolved
from tests.support.fakebroker import FakeBroker
from tests.support.helpers import aeventually
from tests.support.venue_kit import SYM, bar, commit, live, loaded, order, run, submit


# ------------------------------------------------------------------ 1. duplicates
def test_duplicate_orders_after_a_timeout_never_happen(fake_redis) -> None:
    """The send times out and the request lands 0.1 s later, after the first lookups
    found nothing: it is adopted when it shows up, never sent a second time."""
    async def go() -> None:
        broker = FakeBroker(prices={SYM: 0.1}, late_s=0.1, request_lifetime_s=0.2)
        venue, _ = await loaded(fake_redis, broker)
        broker.fail_next("place_market_order", "late")
        ev = await submit(venue, order(), 1)
        assert isinstance(ev, OrderAccepted)
        assert len(broker.orders("tm-o-1")) == 1 and broker.calls("place_market_order") == 1
        assert broker.calls("fetch_order") >= 2  # looked for more than once

    run(go())


def test_every_request_slow_still_makes_one_order_per_id(fake_redis) -> None:
    async def go() -> None:
        broker = FakeBroker(prices={SYM: 0.1}, late_s=0.05, request_lifetime_s=0.2)
        venue, _ = await loaded(fake_redis, broker)
        broker.fail_next("place_market_order", "late", times=50)
        for i in range(3):
            await submit(venue, order(f"tm-o-{i}"), i)
            await venue.poll(10 + i)
            await commit(venue, fake_redis)
        assert [len(broker.orders(f"tm-o-{i}")) for i in range(3)] == [1, 1, 1]
        assert venue.book_positions()[SYM].quantity == pytest.approx(6.0)  # 3 x 2.0, not 6x

    run(go())


def test_unknown_order_at_a_venue_that_bounds_nothing_is_never_resent(fake_redis) -> None:
    """MT5/IB-like: no request lifetime, ids not unique.  Still absent after the window:
    OrderUnresolved (the caller halts the symbol); when it lands later it is found."""
    async def go() -> None:
        broker = FakeBroker(prices={SYM: 0.1}, late_s=0.6, request_lifetime_s=None)
        venue, _ = await loaded(fake_redis, broker)
        broker.fail_next("place_market_order", "late")
        with pytest.raises(OrderUnresolved) as err:
            await venue.place(order(), 1)
        assert err.value.client_order_id == "tm-o-1" and "not resent" in str(err.value)
        assert broker.calls("place_market_order") == 1
        journal = venue.placer.journal
        intent, sent = journal.intents["tm-o-1"], journal.sent["tm-o-1"]  # type: ignore[attr-defined]
        found = await aeventually(  # it lands after the window: found by a later look
            lambda: venue.placer.lookup(intent, sent), 5, message="the late order")
        assert found.status.value == "FILLED" and len(broker.orders("tm-o-1")) == 1

    run(go())


def test_unique_client_order_ids_allow_an_immediate_resend(fake_redis) -> None:
    async def go() -> None:
        broker = FakeBroker(prices={SYM: 0.1}, request_lifetime_s=None,
                            unique_client_order_ids=True)
        venue, _ = await loaded(fake_redis, broker)
        broker.fail_next("place_market_order", "timeout_before")
        ev = await submit(venue, order(), 1)
        assert isinstance(ev, OrderAccepted) and broker.calls("place_market_order") == 2

    run(go())


# ------------------------------------------------------------------ 2. base-asset fees
def test_base_asset_fees_are_netted_and_exits_sell_what_the_venue_holds(fake_redis) -> None:
    """Binance spot takes a buy's fee out of the coins: 2.0 bought, 1.998 held.  The
    ledger holds 1.998 and the stop-loss exit sells 1.998 (a SELL 2.0 is refused)."""
    async def go() -> None:
        broker = FakeBroker(prices={SYM: 0.1}, fee_asset="base")
        broker.set_spot_checks()
        venue, _ = await loaded(fake_redis, broker)
        await submit(venue, order(sl=0.095), 1)
        fill, pos = await venue.poll(2)
        assert isinstance(fill, OrderFilled)
        assert fill.quantity == pytest.approx(1.998) and pos.quantity == pytest.approx(1.998)
        assert fill.fee == pytest.approx(0.002 * 0.1)  # its value in quote
        assert venue.ledger.cash == pytest.approx(10.0)  # not yet committed
        await commit(venue, fake_redis)
        assert venue.ledger.cash == pytest.approx(10.0 - 0.2)  # no quote fee paid
        await venue.on_bar(bar(1, 0.1, 0.1, 0.1, 0.1))
        await commit(venue, fake_redis)
        broker.set_price(SYM, 0.094)
        evs = await venue.on_bar(bar(2, 0.1, 0.1, 0.094, 0.095))
        (exit_ack,) = [e for e in evs if isinstance(e, OrderAccepted)]
        assert exit_ack.quantity == pytest.approx(1.998)
        assert venue.book_positions() == {} and broker.positions() == {}
        await commit(venue, fake_redis)
        assert venue.ledger.fees_paid == pytest.approx(0.0002 + 1.998 * 0.094 * 0.001)

    run(go())


# ------------------------------------------------------------------ 3. partial exits
def test_a_partly_filled_exit_is_retried_until_flat(fake_redis) -> None:
    """Every market exit fills half and expires: each next attempt has its own client
    order id; the position is never left without an exit until it is flat."""
    async def go() -> None:
        broker = FakeBroker(prices={SYM: 0.1}, expire_ratio=0.5)
        venue, _ = await loaded(fake_redis, broker)
        await submit(venue, order(sl=0.095), 1)
        await venue.poll(2)
        await commit(venue, fake_redis)
        broker.set_fill_mode("expire")
        broker.set_price(SYM, 0.094)
        await venue.on_bar(bar(1, 0.1, 0.1, 0.094, 0.094))
        await commit(venue, fake_redis)
        left = venue.book_positions()[SYM].quantity
        assert left == pytest.approx(2.0 * 0.5 ** 3)  # three attempts on that bar
        broker.set_fill_mode("immediate")
        await venue.on_bar(bar(2, 0.094, 0.094, 0.093, 0.094))
        await commit(venue, fake_redis)
        assert venue.book_positions() == {} and broker.positions() == {}
        exits = [o for o in broker.orders() if o.client_order_id.startswith("tm-s-")]
        assert len(exits) == 4 and len({o.client_order_id for o in exits}) == 4
        assert exits[:3] == [o for o in exits if o.status.value == "CANCELLED"]
        assert exits[0].client_order_id == lg.exit_coid("fake", "tm-o-1",
                                                        ExitReason.STOP_LOSS, 0)

    run(go())


def test_a_position_regrown_from_dust_exits_with_new_client_order_ids(fake_redis) -> None:
    """The fee taken in coins leaves dust after an exit (below the step); the next entry
    adds to it, and its exit must not be mistaken for the finished one (same entry id)."""
    async def go() -> None:
        broker = FakeBroker(prices={SYM: 0.1}, fee_asset="base", fee_rate=0.00035, step=0.001)
        venue, _ = await loaded(fake_redis, broker)
        for n, t in ((1, 10), (2, 20)):
            broker.set_price(SYM, 0.1)
            await submit(venue, order(f"tm-o-{n}", qty=2.0, tp=0.101), t)
            await venue.poll(t + 1)
            await commit(venue, fake_redis)
            broker.set_price(SYM, 0.102)
            await venue.on_bar(bar(n, 0.1, 0.102, 0.1, 0.102))
            await commit(venue, fake_redis)
            left = venue.book_positions()[SYM].quantity
            assert 0 < left < 0.001, left  # dust: below the step
        exits = [o for o in broker.orders() if o.client_order_id.startswith("tm-t-")]
        assert len(exits) == 2 and len({o.client_order_id for o in exits}) == 2
        assert all(o.status.value == "FILLED" for o in exits)

    run(go())


# ------------------------------------------------------------------ 4. fill counted twice
class _FillsDuringPositionFetch(FakeBroker):
    """A resting order fills while the position is being fetched (after the fill poll)."""

    pending: str = ""

    async def fetch_positions(self) -> dict[str, float]:
        if self.pending:
            self.fill(self.pending)
            self.pending = ""
        return await super().fetch_positions()


def test_reconciliation_counts_a_fill_once_when_it_lands_during_the_check(fake_redis) -> None:
    async def go() -> None:
        broker = _FillsDuringPositionFetch(prices={SYM: 0.1})
        venue, _ = await loaded(fake_redis, broker)
        await submit(venue, order(), 1)
        await venue.poll(2)
        await commit(venue, fake_redis)
        broker.set_fill_mode("rest")
        await submit(venue, order("tm-o-2"), 3)
        await commit(venue, fake_redis)
        broker.pending = "tm-o-2"
        _, alarms = await venue.check_positions(4)
        assert alarms == []  # an inconsistent snapshot is not a mismatch
        await venue.poll(5)
        await commit(venue, fake_redis)
        assert venue.book_positions()[SYM].quantity == pytest.approx(4.0)
        assert broker.positions()[SYM] == pytest.approx(4.0)
        assert await venue.poll(6, since_ns=0) == []  # every fill applied exactly once
        _, alarms = await venue.check_positions(7)
        assert alarms == [] and venue.book_positions()[SYM].quantity == pytest.approx(4.0)

    run(go())


# ------------------------------------------------------------------ 6. protective stops
def test_protective_stop_rests_at_the_venue_and_closes_the_position(fake_redis) -> None:
    async def go() -> None:
        broker = FakeBroker(prices={SYM: 0.1}, supports_stop_orders=True)
        venue, _ = await loaded(fake_redis, broker)
        await submit(venue, order(sl=0.095, tp=0.12), 1)
        evs = await venue.poll(2)
        (stop_ack,) = [e for e in evs if isinstance(e, OrderAccepted)]
        assert lg.is_protective(stop_ack.client_order_id) and stop_ack.side is Side.SELL
        (resting,) = [o for o in broker.orders() if o.stop_price is not None]
        assert resting.stop_price == 0.095 and resting.quantity == 2.0
        await commit(venue, fake_redis)
        # the execution agent is down: the venue's stop protects the position
        broker.set_price(SYM, 0.094)
        assert broker.positions() == {}
        fills = [e for e in await venue.poll(3) if isinstance(e, OrderFilled)]
        assert [f.exit_reason for f in fills] == [ExitReason.STOP_LOSS]
        assert fills[0].correlation_id == "sig-tm-o-1" and venue.book_positions() == {}
        await commit(venue, fake_redis)
        evs = await venue.on_bar(bar(1, 0.1, 0.1, 0.094, 0.094))
        assert not [e for e in evs if isinstance(e, OrderAccepted)]  # no second exit

    run(go())


def test_protective_stop_follows_the_position_and_leaves_for_an_exit(fake_redis) -> None:
    async def go() -> None:
        broker = FakeBroker(prices={SYM: 0.1}, supports_stop_orders=True)
        venue, _ = await loaded(fake_redis, broker)
        await submit(venue, order(sl=0.095, tp=0.12), 1)
        await venue.poll(2)
        await commit(venue, fake_redis)
        await submit(venue, order("tm-o-2", qty=1.0, sl=0.095, tp=0.12), 3)  # add
        evs = await venue.poll(4)
        await commit(venue, fake_redis)
        assert any(isinstance(e, OrderCancelled) for e in evs)
        working = [o for o in broker.orders()
                   if o.stop_price is not None and o.status.value == "ACCEPTED"]
        assert [o.quantity for o in working] == [3.0]  # one stop, for the whole position
        broker.set_price(SYM, 0.121)
        evs = await venue.on_bar(bar(1, 0.1, 0.121, 0.1, 0.121))  # take profit
        assert any(isinstance(e, OrderCancelled) and lg.is_protective(e.client_order_id)
                   for e in evs)
        assert venue.book_positions() == {} and broker.positions() == {}
        assert not [o for o in broker.orders()
                    if o.stop_price is not None and o.status.value == "ACCEPTED"]

    run(go())


def test_a_fresh_ledger_starts_from_the_remembered_baseline(fake_redis) -> None:
    async def go() -> None:
        broker = FakeBroker(prices={SYM: 0.1})
        broker.set_position(SYM, 7.0)
        venue = live(broker, fake_redis)
        await venue.load(baseline={SYM: 5.0})  # the database remembers 5 were the trader's
        assert venue.baseline == {SYM: 5.0}
        _, (alarm,) = await venue.check_positions(1)
        assert alarm.kind == "position_mismatch" and "expect 5" in alarm.reason

    run(go())
