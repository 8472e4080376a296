"""Parity of the compiled kernel with :func:`backend.mesh.simulate.simulate`, checked over
random configurations (the property the kernel lives by).

:func:`random_case` draws one configuration: a strategy's parameters inside their
declared ranges, risk limits (fixed-fractional or Kelly sizing, shorts, a breaker that
trips or not), compliance limits (trades and notional per day, trading hours, restricted
symbols, duplicate window), paper fees and slippage, and a window of one to three of the
sample's symbols.  :func:`mismatches` replays it both ways and lists every difference:
signals, decisions, orders and fills compared as messages (ids, prices, quantities,
fees), marks' equity and positions bit for bit, the bar the breaker tripped at.

``tests/unit/backend/backtest/test_kernel_parity.py`` runs a few seeded cases per
strategy; ``benchmarks/kernel_parity.py`` runs hundreds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.backtest.kernel_run import replay
from backend.marketdata.candles import Candles
from backend.mesh.simulate import SimResult, simulate
from backend.settings import Settings
from backend.strategies.registry import get_strategy

__all__ = ["Case", "mismatches", "random_case"]


@dataclass(frozen=True)
class Case:
    """One random configuration: settings and the candles (already cut) to replay."""

    seed: int
    strategy: str
    settings: Settings
    candles: dict[str, Candles]

    def describe(self) -> str:
        """One line naming the case (to reproduce a failure)."""
        bars = {s: len(c) for s, c in self.candles.items()}
        return f"seed {self.seed} strategy {self.strategy} bars {bars}"


def _params(rng: np.random.Generator, strategy: str, max_warmup: int) -> dict[str, float]:
    """Parameters drawn inside the declared ranges with a warm-up that fits."""
    strat = get_strategy(strategy)
    for _ in range(50):
        params: dict[str, float] = {}
        for p in strat.params:  # around the default (log-normal), inside the range
            base = p.default if p.default > 0 else (p.high - p.low) / 4 or 1.0
            v = float(np.clip(base * np.exp(rng.normal(0.0, 0.6)), p.low, p.high))
            if rng.random() < 0.2:
                v = float(p.default)
            params[p.name] = int(round(v)) if p.kind == "int" else v
        try:
            if strat.warmup(params) <= max_warmup:
                return params
        except ValueError:
            continue
    return {}


def random_case(seed: int, strategy: str, candles: dict[str, Candles],
                bars: tuple[int, int] = (300, 700)) -> Case:
    """A random configuration for ``strategy`` over a random window of ``candles``.

    Parameters
    ----------
    seed
        Seeds everything drawn (the case is reproducible from it).
    strategy
        Registry name.
    candles
        The sample's candles by symbol (time ascending).
    bars
        Range of the window's length per symbol, beyond the strategy's warm-up.
    """
    rng = np.random.default_rng(seed)
    names = sorted(candles)
    k = int(rng.integers(1, min(3, len(names)) + 1))
    chosen = sorted(rng.choice(names, size=k, replace=False).tolist())
    warm_cap = 2 * bars[1] if strategy != "ml_classifier" else 420
    params = _params(rng, strategy, warm_cap)
    warmup = get_strategy(strategy).warmup(params or None)
    length = warmup + int(rng.integers(bars[0], bars[1] + 1))
    cut = {}
    for s in chosen:
        c = candles[s]
        n = min(length, len(c))
        start = int(rng.integers(0, len(c) - n + 1))
        cut[s] = c.slice(start, start + n)
    u = rng.uniform
    risk = {
        "risk_per_trade": float(u(0.002, 0.3)), "max_position_pct": float(u(0.05, 3.0)),
        "max_symbol_exposure_pct": float(u(0.05, 3.0)),
        "max_total_exposure_pct": float(u(0.1, 5.0)),
        "min_confidence": float(rng.choice([0.0, u(0.0, 0.95)])),
        "daily_drawdown_limit": float(rng.choice([1.0, u(0.002, 0.08)])),
        "allow_short": bool(rng.random() < 0.5),
        "sizing": "kelly" if rng.random() < 0.3 else "fixed_fractional",
        "kelly_fraction": float(u(0.05, 1.0)), "kelly_cap": float(u(0.005, 0.5)),
        "kelly_win_rate": float(rng.choice([0.0, u(0.3, 0.8)])),
    }
    hours = (0, 24) if rng.random() < 0.6 else (int(rng.integers(0, 24)), int(rng.integers(0, 25)))
    restricted = [s for s in chosen if rng.random() < 0.15]
    compliance = {
        "max_trades_per_day": int(rng.choice(np.array([1000, rng.integers(0, 30)]))),
        "max_notional_per_day": float(rng.choice([1e12, u(0.01, 20.0)])),
        "trading_hours_utc": hours, "restricted_symbols": restricted,
        "duplicate_window_s": float(rng.choice([0.0, 300.0, u(0.0, 86_400.0)])),
    }
    paper = {"initial_cash": float(u(0.05, 20.0)), "fee_rate": float(u(0.0, 0.005)),
             "slippage_bps": float(u(0.0, 25.0))}
    settings = Settings(
        default_strategy={"name": strategy, "params": params}, risk=risk,
        compliance=compliance, paper=paper)
    return Case(seed, strategy, settings, cut)


def mismatches(case: Case, sim: SimResult | None = None) -> list[str]:
    """Every difference between the kernel's replay of ``case`` and ``simulate``'s
    (empty: identical); ``sim``: ``simulate``'s result if already run."""
    a = sim if sim is not None else simulate(case.settings, case.candles)
    b = replay(case.settings, case.candles)
    out = []
    for name in ("signals", "decisions", "orders", "fills"):
        x, y = getattr(a, name), getattr(b, name)
        if x != y:
            first = next((k for k, (p, q) in enumerate(zip(x, y, strict=False)) if p != q),
                         min(len(x), len(y)))
            out.append(f"{name}: {len(x)} vs {len(y)}, first difference at #{first}: "
                       f"{x[first] if first < len(x) else None!r} vs "
                       f"{y[first] if first < len(y) else None!r}")
    eq = np.array([m.equity for m in a.marks])
    if not np.array_equal(eq, b.equity):
        bad = int(np.flatnonzero(eq != b.equity)[0]) if eq.shape == b.equity.shape else -1
        out.append(f"equity differs (first at bar seq {bad + 1})")
    syms = b.bars.symbols
    for i, m in enumerate(a.marks):
        got = {syms[k]: tuple(b.positions[i, k]) for k in np.flatnonzero(b.positions[i, :, 0])}
        want = {s: (p.quantity, p.avg_price, p.mark) for s, p in m.positions.items()}
        if got != want:
            out.append(f"positions differ at bar seq {i + 1}: {want} vs {got}")
            break
    if a.halted_at != b.halted_at:
        out.append(f"breaker tripped at {a.halted_at} vs {b.halted_at}")
    return out
