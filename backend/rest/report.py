"""REST body of the self-evaluation report (``GET /api/report``, ``tradingmesh report``),
re-exported by :mod:`backend.rest.models`.  Definitions: :mod:`backend.evaluation.build`.

Money in quote currency, fractions as plain fractions, times in ns UTC, durations in
seconds.
"""

from __future__ import annotations

from pydantic import Field

from backend.rest.base import ApiModel

ParamValue = float | int | str | bool


class BreakdownRow(ApiModel):
    """Closed trades of one symbol, strategy or regime.

    ``win_rate = wins / trades``; ``net_pnl`` net of fees; ``avg_return`` the mean
    return on notional; ``avg_duration_s`` the mean time from entry to exit fill.
    """

    name: str
    trades: int = 0
    wins: int = 0
    losses: int = 0
    win_rate: float | None = None
    gross_pnl: float = 0.0
    fees: float = 0.0
    net_pnl: float = 0.0
    avg_return: float | None = None
    avg_duration_s: float | None = None


class ParamChange(ApiModel):
    """One parameter the suggestion changes (``current`` ``None``: not set now)."""

    name: str
    current: ParamValue | None = None
    suggested: ParamValue | None = None


class ParamSuggestion(ApiModel):
    """A parameter change suggested by the latest finished optimizer run of a symbol and
    strategy.

    ``score`` is the run's mean out-of-sample score (``objective`` units);
    ``baseline`` the running parameters' score on the same windows when the optimizer
    agent measured it (``baseline_measured``; runs from ``tradingmesh optimize`` have
    none); ``status`` the proposal's state (``proposed``, ``not_proposed``, ``applied``)
    or ``unjudged``; ``suggested`` is True when the run beats the running parameters (or
    had no baseline), differs from them, is not flagged overfit and is not applied yet.
    """

    run_id: str
    symbol: str
    strategy: str
    objective: str
    finished_ts: int | None = None
    score: float | None = None
    in_sample: float | None = None
    baseline: float | None = None
    baseline_measured: bool = False
    overfit: bool | None = None
    status: str = "unjudged"
    suggested: bool = False
    reason: str = ""
    current_strategy: str = ""
    current_params: dict[str, ParamValue] = Field(default_factory=dict)
    params: dict[str, ParamValue] = Field(default_factory=dict)
    changes: list[ParamChange] = Field(default_factory=list)


class ReportPoint(ApiModel):
    """One point of the report's equity curve (``drawdown`` from the running peak)."""

    bar_time: int
    equity: float
    drawdown: float


class EvaluationReport(ApiModel):
    """How the mesh did over ``[since, until]`` (see :mod:`backend.evaluation.build`).

    Trades are the round trips whose entry fill is at or after ``since``; the curve
    figures (``max_drawdown``, ``sharpe``, ``sortino``, ``equity_return``) use the equity
    marks in the window, annualised with ``periods_per_year``.  ``by_regime`` groups
    trades by the regime of their entry signal (``unknown`` when none was recorded).
    ``equity`` is the curve, thinned to at most a few hundred points.
    """

    generated_ts: int
    since: int | None = None
    until: int | None = None
    initial_cash: float
    start_equity: float | None = None
    end_equity: float | None = None
    equity_return: float | None = None
    bars: int = 0
    periods_per_year: float
    trades: int = 0
    wins: int = 0
    losses: int = 0
    win_rate: float | None = None
    gross_pnl: float = 0.0
    fees: float = 0.0
    net_pnl: float = 0.0
    profit_factor: float | None = None
    avg_trade_duration_s: float | None = None
    open_trades: int = 0
    max_drawdown: float | None = None
    sharpe: float | None = None
    sortino: float | None = None
    by_symbol: list[BreakdownRow] = Field(default_factory=list)
    by_strategy: list[BreakdownRow] = Field(default_factory=list)
    by_regime: list[BreakdownRow] = Field(default_factory=list)
    best_symbol: str | None = None
    worst_symbol: str | None = None
    best_strategy: str | None = None
    worst_strategy: str | None = None
    suggestions: list[ParamSuggestion] = Field(default_factory=list)
    equity: list[ReportPoint] = Field(default_factory=list)
