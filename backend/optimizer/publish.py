"""Publishing a run on the bus: progress on ``retrain_status``, results on ``model_metrics``.

The GA is synchronous and CPU-bound; the bus is asyncio.  :func:`optimize_async` runs
:func:`~backend.optimizer.runner.optimize` in a worker thread while the event loop stays
free, and :class:`BusObserver` hands each message from that thread to the loop
(``asyncio.run_coroutine_threadsafe``) and waits for Redis to take it, so messages go
out in order, one per generation, then the result.

* every generation: :class:`~backend.messages.OptimizerProgressed` on
  :data:`backend.channels.RETRAIN_STATUS`;
* the end: :class:`~backend.messages.OptimizerFinished` on
  :data:`backend.channels.MODEL_METRICS` (``status="failed"`` with the error if the run
  broke).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from typing import Any

from backend import channels
from backend.bus import Bus
from backend.marketdata.candles import Candles
from backend.optimizer.models import GenerationStats, OptimizeConfig, OptimizeResult
from backend.optimizer.runner import (
    SOURCE,
    Observer,
    finished_message,
    optimize,
    progress_message,
)

__all__ = ["BusObserver", "optimize_async"]


class BusObserver:
    """Publishes a run's messages from the GA's thread through ``bus`` on ``loop``.

    Parameters
    ----------
    bus : Bus
    loop : asyncio.AbstractEventLoop
        The running loop that owns ``bus``'s Redis client (not the calling thread's).
    timeout : float
        Seconds to wait for one publish.
    """

    def __init__(self, bus: Bus, loop: asyncio.AbstractEventLoop, timeout: float = 30.0) -> None:
        self.bus, self.loop, self.timeout = bus, loop, timeout

    def _send(self, channel: str, msg: Any) -> None:
        fut = asyncio.run_coroutine_threadsafe(self.bus.publish(channel, msg), self.loop)
        fut.result(self.timeout)

    def started(self, run: OptimizeResult) -> None:
        return None

    def generation(self, run: OptimizeResult, stats: GenerationStats) -> None:
        self._send(channels.RETRAIN_STATUS, progress_message(run, stats))

    def finished(self, run: OptimizeResult) -> None:
        self._send(channels.MODEL_METRICS, finished_message(run))


async def optimize_async(
    candles: Mapping[str, Candles] | Sequence[Candles],
    cfg: OptimizeConfig,
    *,
    redis: Any = None,
    observers: Sequence[Observer] = (),
    agent_id: str = SOURCE,
    **kwargs: Any,
) -> OptimizeResult:
    """:func:`optimize` in a worker thread, publishing on the bus when ``redis`` is given.

    Parameters
    ----------
    candles, cfg
        As :func:`optimize`.
    redis : redis.asyncio.Redis, optional
        Client of the mesh's Redis (``decode_responses=False``), or ``None``.
    observers : sequence of Observer
        More observers (called from the worker thread).
    agent_id : str
        The bus's agent id.
    **kwargs
        Passed to :func:`optimize` (``executor``, ``run_id``, ``settings`` ...).
    """
    obs = list(observers)
    if redis is not None:
        obs.append(BusObserver(Bus(redis, agent_id), asyncio.get_running_loop()))
    fn = functools.partial(optimize, candles, cfg, observers=obs, **kwargs)
    return await asyncio.to_thread(fn)
