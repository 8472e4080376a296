"""ML model versions in a strategy agent running ``ml_classifier`` (thin glue).

The strategy agent (:mod:`agents.strategy`) calls three hooks; for any other strategy
they do nothing:

* :meth:`ModelManager.setup` after the bar history is rebuilt: restore the ML state
  (:class:`backend.ml.live.MlAgentState`) and load the active version -- from the state,
  else the store's latest for the symbol, else none yet.  A model is only used on bars
  after its training data: one trained on later bars (a replay started again with the
  models of a previous run) is dropped with an error, and a new one trained;
* :meth:`ModelManager.on_bar` for each bar, after the bar is appended and before its
  signal: adopt a pending version whose ``after_seq`` is behind the bar (audit row,
  ``ModelRetrainStatus(status="adopted")``), attach the active model to the runner,
  feed the hit-rate monitor, publish :class:`~backend.messages.ModelMetricsReported`
  every ``ml.metrics_every_bars`` bars, and retrain when the rule says so (or train the
  first model, trigger ``initial``, once ``ml.min_train_bars`` bars are held).  Returns
  the runner that computes this bar's signal, or ``None`` (no model yet: no signal);
* :meth:`ModelManager.after_commit` once the bar's transaction executed.

Training runs in a worker thread (``asyncio.to_thread``) inside the bar's handling, on the
last ``train_bars`` bars the agent holds (its history, rebuilt from the ``market_data``
stream on restart).  The new version is saved to the store, announced
(``started`` published at once, ``finished``/``failed`` in the bar's transaction on
``retrain_status``) and adopted on the next bar.  The ML state is written in every bar's
transaction, so a restart keeps the active version, a pending one and the monitor.  A
missing or corrupt model file is reported on ``agent:errors`` and the agent carries on
without it (training a new one when it can); nothing here stops the agent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from backend import channels
from backend.bus import Bus
from backend.messages import (
    AuditRecorded,
    BarClosed,
    Message,
    ModelMetricsReported,
    ModelRetrainStatus,
    stable_id,
)
from backend.ml.features import FEATURE_WARMUP, feature_matrix
from backend.ml.live import (
    ActiveModel,
    HitRateMonitor,
    MlAgentState,
    PendingModel,
    ml_state_key,
    parse_ml_state,
    retrain_trigger,
)
from backend.ml.model import MODEL_NAME, TrainedModel
from backend.ml.store import ModelStore, ModelStoreError, model_root
from backend.persistence import Store
from backend.settings import Settings
from backend.strategies.ml_attach import attach_model, find_ml
from backend.strategies.runner import StrategyRunner

__all__ = ["ModelManager", "StrategyPort"]


class StrategyPort(Protocol):
    """What the model manager needs of its strategy agent (a protocol: no reference to
    the agent's class, so no import cycle)."""

    settings: Settings
    symbol: str
    agent_id: str
    store: Store
    redis: Redis | None
    bus: Bus | None
    log: logging.Logger

    def emit(self, pipe: Pipeline, channel: str, msg: Message) -> None:
        """Stage a message in the transaction."""

    async def report_error(self, error: str, fatal: bool = False) -> None:
        """Publish an error (and stop on a fatal one)."""


def _is_ml(runner: StrategyRunner) -> bool:
    return find_ml(runner.strategy) is not None


class ModelManager:
    """The model versions, hit-rate monitor and retraining of one strategy agent.

    Parameters
    ----------
    agent : StrategyPort
        The agent (its settings, symbol, bus, store, error reporting).
    """

    def __init__(self, agent: StrategyPort) -> None:
        self.agent = agent
        self.cfg = agent.settings.ml
        self.symbol = agent.symbol
        self.store = ModelStore(model_root(agent.settings), agent.symbol)
        self.state = MlAgentState()
        self.model: TrainedModel | None = None
        self._staged: tuple[MlAgentState, TrainedModel | None] | None = None
        self.last_train_s: float | None = None
        self._loaded = False

    # ------------------------------------------------------------------ hooks
    async def setup(self, runner: StrategyRunner) -> StrategyRunner:
        """Restore the ML state and (for ``ml_classifier``) the active model; ``runner``
        with it attached."""
        assert self.agent.redis is not None
        raw = await self.agent.redis.get(ml_state_key(self.agent.agent_id))
        self.state = parse_ml_state(raw) or MlAgentState()
        if not _is_ml(runner):
            return runner
        await self._load_active()
        st = self.state
        self.agent.log.info("ml_classifier model %s (%d bars held)%s",
                            f"v{st.active.version}" if st.active else "none yet", len(runner),
                            f"; v{st.pending.version} pending" if st.pending else "")
        return self.attach(runner)

    async def _load_active(self) -> None:
        """Load the state's active version, else the store's latest (once)."""
        self._loaded = True
        st = self.state
        if st.active is None and st.pending is None:
            latest = await asyncio.to_thread(self.store.latest)
            if latest is not None:
                st.active = ActiveModel(version=latest, trigger="store")
        if st.active is None:
            return
        try:
            self.model = await asyncio.to_thread(self.store.load, st.active.version)
            st.active = _active(self.model, st.active.since_seq, st.active.trigger)
        except ModelStoreError as exc:
            await self.agent.report_error(f"model v{st.active.version} of {self.symbol} not "
                                          f"loaded ({exc}); running without a model")
            st.active = None

    def discard(self) -> None:
        """Forget what an input that did not commit staged."""
        self._staged = None

    def attach(self, runner: StrategyRunner, model: TrainedModel | None = None) -> StrategyRunner:
        """``runner`` predicting with ``model`` (default: the active one) when it runs
        ``ml_classifier``; unchanged otherwise (or without a model)."""
        model = model or self.model
        if model is None or not _is_ml(runner):
            return runner
        ml = find_ml(runner.strategy)
        assert ml is not None
        if ml.models.get("*") is model:
            return runner
        return runner.with_params(runner.params, attach_model(runner.strategy, model))

    async def on_bar(self, bar: BarClosed, runner: StrategyRunner,
                     pipe: Pipeline) -> StrategyRunner | None:
        """Model work for one bar (see the module docstring).

        Returns
        -------
        StrategyRunner or None
            The runner whose :meth:`~StrategyRunner.latest` is this bar's signal, or
            ``None`` when there is no model yet (no signal).
        """
        self._staged = None
        if not _is_ml(runner):
            return runner
        if not self._loaded:  # switched to ml_classifier by a hot reload
            await self._load_active()
        st = self.state.model_copy(deep=True)
        model = self.model
        if st.pending is not None and bar.seq > st.pending.after_seq:
            model = await self._adopt(st, model, bar, pipe)
        if model is not None and model.meta.data_end >= bar.open_time:
            # trained on this bar or later ones (a stored model from a previous run of a
            # replay): using it would look ahead
            await self.agent.report_error(
                f"model v{model.version} of {self.symbol} was trained on bars up to "
                f"{model.meta.data_end}, not before bar {bar.seq} ({bar.open_time}): not used")
            model, st.active = None, None
        runner = self.attach(runner, model)
        if model is None:
            if st.retry_wait > 0:
                st.retry_wait -= 1
            elif st.pending is None and len(runner) >= self.cfg.min_train_bars:
                await self._retrain(st, "initial", bar, runner, pipe)
            self._stage(pipe, st, model)
            return None
        self._monitor(st, model, bar, runner, pipe)
        if st.pending is None:
            if st.retry_wait > 0:
                st.retry_wait -= 1
            else:
                trigger = retrain_trigger(
                    st.hit_rate, st.resolved, st.bars_since_train,
                    threshold=self.cfg.hit_rate_threshold,
                    min_predictions=self.cfg.min_predictions,
                    every_bars=self.cfg.retrain_every_bars)
                if trigger is not None:
                    await self._retrain(st, trigger, bar, runner, pipe)
        self._stage(pipe, st, model)
        return runner

    def after_commit(self) -> None:
        """Adopt the state and model of the bar whose transaction just executed."""
        staged, self._staged = self._staged, None
        if staged is not None:
            self.state, self.model = staged

    # ------------------------------------------------------------------ steps
    def _stage(self, pipe: Pipeline, st: MlAgentState, model: TrainedModel | None) -> None:
        pipe.set(ml_state_key(self.agent.agent_id), st.to_json())
        self._staged = (st, model)

    def _status(self, status: str, trigger: str, bar: BarClosed, model: TrainedModel | None,
                error: str = "") -> ModelRetrainStatus:
        m = model.meta if model is not None else None
        return ModelRetrainStatus(
            id=stable_id("model_status", self.agent.agent_id, bar.seq, status,
                         m.version if m else 0),
            source=self.agent.agent_id, model=MODEL_NAME, symbol=self.symbol, status=status,
            trigger=trigger, version=m.version if m else 0,
            data_start=m.data_start if m else 0, data_end=m.data_end if m else 0,
            bars=m.bars if m else 0, cv_score=m.cv_score if m else None, error=error[:2000])

    async def _adopt(self, st: MlAgentState, old: TrainedModel | None, bar: BarClosed,
                     pipe: Pipeline) -> TrainedModel | None:
        """Switch to the pending version from this bar on."""
        p = st.pending
        assert p is not None
        st.pending = None
        try:
            new = await asyncio.to_thread(self.store.load, p.version)
        except ModelStoreError as exc:
            await self.agent.report_error(f"model v{p.version} of {self.symbol} not adopted: "
                                          f"{exc}")
            self.agent.emit(pipe, channels.RETRAIN_STATUS,
                            self._status("failed", p.trigger, bar, None, str(exc)))
            st.retry_wait = self.cfg.retry_after_bars
            return old
        st.active = _active(new, bar.seq, p.trigger)
        st.monitor.calls, st.monitor.outcomes = [], ""
        st.hit_rate, st.resolved, st.bars_since_train = None, 0, 0
        was = f"v{old.version}" if old is not None else "no model"
        audit = AuditRecorded(
            id=stable_id("audit", "ml_model_switched", self.agent.agent_id, p.version,
                         bar.seq),
            source=self.agent.agent_id, actor=self.agent.agent_id, action="ml_model_switched",
            decision="applied",
            reason=(f"{self.symbol}: {MODEL_NAME} {was} -> v{p.version} from bar seq "
                    f"{bar.seq} (trigger {p.trigger}, trained after seq {p.after_seq}, "
                    f"CV accuracy {_fmt(new.meta.cv_score)})")[:1000],
            subject_id=f"{self.symbol}:{MODEL_NAME}:v{p.version}")
        await asyncio.to_thread(self.agent.store.record_audit_event, audit)
        self.agent.emit(pipe, channels.AUDIT, audit)
        self.agent.emit(pipe, channels.RETRAIN_STATUS, self._status("adopted", p.trigger, bar, new))
        self.agent.log.warning("%s: model %s -> v%d from bar seq %d (%s)", self.symbol, was,
                               p.version, bar.seq, p.trigger)
        return new

    def _monitor(self, st: MlAgentState, model: TrainedModel, bar: BarClosed,
                 runner: StrategyRunner, pipe: Pipeline) -> None:
        """Feed this bar's call to the hit-rate monitor; publish metrics when due."""
        tail = runner.history(FEATURE_WARMUP)
        p_up = float(model.p_up(feature_matrix(tail))[-1])
        mon = HitRateMonitor(model.meta.horizon, self.cfg.hit_rate_window, st.monitor)
        mon.observe(st.bars, float(bar.close), p_up)
        st.monitor, st.hit_rate, st.resolved = mon.state(), mon.hit_rate, mon.resolved
        st.bars += 1
        st.bars_since_train += 1
        if st.bars % self.cfg.metrics_every_bars == 0:
            self.agent.emit(pipe, channels.MODEL_METRICS, ModelMetricsReported(
                id=stable_id("model_metrics", self.agent.agent_id, bar.seq),
                source=self.agent.agent_id, model=MODEL_NAME, symbol=self.symbol,
                version=model.version, hit_rate=st.hit_rate, predictions=st.resolved,
                window=self.cfg.hit_rate_window, threshold=self.cfg.hit_rate_threshold,
                cv_score=model.meta.cv_score, bar_seq=bar.seq))

    async def _retrain(self, st: MlAgentState, trigger: str, bar: BarClosed,
                       runner: StrategyRunner, pipe: Pipeline) -> None:
        """Train on the held bars, save a version, make it pending (adopted next bar)."""
        from backend.ml.train import train_model  # scikit-learn: imported when needed

        assert self.agent.bus is not None
        params = runner.params
        bars = runner.history(int(params["train_bars"]))
        st.bars_since_train = 0
        try:  # "started" goes out at once (best effort); the outcome with the transaction
            await self.agent.bus.publish(channels.RETRAIN_STATUS,
                                         self._status("started", trigger, bar, None))
        except Exception as exc:  # noqa: BLE001 - a lost notice must not stop the retrain
            self.agent.log.warning("retrain_status 'started' not published: %s", exc)
        t0 = time.perf_counter()
        try:
            model = await asyncio.to_thread(
                train_model, bars, symbol=self.symbol, horizon=int(params["horizon"]),
                C=float(params["C"]), trigger=trigger, trigger_seq=bar.seq)
            same = await asyncio.to_thread(self.store.find_same, model.meta)
            model = await asyncio.to_thread(
                self.store.load if same is not None else self.store.save,
                same if same is not None else model)
        except (ValueError, ModelStoreError) as exc:
            st.retry_wait = self.cfg.retry_after_bars
            await self.agent.report_error(f"{MODEL_NAME} {self.symbol} training ({trigger}) "
                                          f"failed: {exc}")
            self.agent.emit(pipe, channels.RETRAIN_STATUS,
                            self._status("failed", trigger, bar, None, str(exc)))
            return
        self.last_train_s = time.perf_counter() - t0
        st.pending = PendingModel(version=model.version, after_seq=bar.seq, trigger=trigger,
                                  cv_score=model.meta.cv_score)
        self.agent.emit(pipe, channels.RETRAIN_STATUS,
                        self._status("finished", trigger, bar, model))
        self.agent.log.warning(
            "%s: trained %s v%d (%s) on %d bars in %.2fs, CV accuracy %s; adopted after "
            "seq %d", self.symbol, MODEL_NAME, model.version, trigger, len(bars),
            self.last_train_s, _fmt(model.meta.cv_score), bar.seq)


def _active(model: TrainedModel, since_seq: int, trigger: str) -> ActiveModel:
    m = model.meta
    return ActiveModel(version=m.version, since_seq=since_seq, trigger=trigger,
                       horizon=m.horizon, cv_score=m.cv_score, data_end=m.data_end)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
