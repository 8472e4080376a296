"""In-process replay: deterministic, and every signal gets decisions in pipeline order."""

from __future__ import annotations

from backend.marketdata.candles import load_dir
from backend.mesh.simulate import simulate
from backend.settings import Settings


def test_replay_is_deterministic_and_accounts_for_every_signal() -> None:
    s = Settings()
    candles = load_dir(s.data_dir, s.symbols)
    a = simulate(s, candles, limit=600)
    b = simulate(s, candles, limit=600)
    assert [f.model_dump() for f in a.fills] == [f.model_dump() for f in b.fills]
    assert a.signals and a.fills
    assert len(a.marks) == 4 * 600
    by_signal: dict[str, list[str]] = {}
    for sig_id, stage, approved, _rule in a.decisions:
        by_signal.setdefault(sig_id, []).append(f"{stage}:{approved}")
    for sig in a.signals:
        stages = by_signal[sig.id]
        assert stages[0].startswith("compliance")
        assert len(stages) == 1 or stages == ["compliance:True", stages[1]]
    approved_by_risk = sum(1 for _, st, ok, _ in a.decisions if st == "risk" and ok)
    assert approved_by_risk == len(a.orders)


def test_confidence_threshold_changes_the_trades() -> None:
    s = Settings()
    candles = load_dir(s.data_dir, s.symbols)
    strict = simulate(s.model_copy(update={"risk": s.risk.model_copy(
        update={"min_confidence": 0.99})}), candles, limit=600)
    loose = simulate(s.model_copy(update={"risk": s.risk.model_copy(
        update={"min_confidence": 0.0})}), candles, limit=600)
    assert len(loose.orders) > len(strict.orders)
    rules = {rule for _, st, ok, rule in strict.decisions if st == "risk" and not ok}
    assert "min_confidence" in rules


def test_limit_per_symbol_keeps_the_first_bars_of_each_symbol() -> None:
    from backend.marketdata.replay_order import limit_per_symbol

    order = [(1, "A", 0), (1, "B", 0), (2, "A", 1), (2, "B", 1), (3, "A", 2)]
    assert limit_per_symbol(order, 1) == [(1, "A", 0), (1, "B", 0)]
    assert limit_per_symbol(order, 0) == order
