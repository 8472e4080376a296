"""Where fitness evaluations run: in process, a local process pool, or Dask distributed.

Every executor takes one generation's parameter sets as a batch and returns their
scores **in the batch's order**; the GA itself (selection, crossover, mutation, the
``random`` generator) stays in the calling process.  Scores are computed by the same
numpy code everywhere, so a seed gives bit-identical results in every mode.

* :class:`InProcess` -- ``workers=1``, no scheduler;
* :class:`ProcessPool` -- ``workers=N > 1``: a ``concurrent.futures`` pool whose
  workers receive the :class:`~backend.optimizer.fitness.FitnessContext` once (pool
  initializer) and then only windows and parameter sets;
* :class:`DaskExecutor` -- ``scheduler="tcp://host:port"`` (or a
  ``dask.distributed.Client``): the context is scattered to every worker once, the
  batch goes out in chunks with ``client.map`` and comes back with ``client.gather``.
  The Dask workers must be able to import ``backend`` (same code, same environment).
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Protocol

from backend.optimizer.fitness import FitnessContext, Window, score_batch

__all__ = ["DaskExecutor", "Executor", "InProcess", "ProcessPool", "chunks", "make_executor"]


class Executor(Protocol):
    """Scores batches of parameter sets for one fitness context."""

    #: Short description for reports (``"in-process"``, ``"pool:4"``, ``"dask:tcp://..."``).
    kind: str

    def map(self, window: Window, params: Sequence[Mapping[str, Any]]) -> list[float]:
        """Scores of ``params`` on ``window``, in order."""
        ...

    def close(self) -> None:
        """Release the workers (idempotent)."""
        ...


def chunks(items: Sequence[Any], n: int) -> list[list[Any]]:
    """``items`` cut into at most ``n`` consecutive, nearly equal, non-empty chunks."""
    n = max(1, min(n, len(items)))
    q, r = divmod(len(items), n)
    out, i = [], 0
    for k in range(n):
        j = i + q + (1 if k < r else 0)
        out.append(list(items[i:j]))
        i = j
    return [c for c in out if c]


class InProcess:
    """Evaluate in the calling process."""

    kind = "in-process"

    def __init__(self, ctx: FitnessContext) -> None:
        self.ctx = ctx

    def map(self, window: Window, params: Sequence[Mapping[str, Any]]) -> list[float]:
        return score_batch(self.ctx, window, params)

    def close(self) -> None:
        return None


# ------------------------------------------------------------------ process pool
_WORKER_CTX: FitnessContext | None = None


def _init_worker(ctx: FitnessContext) -> None:
    global _WORKER_CTX
    _WORKER_CTX = ctx


def _pool_chunk(window: Window, params: list[Mapping[str, Any]]) -> list[float]:
    assert _WORKER_CTX is not None, "pool worker not initialised"
    return score_batch(_WORKER_CTX, window, params)


class ProcessPool:
    """A local pool of ``workers`` processes.

    Parameters
    ----------
    ctx : FitnessContext
    workers : int
        Processes (>= 1).
    mp_context : str, optional
        ``"fork"``, ``"forkserver"`` or ``"spawn"``; the platform default otherwise.
    chunks_per_worker : int
        Chunks each batch is cut into, per worker (load balancing vs overhead).
    """

    def __init__(self, ctx: FitnessContext, workers: int, *, mp_context: str | None = None,
                 chunks_per_worker: int = 2) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.kind = f"pool:{workers}"
        self.n_chunks = workers * max(1, chunks_per_worker)
        self._pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=mp.get_context(mp_context),
            initializer=_init_worker, initargs=(ctx,))

    def map(self, window: Window, params: Sequence[Mapping[str, Any]]) -> list[float]:
        parts = chunks(list(params), self.n_chunks)
        out: list[float] = []
        for res in self._pool.map(_pool_chunk, [window] * len(parts), parts):
            out.extend(res)
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------ dask
class DaskExecutor:
    """Dask distributed: a scheduler address or an existing ``Client``.

    Parameters
    ----------
    ctx : FitnessContext
    scheduler : str or dask.distributed.Client
        ``tcp://host:port`` (a client is opened and closed here) or a client (left open).
    chunks_per_worker : int
        Chunks each batch is cut into, per Dask worker thread.

    Raises
    ------
    ImportError
        ``dask[distributed]`` is not installed.
    OSError
        The scheduler cannot be reached (Dask's timeout).
    """

    def __init__(self, ctx: FitnessContext, scheduler: Any, *, chunks_per_worker: int = 2) -> None:
        from dask.distributed import Client

        if isinstance(scheduler, Client):
            self.client, self._own = scheduler, False
        else:
            self.client, self._own = Client(str(scheduler), set_as_default=False), True
        self.kind = f"dask:{self.client.scheduler.address}"
        threads = sum(self.client.nthreads().values()) or 1
        self.n_chunks = threads * max(1, chunks_per_worker)
        self._ctx = self.client.scatter(ctx, broadcast=True, hash=False)

    def map(self, window: Window, params: Sequence[Mapping[str, Any]]) -> list[float]:
        parts = chunks(list(params), self.n_chunks)
        futs = self.client.map(score_batch, [self._ctx] * len(parts), [window] * len(parts),
                               parts, pure=False)
        out: list[float] = []
        for res in self.client.gather(futs):
            out.extend(res)
        return out

    def close(self) -> None:
        if self._own:
            self.client.close()


def make_executor(ctx: FitnessContext, workers: int = 1, scheduler: Any = None,
                  *, mp_context: str | None = None) -> Executor:
    """The executor for ``workers`` / ``scheduler`` (the scheduler wins when given)."""
    if scheduler is not None:
        return DaskExecutor(ctx, scheduler)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        return InProcess(ctx)
    return ProcessPool(ctx, workers, mp_context=mp_context)
