"""The TWS / IB Gateway session under :class:`~backend.venues.ib.client.IbClient`.

Connects (``host``/``port``/``client_id``), qualifies one contract per symbol
(:func:`backend.venues.ib.mapping.contract_spec`) and reads its minimum price increment
(``reqContractDetails``: ``minTick``, for stop prices), re-reads executions on every connect
(reconciliation: fills that happened while away), and keeps what arrives by events:
executions (``execDetailsEvent``), commission reports (``commissionReportEvent``) and
order errors (``errorEvent``, by orderRef).  A lost connection (``disconnectedEvent``)
starts a reconnect loop with exponential backoff (``reconnect_backoff_s`` doubling up
to ``reconnect_max_s``) until connected or closed.  ``ib_async`` runs on our event loop:
no threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from backend.venues.broker import VenueError, VenueUnavailable
from backend.venues.config import IbkrConfig
from backend.venues.ib.mapping import (
    DEFAULT_TICKS,
    contract_spec,
    import_ib,
    is_warning,
    make_contract,
)

__all__ = ["OUR_PREFIX", "IbSession"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Our client order ids start with this (``tm-o-...``); any other orderRef is external.
OUR_PREFIX = "tm-"

class IbSession:
    """A reconnecting connection to TWS / IB Gateway and what its events report.

    Parameters
    ----------
    cfg : IbkrConfig
        ``settings.venue.ibkr``.
    symbols : sequence of str
        Our symbols traded (``AAPL/USD``, ``EUR/USD``); contracts qualified on connect.
    ib : IB, optional
        An ``ib_async.IB`` (or a fake with its API); created on connect if None.
    sleep : callable, optional
        ``asyncio.sleep`` (the tests record the reconnect backoff through it).
    """

    def __init__(self, cfg: IbkrConfig, symbols: Sequence[str], ib: Any = None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.cfg = cfg
        self.symbols = list(symbols)
        self._ib = ib
        self._sleep = sleep
        self._mod: Any = None
        self._wired = False
        self._closing = False
        self._reconnect_task: asyncio.Task[None] | None = None
        self._contracts: dict[str, Any] = {}
        self._by_conid: dict[int, str] = {}
        self._ticks: dict[str, float] = {}  # symbol -> minimum price increment (quote/unit)
        self._errors: dict[str, str] = {}  # orderRef (or "#orderId") -> last error text
        self._cancel_requested: set[str] = set()
        self._fills: dict[str, Any] = {}  # execId -> Fill
        self._reports: dict[str, Any] = {}  # execId -> CommissionReport
        self._fee_wait: dict[str, float] = {}  # execId -> monotonic time first seen w/o fee
        self.reconnects = 0
        self.backoff_delays: list[float] = []

    # -- connection -----------------------------------------------------------------------
    def _wire(self) -> None:
        ib = self._ib
        ib.disconnectedEvent += self._on_disconnected
        ib.errorEvent += self._on_error
        ib.execDetailsEvent += self._on_exec
        ib.commissionReportEvent += self._on_commission
        self._wired = True

    async def connect(self) -> None:
        """Connect (if not connected), qualify contracts, read executions.  Idempotent;
        while the reconnect loop runs it raises :class:`VenueUnavailable` instead of
        opening a second connection with the same client id."""
        if self._ib is None:
            self._mod = import_ib()
            self._ib = self._mod.IB()
        if not self._wired:
            self._wire()
        self._closing = False
        if self._reconnect_task is not None and not self._reconnect_task.done():
            raise VenueUnavailable(f"reconnecting to TWS (attempt {len(self.backoff_delays)})")
        if not self._ib.isConnected() or not self._contracts:
            await self._connect_once()

    async def _connect_once(self) -> None:
        cfg, ib = self.cfg, self._ib
        if not ib.isConnected():
            try:
                await ib.connectAsync(cfg.host, cfg.port, clientId=cfg.client_id,
                                      timeout=cfg.timeout_s, account=cfg.account)
            except (OSError, TimeoutError, ConnectionError) as exc:
                raise VenueUnavailable(f"IB {cfg.host}:{cfg.port} client {cfg.client_id}: "
                                       f"{type(exc).__name__}: {exc}") from None
        mod = self._mod or import_ib()
        specs = {s: contract_spec(s, cfg.contracts.get(s)) for s in self.symbols}
        wanted = [make_contract(mod, spec) for spec in specs.values()]
        qualified = await self._ask("qualifyContracts", ib.qualifyContractsAsync(*wanted))
        for (symbol, spec), c in zip(specs.items(), qualified, strict=True):
            if c is None or not getattr(c, "conId", 0):
                raise VenueError(f"IB does not know {symbol} as {spec.sec_type} {spec.symbol} "
                                 f"{spec.currency} on {spec.exchange}")
            self._contracts[symbol] = c
            self._by_conid[c.conId] = symbol
        details = await self._ask("reqContractDetails", asyncio.gather(
            *(ib.reqContractDetailsAsync(c) for c in self._contracts.values())))
        for (symbol, c), found in zip(self._contracts.items(), details, strict=True):
            tick = float(found[0].minTick) if found else 0.0
            self._ticks[symbol] = tick if tick > 0 else DEFAULT_TICKS.get(c.secType, 0.01)
        for fill in await self._ask("reqExecutions", ib.reqExecutionsAsync()):  # missed
            self._keep_fill(fill)
        log.info("IB connected to %s:%s as client %s (%d contracts)", cfg.host, cfg.port,
                 cfg.client_id, len(self._contracts))

    def _on_disconnected(self) -> None:
        if self._closing:
            return
        log.warning("IB connection lost; reconnecting with backoff")
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        """Reconnect with exponential backoff until connected or closed."""
        delay = self.cfg.reconnect_backoff_s
        while not self._closing:
            self.backoff_delays.append(delay)
            await self._sleep(delay)
            if self._closing:
                return
            try:
                await self._connect_once()
            except Exception as exc:  # noqa: BLE001 - keep trying until closed
                log.warning("IB reconnect failed (%s); next try in %gs", exc,
                            min(delay * 2, self.cfg.reconnect_max_s))
                delay = min(delay * 2, self.cfg.reconnect_max_s)
                continue
            self.reconnects += 1
            return

    async def close(self) -> None:
        """Stop reconnecting and disconnect; never raises."""
        self._closing = True
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None and not task.done():
            task.cancel()
        try:
            if self._ib is not None and self._ib.isConnected():
                self._ib.disconnect()
        except Exception:  # noqa: BLE001 - close never raises
            log.exception("IB disconnect failed")

    async def _ask(self, what: str, request: Awaitable[T]) -> T:
        """Await one IB request; a broken socket or no answer within ``timeout_s`` ->
        :class:`VenueUnavailable`."""
        try:
            return await asyncio.wait_for(request, self.cfg.timeout_s)
        except (ConnectionError, OSError, TimeoutError) as exc:
            raise VenueUnavailable(f"IB {what}: {type(exc).__name__}: {exc}") from None

    def _require(self) -> Any:
        if self._ib is None or not self._ib.isConnected():
            raise VenueUnavailable("not connected to TWS / IB Gateway")
        return self._ib

    # -- events ---------------------------------------------------------------------------
    def _on_error(self, req_id: int, code: int, text: str, contract: Any = None) -> None:
        if req_id is None or req_id <= 0 or is_warning(code):
            return
        key = f"#{req_id}"
        for t in self._ib.trades():
            if t.order.orderId == req_id and t.order.clientId == self.cfg.client_id:
                key = t.order.orderRef or key
        self._errors[key] = f"error {code}: {text}"

    def _keep_fill(self, fill: Any) -> None:
        old = self._fills.get(fill.execution.execId)
        if old is None or not old.commissionReport.execId:
            self._fills[fill.execution.execId] = fill
        if fill.commissionReport.execId:
            self._reports[fill.execution.execId] = fill.commissionReport

    def _on_exec(self, trade: Any, fill: Any) -> None:
        self._keep_fill(fill)

    def _on_commission(self, trade: Any, fill: Any, report: Any) -> None:
        self._keep_fill(fill)
        self._reports[report.execId] = report
