"""``tradingmesh model``: train and list the ``ml_classifier`` model versions.

``tradingmesh model train --symbol ETH/BTC [--data DIR] [--until DATE]`` trains a model on
the symbol's OHLCV file (bars opening before ``--until``), saves it as the next version
under the models directory (``ml.model_dir``, default ``var/models``) and prints the
cross-validation scores and the files written.  ``tradingmesh model list [--symbol S]``
lists the saved versions with their metadata.

Hooked into the main CLI by ``register(app)`` (``orchestrator/cli/main.py``).  Bad input prints
one line ``error: ...`` on stderr and exits with code 2.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # annotations only: models, NumPy and scikit-learn load when a command runs
    from backend.marketdata.candles import Candles
    from backend.ml.model import ModelMeta, TrainedModel
    from backend.settings import Settings
    from backend.strategies.base import Strategy
    from backend.strategies.config import StrategyConfig

__all__ = ["backtest_strategy", "register"]

model_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Train and list ml_classifier model versions.")


def _fail(msg: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {' '.join(str(msg).split())}", err=True)
    return typer.Exit(code)


def _time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M")


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 120)


@model_app.command("train")
def train(
    symbol: str = typer.Option(..., help="BASE/QUOTE, e.g. ETH/BTC."),
    data: Path | None = typer.Option(None, help="Directory of BASE_QUOTE-<tf>.csv files "
                                                "[default: the settings' data_dir]."),
    until: str | None = typer.Option(None, help="Train on bars opening before this time "
                                                "(ISO 8601 or epoch) [default: all]."),
    horizon: int | None = typer.Option(None, help="Label horizon in bars [default: the "
                                                  "strategy's horizon parameter]."),
    c: float | None = typer.Option(None, "--C", help="Inverse L2 regularisation "
                                                     "[default: the strategy's C]."),
) -> None:
    """Train an ml_classifier model on a symbol's bars and save it as the next version."""
    import numpy as np

    from backend.marketdata.candles import DataError, load_dir, parse_timestamp
    from backend.ml.store import ModelStore, ModelStoreError, model_root
    from backend.ml.train import train_model  # scikit-learn: imported when needed
    from backend.settings import ConfigError, load_settings
    from backend.strategies.ml_classifier import MlClassifier

    try:
        settings = load_settings()
        overrides = {k: v for k, v in (("horizon", horizon), ("C", c)) if v is not None}
        params = MlClassifier.resolve_params(overrides)
        candles = load_dir(data or settings.data_dir, [symbol], settings.timeframe)
        bars = next(iter(candles.values()))
        end = len(bars)
        if until is not None:
            try:
                cut = parse_timestamp(until)
            except ValueError as exc:
                raise ValueError(f"--until {until!r}: {exc}") from None
            end = int(np.searchsorted(bars.time, cut, "left"))
        model = train_model(bars, symbol=bars.symbol, horizon=int(params["horizon"]),
                            C=float(params["C"]), end=end, trigger="manual")
        store = ModelStore(model_root(settings), bars.symbol)
        saved = store.save(model)
    except (ConfigError, DataError, ModelStoreError, ValueError) as exc:
        raise _fail(str(exc)) from None
    m = saved.meta
    out = _console()
    out.print(f"trained {m.model} v{m.version} for {m.symbol}: {m.bars} bars "
              f"{_time(m.data_start)} .. {_time(m.data_end)}, {m.rows} labelled rows, "
              f"horizon {m.horizon}, C {m.params.get('C')}, up share {m.up_share:.3f}",
              highlight=False, soft_wrap=True)
    folds = ", ".join(f"{s:.3f}" for s in m.cv_scores)
    cv = "-" if m.cv_score is None else f"{m.cv_score:.3f}"
    out.print(f"time-series CV accuracy ({len(m.cv_scores)} folds, gap {m.cv_gap} bars): "
              f"{folds}; mean {cv}", highlight=False)
    out.print(f"wrote {store.path(m.version)} and {store.path(m.version, '.json')}",
              highlight=False, soft_wrap=True)


def models_table(metas: list[ModelMeta]) -> Table:
    """Saved versions as a rich table."""
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("symbol", "version", "trained", "data from", "data to", "bars", "horizon",
                "C", "CV acc", "trigger"):
        t.add_column(col, justify="left" if col in ("symbol", "trigger") else "right",
                     no_wrap=True)
    for m in metas:
        t.add_row(m.symbol, str(m.version), _time(m.trained_at) if m.trained_at else "-",
                  _time(m.data_start), _time(m.data_end), str(m.bars), str(m.horizon),
                  f"{m.params.get('C', float('nan')):g}",
                  "-" if m.cv_score is None else f"{m.cv_score:.3f}", m.trigger)
    return t


@model_app.command("list")
def list_cmd(
    symbol: str | None = typer.Option(None, help="Only this BASE/QUOTE."),
) -> None:
    """List the saved ml_classifier model versions."""
    from backend.ml.store import list_models, model_root
    from backend.settings import ConfigError, load_settings

    try:
        root = model_root(load_settings())
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    metas = list_models(root, symbol)
    out = _console()
    if not metas:
        out.print(f"no models in {root}" + (f" for {symbol}" if symbol else ""),
                  highlight=False)
        return
    out.print(models_table(metas))
    out.print(f"models directory: {root}", highlight=False, soft_wrap=True)


def backtest_strategy(
    cfg: StrategyConfig, candles: dict[str, Candles], settings: Settings,
    version: int | None, sizing: str,
) -> tuple[StrategyConfig | Strategy, list[str]]:
    """What ``tradingmesh backtest`` runs for ``cfg``: an ``ml_classifier`` with stored
    models when there are some, else ``cfg`` unchanged.

    Parameters
    ----------
    cfg : StrategyConfig
        The strategy asked for (``--strategy``, ``--regimes``).
    candles : dict of str to Candles
        The backtest's series, by ``BASE/QUOTE``.
    settings : Settings
        For the models directory.
    version : int or None
        ``--model-version``: N >= 1 that stored version of every symbol; 0 self-training
        (the strategy trains on each series' first ``train_bars`` bars); ``None`` the
        latest stored version of every symbol, or self-training when none has one.
    sizing : str
        ``risk`` or ``all-in`` (both run the attached models).

    Returns
    -------
    (strategy, notes)
        ``cfg`` or a strategy instance with the models attached; one line per model used.

    Raises
    ------
    ValueError
        ``--model-version`` for another strategy, a missing or unreadable version, some
        symbols with stored models and others without.
    """
    from backend.ml.store import ModelStore, ModelStoreError, model_root
    from backend.strategies.build import build_strategy
    from backend.strategies.ml_attach import attach_model, find_ml

    strat = build_strategy(cfg)
    if find_ml(strat) is None:
        if version is not None:
            raise ValueError(f"--model-version is for ml_classifier, not {cfg.name!r}")
        return cfg, []
    if version == 0:
        return cfg, ["ml_classifier: self-training on each series' first train_bars bars"]
    root = model_root(settings)
    stores = {sym: ModelStore(root, sym) for sym in candles}
    if version is None:
        have = {sym for sym, st in stores.items() if st.latest() is not None}
        if not have:
            return cfg, ["ml_classifier: no stored model; self-training on each series' "
                         "first train_bars bars"]
        if have != set(candles):
            missing = ", ".join(sorted(set(candles) - have))
            raise ValueError(f"no stored ml_classifier model for {missing} (tradingmesh model "
                             "train --symbol ...), or pass --model-version 0 to self-train")
    models: dict[str, TrainedModel] = {}
    try:
        for sym, st in stores.items():
            models[sym] = st.load(version)
    except ModelStoreError as exc:
        raise ValueError(str(exc)) from None
    notes = [f"ml_classifier {sym}: model v{m.version} (trained on {m.meta.bars} bars to "
             f"{_time(m.meta.data_end)}, CV accuracy "
             f"{'-' if m.meta.cv_score is None else f'{m.meta.cv_score:.3f}'})"
             for sym, m in models.items()]
    return attach_model(strat, models), notes


def register(app: typer.Typer) -> None:
    """Add the ``model`` command group to ``app``."""
    app.add_typer(model_app, name="model")
