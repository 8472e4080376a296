"""Store.unit_of_work: several writes in one transaction (issue 17: one write lock per
message instead of one per row), all or nothing, reading its own rows."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from backend.messages import ComplianceDecided, Side, SignalGenerated
from backend.persistence import Store


def _signal(i: int) -> SignalGenerated:
    return SignalGenerated(
        id=f"sig{i}", correlation_id=f"sig{i}", source="strategy:ETHBTC", symbol="ETH/BTC",
        side=Side.BUY, confidence=0.9, entry_price=0.05, stop_loss=0.049, take_profit=0.052,
        reason="test", strategy="sma_cross", params={}, bar_seq=i, bar_time=1_000 + i)


def _decision(sig: SignalGenerated) -> ComplianceDecided:
    return ComplianceDecided(id=f"c-{sig.id}", source="compliance", correlation_id=sig.id,
                             approved=True, rule="ok", reason="", signal=sig)


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    url = f"sqlite:///{tmp_path / 'mesh.db'}" if request.param == "file" else "sqlite://"
    s = Store(url)
    yield s
    s.close()


class _Counter:
    """Counts the transactions the engine begins."""

    def __init__(self, store: Store) -> None:
        self.begins = 0
        sa.event.listen(store.engine, "begin", self._begin)

    def _begin(self, conn: object) -> None:
        self.begins += 1


def test_the_writes_of_a_unit_share_one_transaction(store: Store):
    counter = _Counter(store)
    sig = _signal(1)
    with store.unit_of_work():
        assert store.record_signal(sig)
        assert store.record_decision(_decision(sig), "compliance")
        store.put_state("k", {"v": 1})
    assert counter.begins == 1
    assert [r["id"] for r in store.signals()] == ["sig1"]
    assert len(store.decisions()) == 1 and store.get_state("k") == {"v": 1}
    counter.begins = 0
    store.record_signal(_signal(2))
    store.record_signal(_signal(3))
    assert counter.begins == 2  # outside a unit: one transaction per write, as before


def test_an_error_inside_the_unit_keeps_none_of_its_rows(store: Store):
    store.record_signal(_signal(0))
    with pytest.raises(RuntimeError), store.unit_of_work():
        store.record_signal(_signal(1))
        store.put_state("k", {"v": 1})
        raise RuntimeError("the process dies here")
    assert [r["id"] for r in store.signals()] == ["sig0"]
    assert store.get_state("k") is None
    with store.unit_of_work():  # the store is usable afterwards
        store.record_signal(_signal(2))
    assert [r["id"] for r in store.signals()] == ["sig0", "sig2"]


def test_a_unit_reads_its_own_rows_and_nested_units_join(store: Store):
    counter = _Counter(store)
    with store.unit_of_work():
        store.put_state("k", {"v": 1})
        assert store.get_state("k") == {"v": 1}  # not yet committed: read in the unit
        with store.unit_of_work():
            store.record_signal(_signal(1))
        assert store.record_signal(_signal(1)) is False  # idempotent inside it too
    assert counter.begins == 1
    assert len(store.signals()) == 1


def test_units_in_two_threads_do_not_mix(tmp_path: Path):
    store = Store(f"sqlite:///{tmp_path / 'mesh.db'}")
    inside, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with pytest.raises(RuntimeError), store.unit_of_work():
                store.record_signal(_signal(9))
                inside.set()
                release.wait(10)
                raise RuntimeError("rolled back")
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    assert inside.wait(10)
    assert store.signals() == []  # this thread is outside the other's unit: sees nothing
    release.set()
    t.join(10)
    assert not errors
    store.record_signal(_signal(1))  # a write of its own after the other thread's unit
    assert [r["id"] for r in store.signals()] == ["sig1"]
    store.close()
