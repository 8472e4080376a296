"""How each stage's message is derived from its input: one place for agents and replay.

The market_data, strategy and risk agents and the in-process replay
(:mod:`backend.mesh.simulate`) all build their outputs here, so ids (derived from the input
with :func:`backend.messages.stable_id`) and fields are the same in the mesh and in a
backtest by construction.  Pure functions; ``ts`` defaults to now (the agents) and the
replay passes the bar time.
"""

from __future__ import annotations

from backend.channels import compact_symbol
from backend.marketdata.candles import Candles
from backend.messages import (
    BarClosed,
    Side,
    SignalGenerated,
    SubmitOrder,
    client_order_id_for,
    now_ns,
    stable_id,
)
from backend.risk.rules import RiskDecision
from backend.strategies.base import SignalPoint


def bar_message(
    candles: Candles, i: int, seq: int, timeframe: str, ts: int | None = None,
    epoch: int = 1,
) -> BarClosed:
    """Row ``i`` of ``candles`` as the ``seq``-th bar of a replay in deployment ``epoch``
    (id from symbol and time)."""
    t = int(candles.time[i])
    bar_id = stable_id("bar", candles.symbol, t)
    return BarClosed(
        id=bar_id, ts=now_ns() if ts is None else ts, source="market_data",
        correlation_id=bar_id, symbol=candles.symbol, timeframe=timeframe, open_time=t,
        open=float(candles.open[i]), high=float(candles.high[i]), low=float(candles.low[i]),
        close=float(candles.close[i]), volume=float(candles.volume[i]), seq=seq, epoch=epoch,
    )


def signal_message(
    point: SignalPoint, bar: BarClosed, strategy: str, params: dict, ts: int | None = None
) -> SignalGenerated:
    """The signal a strategy's ``point`` on ``bar`` becomes (id from strategy, symbol, the
    bar's epoch, seq and open time: unique for the life of the database, so the client
    order id derived from it is too).

    The chain of correlation starts here: ``correlation_id == id``; entry price = close;
    ``regime`` is the point's market regime label (``""`` when the strategy has none).
    """
    sig_id = stable_id("signal", strategy, bar.symbol, bar.epoch, bar.seq, bar.open_time)
    return SignalGenerated(
        id=sig_id, ts=now_ns() if ts is None else ts,
        source=f"strategy:{compact_symbol(bar.symbol)}", correlation_id=sig_id,
        symbol=bar.symbol, side=Side.BUY if point.side > 0 else Side.SELL,
        confidence=float(point.confidence), entry_price=bar.close,
        stop_loss=float(point.stop_loss), take_profit=float(point.take_profit),
        reason=point.reason[:500], strategy=strategy, params=dict(params),
        bar_seq=bar.seq, bar_time=bar.open_time, regime=point.regime,
    )


def order_message(
    signal: SignalGenerated, decision: RiskDecision, correlation_id: str, ts: int | None = None,
    ttl_s: float = 0.0,
) -> SubmitOrder:
    """The order risk sends for an approved ``decision`` (client order id from the signal;
    sized at the signal's entry price; with ``ttl_s`` > 0 it expires ``ttl_s`` after ``ts``
    if it was never sent)."""
    ts = now_ns() if ts is None else ts
    return SubmitOrder(
        id=stable_id("order", signal.id), ts=ts, source="risk",
        correlation_id=correlation_id, client_order_id=client_order_id_for(signal.id),
        symbol=signal.symbol, side=decision.side, quantity=decision.quantity,
        reduce_only=decision.reduce_only, stop_loss=decision.stop_loss,
        take_profit=decision.take_profit, signal_id=signal.id, bar_seq=signal.bar_seq,
        ref_price=signal.entry_price,
        expires_at=ts + int(ttl_s * 1e9) if ttl_s > 0 else None,
    )
