"""Serve the control plane (uvicorn) inside the orchestrator's own event loop.

The API shares the loop with the supervisor, so a request to stop or restart an agent
acts on the very :class:`~orchestrator.supervisor.Supervisor` that runs it.  uvicorn's
own signal handling is disabled: the orchestrator owns SIGINT/SIGTERM and stops the
server when it stops the mesh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Generator

import uvicorn

from backend.persistence import Store, make_engine
from orchestrator.api.app import create_app
from orchestrator.api.auth import check_bind
from orchestrator.control import ControlPlane
from orchestrator.latency import LatencyTracker
from orchestrator.mesh import MeshHandle
from orchestrator.metrics import MeshMetrics

log = logging.getLogger("orchestrator.api")


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers (the orchestrator has its own)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:  # noqa: D102
        yield


class ApiError(RuntimeError):
    """The API could not start (port taken, bind refused); the message says why."""


async def refresh_metrics(control: ControlPlane, metrics: MeshMetrics) -> tuple[bytes, str]:
    """Update every gauge from the mesh's current state and render the exposition."""
    listing = await control.agents()
    metrics.set_agents(listing.agents)
    by_status = await asyncio.to_thread(control.store.orders_by_status)
    try:
        breaker = await control.breaker()
        points = await control.equity(1)
        metrics.set_trading(
            by_status, breaker.equity, points[-1].drawdown if points else None,
            breaker.daily_drawdown, breaker.halted,
        )
    except Exception as exc:  # noqa: BLE001 - Redis down: keep what we have, still render
        log.debug("metrics: trading figures skipped: %s", exc)
    return metrics.render()


@contextlib.asynccontextmanager
async def serve_control_plane(
    handle: MeshHandle, token: str | None, host: str, port: int
) -> AsyncIterator[tuple[ControlPlane, str]]:
    """Run the REST API (and the latency tracker) for ``handle`` until the block exits.

    Yields ``(control plane, base URL)``.

    Raises
    ------
    ApiError
        The bind was refused (non-loopback without a token) or the port is taken.
    """
    try:
        check_bind(host, token)
    except ValueError as exc:
        raise ApiError(str(exc)) from None
    store = Store(make_engine(handle.settings.db_url()))
    control = ControlPlane(handle.settings, handle.supervisor, store)
    metrics = MeshMetrics()
    app = create_app(control, token, lambda: refresh_metrics(control, metrics))
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                            access_log=False)
    server = _EmbeddedServer(config)
    serving = asyncio.create_task(server.serve())
    stop = asyncio.Event()
    tracker = asyncio.create_task(LatencyTracker(metrics).run(control.redis, stop))
    deadline = time.monotonic() + 15
    while not server.started:
        if serving.done() or time.monotonic() > deadline:
            stop.set()
            await asyncio.gather(tracker, return_exceptions=True)
            await control.close()
            raise ApiError(f"the control plane could not listen on {host}:{port} "
                           "(port in use? see the log above)")
        await asyncio.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
    url = f"http://{host if ':' not in host else f'[{host}]'}:{bound}"
    log.info("control plane on %s (docs %s/docs)", url, url)
    try:
        yield control, url
    finally:
        server.should_exit = True
        stop.set()
        await asyncio.gather(serving, tracker, return_exceptions=True)
        await control.close()
        store.close()
