"""kill -9 of the execution agent *process* between the venue call and the acknowledgement.

Failpoints SIGKILL the process (``backend/runtime/failpoints.py``): ``after_submit`` (the venue
took the order, nothing recorded but the intent, nothing acknowledged) and
``before_ack`` (database written, Redis transaction not executed); and, on a live venue,
``poll_before_commit`` (a poll's fill persisted, its events and ledger not saved).  After
a restart there must be exactly one order at the venue and in the database, its fill
recorded once, the input acknowledged -- on the paper venue and on a fake broker whose
state outlives the process (a JSON file shared through ``TRADINGMESH_TEST_BROKER``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import redis

from backend import channels
from backend.messages import OrderFilled
from backend.persistence import Store, make_engine
from backend.venues.factory import TEST_BROKER_ENV
from backend.venues.paper.adapter import ORDERS_HASH
from tests.support.agentproc import agent_env, bar, make_settings, running, start_agent, stop
from tests.support.execharness import FAST_VENUE, events, order, unread, xadd
from tests.support.fakebroker import STATE_ENV, FakeBroker
from tests.support.helpers import eventually

pytestmark = pytest.mark.integration


def _env(settings, tmp: Path, point: str, broker: FakeBroker | None) -> dict[str, str]:  # noqa: ANN001
    env = agent_env(settings, tmp, failpoints=f"execution:{point}")
    if broker is not None:
        env[TEST_BROKER_ENV] = "tests.support.fakebroker:from_env"
        env[STATE_ENV] = str(broker.path)
    else:
        env.pop(TEST_BROKER_ENV, None)
    return env


def _killed(proc: subprocess.Popen[bytes], tmp: Path, point: str) -> None:
    assert proc.wait(30) == -9, "the failpoint SIGKILLs the agent"
    assert (tmp / f"execution.{point}.fired").exists()


@pytest.mark.parametrize("venue", ["paper", "fake"])
@pytest.mark.parametrize("point", ["after_submit", "before_ack"])
def test_kill9_between_submit_and_ack_places_exactly_one_order(
    redis_url: str, tmp_path: Path, venue: str, point: str,
) -> None:
    settings = make_settings(tmp_path, redis_url, venue=FAST_VENUE)
    r = redis.Redis.from_url(redis_url)
    broker = FakeBroker(tmp_path / "broker.json") if venue == "fake" else None
    env = _env(settings, tmp_path, f"{point}@orders", broker)
    o = order(f"sig-{venue}-{point}")
    coid = o.client_order_id
    proc = start_agent("execution", env, tmp_path)
    try:
        eventually(lambda: running(r, "execution"), 30, message="execution running")
        xadd(r, channels.MARKET_DATA, bar(1))
        xadd(r, channels.ORDERS, o)
        _killed(proc, tmp_path, point)
        store = Store(make_engine(settings.db_url()))
        assert store.get_order(coid) is not None  # the intent was persisted first
        assert unread(r, channels.ORDERS) == 1  # not acknowledged
        if broker is not None:
            assert len(broker.orders(coid)) == 1  # the venue has it
        else:
            assert r.hget(ORDERS_HASH, coid) is None  # the paper book was not saved

        proc = start_agent("execution", env, tmp_path)  # the failpoint fired already
        eventually(lambda: unread(r, channels.ORDERS) == 0, 30, message="order acked")
        xadd(r, channels.ORDERS, o)  # and a duplicate delivery
        xadd(r, channels.MARKET_DATA, bar(2))  # paper fills at this bar's open
        eventually(lambda: len(store.fills()) >= 1, 30, message="filled")
        eventually(lambda: unread(r, channels.ORDERS) == 0 and
                   unread(r, channels.MARKET_DATA) == 0, 30)
        assert store.get_order(coid)["status"] == "FILLED"
        assert [f["client_order_id"] for f in store.fills()] == [coid]
        assert [o["client_order_id"] for o in store.orders()] == [coid]
        filled = [e for e in events(r) if isinstance(e, OrderFilled)]
        assert len(filled) == 1 and filled[0].quantity == 2.0
        if broker is not None:
            assert len(broker.orders(coid)) == 1 and len(broker.orders()) == 1
            assert broker.positions() == {"ETH/BTC": 2.0}
        else:
            assert r.hget(ORDERS_HASH, coid) == b"FILLED" and r.hlen(ORDERS_HASH) == 1
    finally:
        stop(proc)


def test_kill9_in_a_poll_records_the_fill_once(redis_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, redis_url, venue=FAST_VENUE)
    r = redis.Redis.from_url(redis_url)
    broker = FakeBroker(tmp_path / "broker.json", fill_mode="rest")
    env = _env(settings, tmp_path, "poll_before_commit", broker)
    o = order("sig-poll")
    proc = start_agent("execution", env, tmp_path)
    try:
        eventually(lambda: running(r, "execution"), 30, message="execution running")
        store = Store(make_engine(settings.db_url()))
        xadd(r, channels.ORDERS, o)
        eventually(lambda: (store.get_order(o.client_order_id) or {}).get("status") ==
                   "ACCEPTED", 30)
        broker.fill(o.client_order_id)  # the next poll fetches it, persists it, dies
        _killed(proc, tmp_path, "poll_before_commit")
        assert len(store.fills()) == 1  # persisted before the transaction...
        assert not [e for e in events(r) if isinstance(e, OrderFilled)]  # ...never published

        proc = start_agent("execution", env, tmp_path)
        eventually(lambda: [e for e in events(r) if isinstance(e, OrderFilled)], 30,
                   message="the fill published after the restart")
        eventually(lambda: running(r, "execution"), 30)
        assert len(store.fills()) == 1 and store.get_order(o.client_order_id)["status"] == \
            "FILLED"
        assert len([e for e in events(r) if isinstance(e, OrderFilled)]) == 1
        assert len(broker.orders()) == 1
    finally:
        stop(proc)
