"""Machine-learning classifier strategy (``"ml_classifier"``, scikit-learn).

Model
-----
A logistic regression on standardised OHLCV features (:mod:`backend.ml.features`:
returns over 1-24 bars, Cutler RSI, distances to SMAs, Bollinger z-score, ATR%, return
volatility, bar shape, volume z-score) predicts ``p_up``, the probability that the close
``horizon`` bars ahead is above this bar's close (:mod:`backend.ml.train`, trained with
time-series cross-validation).

Signal
------
With ``thr = threshold``, the bar's *zone* is long when ``p_up >= thr``, short when
``p_up <= 1 - thr``, neutral otherwise.  A signal is emitted when the zone *changes* to
long (buy) or to short (sell) at the close of bar ``i`` (not on every bar inside it);
the risk agent closes or reverses an open position on the opposite signal.  Stop loss
and take profit are ATR brackets (ATR = mean true range over ``atr_period`` bars).

Confidence
----------
With ``q = p_up`` for a buy and ``1 - p_up`` for a sell (the model's probability of the
signal's side), ``confidence = q^K / (q^K + (1 - q)^K)`` with ``K = 4``, i.e. the odds
raised to the power ``K`` (``logit(conf) = K * logit(q)``).  It is 0.5 at ``q = 0.5``
and reaches the risk agent's 0.85 at ``q ~= 0.61``: logistic-regression probabilities on
5-minute returns are compressed towards 0.5 (1st-99th percentile about 0.25-0.75 on the
sample data), so ``K`` stretches them onto the scale the risk gate uses.  On the shipped
data (default parameters, model trained on the first 2/3, signals of the last 1/3) 15% of
ETH/BTC's and 55% of LTC/BTC's signals reach 0.85 (``docs/strategies.md``).

Two modes
---------
* **Model attached** (:class:`FittedMlClassifier`, ``FittedMlClassifier(model)`` or
  ``FittedMlClassifier({"ETH/BTC": m, ...})``):
  the given fitted model(s) predict every bar; the parameters ``horizon``, ``C`` and
  ``train_bars`` are those the model was trained with and are not used here.  The signal
  at bar ``i`` depends on bars ``i - warmup + 1 .. i`` only (finite memory, bit-exact:
  :meth:`TrainedModel.p_up` is evaluated row by row), so a
  :class:`~backend.strategies.runner.StrategyRunner` gives the backtest's signals.  The
  live strategy agent always runs this mode, with a stored model version
  (:mod:`backend.ml.store`, :mod:`agents.strategy_models`).
* **Self-training** (``MlClassifier()``, what ``get_strategy("ml_classifier")`` gives):
  for the backtester and the optimizer.  ``generate`` trains a model on the first
  ``train_bars`` bars of the series it is given (labels only from inside that prefix) and
  predicts from bar ``train_bars`` on; no signal before.  No look-ahead: a signal at bar
  ``i`` uses bars ``0 .. i`` only.  Models are memoised by the training data and
  hyper-parameters, so parameter sets that differ only in ``threshold`` or the brackets
  (the optimizer's population) train once.  It does not have finite memory: a
  ``StrategyRunner`` of it retrains on each tail window (slow, not the backtest's
  signals); use :meth:`MlClassifier.fit_prefix` to get the equivalent attached instance
  for bar-by-bar use (``--sizing risk``).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from backend import indicators as ind
from backend.channels import compact_symbol
from backend.ml.features import FEATURE_WARMUP, feature_matrix
from backend.ml.model import TrainedModel
from backend.strategies.base import OHLCV, ParamSpec, SignalFrame, Strategy, finish

__all__ = ["CONF_SHARPNESS", "FittedMlClassifier", "MlClassifier", "confidence_of"]

#: ``K`` of the confidence mapping ``logit(confidence) = K * logit(q)``.
CONF_SHARPNESS = 4.0
_CACHE_SIZE = 8


def confidence_of(q: np.ndarray) -> np.ndarray:
    """``q^K / (q^K + (1-q)^K)``, ``K = CONF_SHARPNESS``: the model's probability of the
    signal's side ``q`` (shape ``(n,)``, in [0, 1]) mapped to a confidence in [0, 1]."""
    q = np.asarray(q, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        a, b = q ** CONF_SHARPNESS, (1.0 - q) ** CONF_SHARPNESS
        return a / (a + b)


class MlClassifier(Strategy):
    """Logistic-regression direction classifier with ATR stop and target.

    This class (the registered one) is the self-training mode; see
    :class:`FittedMlClassifier` for predicting with given models.
    """

    name = "ml_classifier"
    params = (
        ParamSpec("horizon", "int", 1, 48, 6, "label horizon: sign of the return over this "
                                              "many bars (self-training / retraining)"),
        ParamSpec("threshold", "float", 0.5, 0.95, 0.55, "buy when p_up >= threshold, sell "
                                                          "when p_up <= 1 - threshold"),
        ParamSpec("train_bars", "int", 300, 4500, 2000, "bars of training data: the series' "
                  "first train_bars (self-training), the last held (live retraining; the "
                  "agent holds <= 5000)"),
        ParamSpec("C", "float", 0.001, 100.0, 1.0, "inverse L2 regularisation of the "
                                                    "logistic regression"),
        ParamSpec("atr_period", "int", 2, 100, 14, "ATR window (bars), mean of true range"),
        ParamSpec("stop_atr", "float", 0.5, 10.0, 2.0, "stop-loss distance in ATRs"),
        ParamSpec("reward_risk", "float", 0.5, 10.0, 2.0, "take-profit / stop-loss distance"),
    )

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple, TrainedModel] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Pickles without the lock and the memo (the optimizer ships strategies to
        worker processes)."""
        state = dict(self.__dict__)
        state.pop("_lock", None)
        state["_cache"] = OrderedDict()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ models
    @property
    def attached(self) -> bool:
        """True when the instance predicts with given model(s) (not self-training)."""
        return False

    @property
    def models(self) -> dict[str, TrainedModel]:
        """The attached models by compact symbol (``"*"`` for a single shared model)."""
        return {}

    @property
    def finite_memory(self) -> bool:
        """Only with attached models: self-training fits on the first ``train_bars`` of
        the series it is given, which for the runner is its sliding window."""
        return self.attached

    def model_for(self, bars: OHLCV) -> TrainedModel:
        """The attached model that predicts ``bars`` (ValueError: none attached)."""
        raise ValueError("ml_classifier: self-training instance, no model attached")

    @classmethod
    def fit_prefix(cls, candles: Mapping[str, OHLCV],
                   params: Mapping[str, Any] | None = None) -> FittedMlClassifier:
        """An attached instance whose model for each series is trained on its first
        ``train_bars`` bars: the same signals as the self-training mode, but with finite
        memory (bar-by-bar use, ``--sizing risk``).

        Raises
        ------
        ValueError
            Bad parameters or too little data to train.
        """
        p = cls.resolve_params(params)
        return FittedMlClassifier({sym: _train_prefix(bars, sym, p)
                                   for sym, bars in candles.items()})

    # ------------------------------------------------------------ signals
    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        """Attached: ``max(FEATURE_WARMUP, atr_period + 1) + 1`` bars (51 by default: one
        bar more for the zone change); self-training: ``train_bars + 1``."""
        p = self.resolve_params(params)
        if self.attached:
            return max(FEATURE_WARMUP, int(p["atr_period"]) + 1) + 1
        return int(p["train_bars"]) + 1

    def p_up(self, bars: OHLCV, params: Mapping[str, Any] | None = None) -> np.ndarray:
        """``p_up`` of every bar, shape ``(n,)`` in [0, 1]; NaN where not predicted (warm-up,
        and before bar ``train_bars - 1`` in self-training mode)."""
        p = self.resolve_params(params)
        return self._predict(bars, p)[0]

    def _predict(self, bars: OHLCV, p: dict[str, int | float],
                 ) -> tuple[np.ndarray, TrainedModel | None]:
        n = len(bars.close)
        if self.attached:
            model = self.model_for(bars)
            return model.p_up(feature_matrix(bars)), model
        t = int(p["train_bars"])
        if n < t + 1:
            return np.full(n, np.nan), None
        key = (_fingerprint(bars, t), t, int(p["horizon"]), float(p["C"]))
        with self._lock:
            model = self._cache.get(key)
            if model is not None:
                self._cache.move_to_end(key)
        if model is None:
            model = _train_prefix(bars, getattr(bars, "symbol", "") or "?", p)
            with self._lock:
                self._cache[key] = model
                while len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        out = model.p_up(feature_matrix(bars))
        out[: t - 1] = np.nan  # only bars whose whole history is the training data or later
        return out, model

    def _generate(self, bars: OHLCV, params: dict[str, int | float]) -> SignalFrame:
        close = np.asarray(bars.close, dtype=np.float64)
        thr = float(params["threshold"])
        pup, model = self._predict(bars, params)
        atr_n = int(params["atr_period"])
        atr = ind.atr_sma(bars.high, bars.low, close, atr_n)
        with np.errstate(invalid="ignore"):
            long_ = pup >= thr
            short = (pup <= 1.0 - thr) & ~long_
        zone = long_.astype(np.int8) - short.astype(np.int8)
        prev = np.empty_like(zone)
        prev[:1] = 0
        prev[1:] = zone[:-1]
        side = np.where((zone != 0) & (zone != prev), zone, 0).astype(np.int8)
        first = max(FEATURE_WARMUP, atr_n + 1) if self.attached else int(params["train_bars"])
        side[:first] = 0  # the earliest signal is at bar warmup - 1 (see warmup)
        q = np.where(side > 0, pup, 1.0 - pup)
        conf = confidence_of(q)
        version = model.version if model is not None else 0
        cv = model.meta.cv_score if model is not None else None
        horizon = model.meta.horizon if model is not None else int(params["horizon"])

        def reason(i: int) -> str:
            word = "up" if side[i] > 0 else "down"
            tag = f"model v{version}" if version else "self-trained model"
            cvs = f", CV accuracy {cv:.3f}" if cv is not None else ""
            return (f"{tag} predicts {word} over {horizon} bars: p_up {pup[i]:.3f} "
                    f"({'>=' if side[i] > 0 else '<='} {thr if side[i] > 0 else 1 - thr:.3f}"
                    f"{cvs}); close {close[i]:.8g}; ATR({atr_n}) {atr[i]:.3g}; "
                    f"confidence {conf[i]:.2f}")

        return finish(bars, side, conf, atr, params, reason)


class FittedMlClassifier(MlClassifier):
    """``ml_classifier`` predicting with fixed, already trained model(s).

    Same name and parameters as :class:`MlClassifier` (so a signal says
    ``ml_classifier``), but not the registered class: it cannot be rebuilt from a
    configuration (its models are not in it).

    Parameters
    ----------
    model : TrainedModel or mapping of str to TrainedModel
        One model for every series, or one per symbol (keyed by ``BASE/QUOTE`` in any
        form; the series' ``symbol`` attribute picks it).
    """

    def __init__(self, model: TrainedModel | Mapping[str, TrainedModel]) -> None:
        super().__init__()
        self._single: TrainedModel | None = None
        self._by_symbol: dict[str, TrainedModel] = {}
        if isinstance(model, TrainedModel):
            self._single = model
        else:
            self._by_symbol = {compact_symbol(k): m for k, m in model.items()}
            if not self._by_symbol:
                raise ValueError("FittedMlClassifier needs at least one model")

    @property
    def attached(self) -> bool:
        """Always True."""
        return True

    @property
    def models(self) -> dict[str, TrainedModel]:
        """The models by compact symbol (``"*"`` for a single shared model)."""
        return {"*": self._single} if self._single is not None else dict(self._by_symbol)

    def model_for(self, bars: OHLCV) -> TrainedModel:
        """The model that predicts ``bars``.

        Raises
        ------
        ValueError
            No model for the series' symbol.
        """
        if self._single is not None:
            return self._single
        sym = getattr(bars, "symbol", None)
        m = self._by_symbol.get(compact_symbol(sym)) if sym else None
        if m is None:
            have = ", ".join(sorted(self._by_symbol))
            raise ValueError(f"ml_classifier: no model for symbol {sym!r} (models: {have})")
        return m


def _train_prefix(bars: OHLCV, symbol: str, p: Mapping[str, Any]) -> TrainedModel:
    """A model trained on the first ``train_bars`` bars of ``bars``."""
    from backend.ml.train import train_model  # scikit-learn: imported when first needed

    return train_model(bars, symbol=symbol, horizon=int(p["horizon"]), C=float(p["C"]),
                       end=int(p["train_bars"]))


def _fingerprint(bars: OHLCV, n: int) -> str:
    """Digest of the first ``n`` bars (times and OHLCV)."""
    h = hashlib.blake2b(digest_size=16)
    for name in ("time", "open", "high", "low", "close", "volume"):
        h.update(np.ascontiguousarray(getattr(bars, name)[:n]).tobytes())
    return h.hexdigest()
