"""Wire schema: every message round-trips; bad payloads are rejected with a reason."""

from __future__ import annotations

import orjson
import pytest

from backend import messages as m
from backend.messages import DecodeError, Side, decode

SIG = m.SignalGenerated(
    source="strategy:ETHBTC", symbol="ETH/BTC", side=Side.BUY, confidence=0.9,
    entry_price=0.1, stop_loss=0.09, take_profit=0.12, reason="cross", strategy="sma_cross",
    params={"fast": 10, "slow": 30}, bar_seq=7, bar_time=1_515_560_100_000_000_000,
)

SAMPLES: list[m.Message] = [
    m.BarClosed(source="md", symbol="ETH/BTC", open_time=1, open=1, high=2, low=0.5, close=1.5,
                volume=3, seq=1),
    SIG,
    m.ComplianceDecided(source="c", approved=True, rule="ok", reason="fine", signal=SIG),
    m.RiskDecided(source="r", approved=False, rule="min_confidence", reason="low", signal=SIG),
    m.SubmitOrder(source="r", client_order_id="tm-o-1", symbol="ETH/BTC", side=Side.SELL,
                  quantity=1.5, signal_id=SIG.id, bar_seq=7, stop_loss=0.2),
    m.CancelAllOrders(source="o", reason="kill switch", flatten=True),
    m.ResolveSymbol(source="o", symbol="ETH/BTC", reason="checked the venue",
                    not_placed=["tm-o-1"], adopt_venue_position=True),
    m.KillSwitchExecuted(
        source="execution", command_id="k1", cancelled=["c1"], positions_left={},
        flattened=[m.ClosedPosition(symbol="ETH/BTC", quantity=-2.0, price=0.05,
                                    client_order_id="c0-flat")],
    ),
    m.OrderAccepted(source="v", client_order_id="c", venue_order_id="v", symbol="ETH/BTC",
                    side=Side.BUY, quantity=1),
    m.OrderRejected(source="v", client_order_id="c", symbol="ETH/BTC", reason="no"),
    m.OrderCancelled(source="v", client_order_id="c", symbol="ETH/BTC", reason="ks"),
    m.OrderFilled(source="v", fill_id="f", client_order_id="c", symbol="ETH/BTC",
                  side=Side.BUY, quantity=1, price=0.1, fee=0.0001, bar_seq=8, fill_time=5),
    m.PositionChanged(source="v", symbol="ETH/BTC", quantity=-1, avg_price=0.1,
                      realized_pnl=0.0),
    m.PortfolioMarked(source="v", bar_seq=8, bar_time=5, cash=1, equity=1.1, exposure=0.1,
                      day=0, day_start_equity=1,
                      positions={"ETH/BTC": m.PositionSnapshot(quantity=1, avg_price=0.1,
                                                               mark=0.11)}),
    m.AgentHeartbeat(source="a", agent_id="a", role="risk", state=m.AgentState.RUNNING, pid=1,
                     started_at=1),
    m.AgentErrorRaised(source="a", agent_id="a", error="boom"),
    m.DeadLettered(source="a", agent_id="a", channel="orders", reason="bad", payload="{"),
    m.CircuitBreakerTripped(source="risk", reason="dd", drawdown=0.02, limit=0.02),
    m.AuditRecorded(source="c", actor="c", action="x", decision="approved", reason="r"),
    m.AgentCommand(source="o", target="*", command="stop"),
    m.ReplayFinished(source="md", bars=10, last_seq=10),
    m.OptimizerProgressed(source="optimizer", run_id="r1", strategy="sma_cross",
                          objective="sharpe", fold=0, folds=2, generation=3, generations=30,
                          best=1.5, mean=0.2, std=None, evaluations=120,
                          best_params={"fast": 12, "stop_atr": 2.5}),
    m.OptimizerFinished(
        source="optimizer", run_id="r1", strategy="sma_cross", objective="sharpe",
        symbols=["ETH/BTC"], best_params={"fast": 12, "slow": 40}, in_sample=2.0,
        out_of_sample=-0.5, mean_in_sample=1.8, mean_out_of_sample=None, overfit=True,
        folds=[m.FoldScore(fold=0, params={"fast": 12, "slow": 40}, in_sample=2.0,
                           out_of_sample=-0.5, overfit=True, is_start=1, is_end=2,
                           oos_start=2, oos_end=3)],
        evaluations=900, started_ns=1, finished_ns=2),
    m.RunOptimizer(source="api", run_id="r2", symbol="ETH/BTC", strategy="sma_cross",
                   population=8, generations=2, walk_forward=2, until_seq=42,
                   requested_by="api@127.0.0.1", reason="asked"),
    m.ParamsProposed(source="optimizer", run_id="r2", symbol="ETH/BTC", strategy="sma_cross",
                     params={"fast": 7, "stop_atr": 1.5}, current_strategy="sma_cross",
                     current_params={"fast": 10}, score=1.2, baseline=None, margin=0.1),
    m.UpdateStrategyParams(source="orchestrator", symbol="ETH/BTC", strategy="sma_cross",
                           params={"fast": 7, "stop_atr": 1.5}, after_seq=42, run_id="r2",
                           actor="api@127.0.0.1", reason="approved"),
    m.StrategyParamsUpdated(source="strategy:ETHBTC", agent_id="strategy:ETHBTC",
                            symbol="ETH/BTC", strategy="sma_cross", params={"fast": 7},
                            old_strategy="sma_cross", old_params={"fast": 10}, from_seq=43,
                            command_id="c1", run_id="r2"),
    m.RiskAlertRaised(source="risk", metric="var_99", level="warning", value=0.018,
                      limit=0.02, ratio=0.9, method="historical", reason="near limit"),
    m.ModelRetrainStatus(source="strategy:ETHBTC", model="ml_classifier", symbol="ETH/BTC",
                         status="finished", trigger="hit_rate", version=3, data_start=1,
                         data_end=2, bars=2000, cv_score=0.53),
    m.ModelMetricsReported(source="strategy:ETHBTC", model="ml_classifier", symbol="ETH/BTC",
                           version=3, hit_rate=0.48, predictions=50, window=50,
                           threshold=0.5, cv_score=0.53, bar_seq=900),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda x: type(x).__name__)
def test_every_message_round_trips(msg: m.Message) -> None:
    raw = msg.to_json()
    assert orjson.loads(raw)["type"]  # readable JSON with its type tag
    back = decode(raw)
    assert type(back) is type(msg)
    assert back == msg


def test_all_message_types_are_covered() -> None:
    union_members = m.AnyMessage.__origin__.__args__  # type: ignore[attr-defined]
    assert {type(s) for s in SAMPLES} == set(union_members)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"not json", "invalid JSON"),
        (b"[1,2]", "expected a JSON object"),
        (b'{"type": "nope", "source": "x"}', "invalid message"),
        (b'{"source": "x"}', "invalid message"),
        (orjson.dumps({**orjson.loads(SIG.to_json()), "confidence": 1.5}), "confidence"),
        (orjson.dumps({**orjson.loads(SIG.to_json()), "entry_price": -1}), "entry_price"),
        (orjson.dumps({**orjson.loads(SIG.to_json()), "side": "HOLD"}), "side"),
        (orjson.dumps({**orjson.loads(SIG.to_json()), "surprise": 1}), "surprise"),
        (orjson.dumps({**orjson.loads(SIG.to_json()), "bar_seq": "seven"}), "bar_seq"),
        (b'{"type":"bar_closed","source":"x","symbol":"A/B","open_time":1,"open":NaN}',
         "invalid JSON"),
        (b"x" * (m.MAX_PAYLOAD_BYTES + 1), "exceeds"),
    ],
)
def test_bad_payloads_are_rejected_with_reason(raw: bytes, fragment: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode(raw)
    assert fragment in str(err.value)


def test_client_order_id_is_deterministic_and_short() -> None:
    a = m.client_order_id_for(SIG.id)
    assert a == m.client_order_id_for(SIG.id)
    assert a != m.client_order_id_for(SIG.id, leg="c")
    assert a != m.client_order_id_for("another")
    assert len(a) <= 36 and a.startswith("tm-o-")


def test_stable_id_depends_on_every_part() -> None:
    assert m.stable_id("a", 1) == m.stable_id("a", 1)
    assert m.stable_id("a", 1) != m.stable_id("a", 2)
