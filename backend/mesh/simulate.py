"""In-process replay: the mesh's pipeline as one sequential loop (the backtest core).

For every bar, in the same (time, symbol) order and with the same ``seq`` as the
market_data agent, it runs exactly what the agents run, in the order the mesh's
back-pressure guarantees:

1. execution: :func:`backend.venues.paper.engine.on_bar` (fill resting orders at the open, brackets,
   mark at the close), then the portfolio mark;
2. risk: :func:`backend.risk.rules.update_breaker` on that mark;
3. strategy: :class:`backend.strategies.runner.StrategyRunner` for the bar's symbol;
4. compliance: :func:`backend.compliance.rules.check_signal`;
5. risk: :func:`backend.risk.rules.decide`, then (when ``risk.var_limit > 0``)
   :func:`backend.risk.var_limit.check_var_limit` on the closes of the bars so far;
6. execution: :func:`backend.venues.paper.engine.submit` (the order rests until the
   symbol's next bar).

Message ids are derived the same way as in the agents, so the fills of a mesh replay and of
this loop can be compared one to one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from backend.compliance.rules import ComplianceState, check_signal, utc_day
from backend.marketdata.candles import Candles
from backend.marketdata.history import CloseHistory
from backend.marketdata.replay_order import limit_per_symbol, merge_bars
from backend.mesh.pipeline import bar_message, order_message, signal_message
from backend.messages import OrderFilled, PortfolioMarked, SignalGenerated, SubmitOrder
from backend.risk import var_limit
from backend.risk.in_flight import InFlight, with_in_flight
from backend.risk.rules import RiskState, decide, update_breaker
from backend.settings import Settings
from backend.strategies.base import Strategy
from backend.strategies.build import build_strategy
from backend.strategies.runner import StrategyRunner
from backend.venues.paper import engine as paper
from backend.venues.paper.engine import PaperBook


@dataclass
class SimResult:
    """What a replay produced: every signal, decision, order, fill and mark."""

    signals: list[SignalGenerated] = field(default_factory=list)
    #: (signal id, stage, approved, rule)
    decisions: list[tuple[str, str, bool, str]] = field(default_factory=list)
    orders: list[SubmitOrder] = field(default_factory=list)
    fills: list[OrderFilled] = field(default_factory=list)
    marks: list[PortfolioMarked] = field(default_factory=list)
    book: PaperBook | None = None
    halted_at: int | None = None  # bar seq where the circuit breaker tripped


def simulate(
    settings: Settings,
    candles: dict[str, Candles],
    limit: int = 0,
    strategies: Mapping[str, Strategy] | None = None,
) -> SimResult:
    """Replay ``candles`` through strategy -> compliance -> risk -> paper venue in process.

    Parameters
    ----------
    settings
        Strategy, compliance, risk and paper settings (as the mesh would use them).
    candles
        Per-symbol candles (``backend.marketdata.candles.load_dir``); keys are venue symbols.
    limit
        At most this many bars per symbol (0 = all), like ``tradingmesh run --limit``.
    strategies
        Strategy instances by symbol that replace the one built from the settings (an
        ``ml_classifier`` with stored models attached, which configuration cannot hold);
        their parameters are still the settings' ``strategy_for(symbol).params``.

    Returns
    -------
    SimResult
        Signals, decisions, orders, fills and marks in the order they happened.
    """
    res = SimResult()
    book = PaperBook.new(settings.paper.initial_cash)
    comp = ComplianceState(day=-1, trades_today=0, last_approved={})
    risk = RiskState()
    closes = CloseHistory(var_limit.history_len(settings.risk)) \
        if var_limit.enabled(settings.risk) else None
    runners = {}
    for sym in candles:
        cfg = settings.strategy_for(sym)
        strat = strategies[sym] if strategies and sym in strategies else build_strategy(cfg)
        runners[sym] = StrategyRunner(strat, cfg.params, symbol=sym)
    order = limit_per_symbol(list(merge_bars(candles)), limit)
    for seq, (t, sym, i) in enumerate(order, start=1):
        bar = bar_message(candles[sym], i, seq, settings.timeframe, ts=int(t))
        # 1-2. execution matches the bar, risk sees the mark
        book, events = paper.on_bar(book, bar, settings.paper)
        res.fills += [e for e in events if isinstance(e, OrderFilled)]
        res.marks.append(paper.portfolio_mark(book, bar))
        view = paper.portfolio_view(book, seq, bar.open_time)
        risk, tripped = update_breaker(risk, view, settings.risk)
        if closes is not None:
            closes.append(sym, bar.open_time, bar.close, seq)
        if tripped:  # the risk agent cancels resting entries on a trip (orders stream)
            book, _ = paper.cancel_all(book, "circuit breaker", int(t), entries_only=True)
            if res.halted_at is None:
                res.halted_at = seq
        # 3. strategy
        runner = runners[sym]
        point = runner.on_bar(bar.open_time, bar.open, bar.high, bar.low, bar.close, bar.volume)
        if point is None:
            continue
        sig = signal_message(point, bar, runner.strategy.name, runner.params, ts=int(t))
        res.signals.append(sig)
        # 4. compliance
        notional = view.traded_notional_on(utc_day(sig.bar_time))
        cd, comp = check_signal(sig, comp, settings.compliance, notional)
        res.decisions.append((sig.id, "compliance", cd.approved, cd.rule))
        if not cd.approved:
            continue
        # 5. risk: the resting orders are in flight (the risk agent counts them the same)
        view = with_in_flight(view, [
            InFlight(symbol=o.symbol, side=o.side, quantity=o.quantity, price=o.ref_price,
                     reduce_only=o.reduce_only) for o in book.open_orders.values()],
            settings.paper.fee_rate)
        rd = decide(sig, view, risk, settings.risk, settings.paper.fee_rate)
        if closes is not None:
            rd = var_limit.check_var_limit(sig, rd, view, closes.series(), settings.risk)
        res.decisions.append((sig.id, "risk", rd.approved, rd.rule))
        if not rd.approved:
            continue
        # 6. execution
        order_msg = order_message(sig, rd, sig.id, ts=int(t))
        res.orders.append(order_msg)
        book, _ = paper.submit(book, order_msg, settings.paper, int(t))
    res.book = book
    return res
