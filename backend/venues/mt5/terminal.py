"""The MetaTrader 5 terminal session under :class:`~backend.venues.mt5.client.Mt5Client`.

The ``MetaTrader5`` package talks to a running terminal over IPC and exists only on
Windows, so it is imported lazily in :meth:`Mt5Terminal.connect` (or injected: the tests
pass a fake module); without it, connecting fails with :data:`MT5_MISSING`.

Every SDK call is blocking and the SDK is not thread-safe: calls run in
:func:`asyncio.to_thread`, one at a time under a lock, and a sequence that reads
``last_error()`` runs under the same lock hold as the call it explains.  A read that
finds the terminal gone (IPC error) reconnects (``shutdown`` + ``initialize``,
``reconnect_attempts`` times with a doubling pause) and is retried once; the password
(``password_env`` or ``secrets_file``) is passed to ``initialize`` and never logged.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from backend.runtime.secretfiles import secret_from
from backend.venues.broker import VenueError, VenueUnavailable
from backend.venues.config import Mt5Config
from backend.venues.mt5.mapping import terminal_lost, terminal_symbol

__all__ = ["MT5_MISSING", "Mt5NotInstalled", "Mt5Terminal"]

log = logging.getLogger(__name__)
T = TypeVar("T")

MT5_MISSING = (
    "venue 'mt5' needs the MetaTrader5 package, which runs only on Windows with a "
    "MetaTrader 5 terminal; install it there with `pip install tradingmesh[mt5]`"
)


class Mt5NotInstalled(VenueError):
    """The ``MetaTrader5`` package cannot be imported (not Windows, or not installed)."""


class Mt5Terminal:
    """A serialized, reconnecting session with a MetaTrader 5 terminal.

    Parameters
    ----------
    cfg : Mt5Config
        ``settings.venue.mt5``.
    symbols : sequence of str
        Our symbols traded (``BASE/QUOTE``); selected in the terminal on connect.
    module : module, optional
        The ``MetaTrader5`` module or a fake with its API; imported on connect if None.
    """

    def __init__(self, cfg: Mt5Config, symbols: Sequence[str], module: Any = None) -> None:
        self.cfg = cfg
        self.symbols = list(symbols)
        self._mod = module
        self._lock = threading.Lock()
        self._connected = False
        self._specs: dict[str, Any] = {}
        self._currency = ""
        self._to_terminal = {s: terminal_symbol(s, cfg.symbols) for s in self.symbols}
        self._to_ours = {v: k for k, v in {**cfg.symbols, **self._to_terminal}.items()}
        self.reconnects = 0
        per_try = cfg.timeout_ms / 1000 + min(cfg.reconnect_backoff_s * 8, 10.0)
        self._deadline_s = cfg.timeout_ms / 1000 * 2 + cfg.reconnect_attempts * per_try

    # -- plumbing -------------------------------------------------------------------------
    def _module(self) -> Any:
        if self._mod is None:
            try:
                self._mod = importlib.import_module("MetaTrader5")
            except ImportError:
                raise Mt5NotInstalled(MT5_MISSING) from None
        return self._mod

    def _init_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"timeout": self.cfg.timeout_ms}
        if self.cfg.terminal_path is not None:
            kw["path"] = str(self.cfg.terminal_path)
        if self.cfg.login is not None:
            pw = secret_from(self.cfg.password_env, self.cfg.secrets_file, "password")
            kw.update(login=self.cfg.login, server=self.cfg.server,
                      password=pw.get_secret_value() if pw is not None else "")
        return kw

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in a thread under the SDK lock, (re)connecting first if needed."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(self._locked, fn, *args),
                                          self._deadline_s)
        except TimeoutError:
            raise VenueUnavailable(
                f"MetaTrader 5 terminal did not answer within {self._deadline_s:g}s") from None

    def _locked(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            if not self._connected and fn != self._sync_connect:
                self._sync_connect()
            return fn(*args)

    def _reconnect(self) -> bool:
        """``shutdown`` + ``initialize`` up to ``reconnect_attempts`` times (lock held)."""
        mod, kw = self._module(), self._init_kwargs()
        for i in range(self.cfg.reconnect_attempts):
            mod.shutdown()
            if mod.initialize(**kw):
                self.reconnects += 1
                self._connected = True
                log.warning("MetaTrader 5 terminal reconnected (attempt %d)", i + 1)
                return True
            if i + 1 < self.cfg.reconnect_attempts:
                time.sleep(self.cfg.reconnect_backoff_s * 2 ** min(i, 3))
        self._connected = False
        log.error("MetaTrader 5 terminal still lost after %d attempts: %s",
                  self.cfg.reconnect_attempts, mod.last_error())
        return False

    def _call(self, fn: str, *args: Any, many: bool = False, **kw: Any) -> Any:
        """One SDK read; ``None`` -> ``last_error()``: a lost terminal is reconnected and the
        read retried once, anything else raises :class:`VenueUnavailable`.  ``many``: a
        tuple-returning call, where ``None`` with ``RES_S_OK`` means "nothing"."""
        mod = self._module()
        for attempt in (0, 1):
            res = getattr(mod, fn)(*args, **kw)
            if res is not None:
                return res
            err = mod.last_error()
            if many and err is not None and err[0] == 1:
                return ()
            if attempt == 0 and terminal_lost(err) and self._reconnect():
                continue
            if terminal_lost(err):
                self._connected = False
            raise VenueUnavailable(f"MetaTrader 5 {fn} failed: {err}")
        raise AssertionError("unreachable")

    def _spec(self, sym: str) -> Any:
        if sym not in self._specs:
            self._specs[sym] = self._call("symbol_info", sym)
        return self._specs[sym]

    def _sym(self, symbol: str) -> str:
        return self._to_terminal.get(symbol) or terminal_symbol(symbol, self.cfg.symbols)

    def _window(self, since_s: float | None = None) -> tuple[datetime, datetime]:
        off, now = self.cfg.server_utc_offset_s, time.time()
        lo = now - self.cfg.history_days * 86_400 if since_s is None else since_s - 1
        return (datetime.fromtimestamp(lo + off, tz=UTC),
                datetime.fromtimestamp(now + off + 86_400, tz=UTC))

    # -- connection -----------------------------------------------------------------------
    def _sync_connect(self) -> None:
        mod = self._module()
        if not mod.initialize(**self._init_kwargs()):
            err = mod.last_error()
            if err is not None and err[0] == -6:
                raise VenueError(f"MetaTrader 5 login {self.cfg.login} on {self.cfg.server!r} "
                                 f"refused: {err[1]}")
            raise VenueUnavailable(f"MetaTrader 5 initialize failed: {err}")
        self._connected = True
        try:
            self._check_account(mod)
        except BaseException:
            self._connected = False
            raise

    def _check_account(self, mod: Any) -> None:
        acct = self._call("account_info")
        if self.cfg.login is not None and acct.login != self.cfg.login:
            raise VenueError(f"terminal is logged in to account {acct.login}, "
                             f"config says {self.cfg.login}")
        if acct.margin_mode == getattr(mod, "ACCOUNT_MARGIN_MODE_RETAIL_HEDGING", 2):
            log.warning("MT5 account %s is a hedging account: an opposite order opens a new "
                        "position instead of closing one (net positions stay right)", acct.login)
        self._currency = acct.currency
        for symbol, sym in self._to_terminal.items():
            if not mod.symbol_select(sym, True) or mod.symbol_info(sym) is None:
                raise VenueError(f"symbol {sym} (ours {symbol}) is unknown to the terminal")
            self._specs[sym] = mod.symbol_info(sym)
        log.info("MetaTrader 5 connected: account %s (%s) on %s", acct.login, acct.currency,
                 acct.server)

    async def connect(self) -> None:
        """Import the SDK (clear error if it can't be), ``initialize`` (log in), select the
        symbols.  Idempotent."""
        self._module()
        await self._run(self._sync_connect)

    async def close(self) -> None:
        """``shutdown`` the IPC link; never raises."""
        if self._mod is None:
            return
        try:
            await asyncio.to_thread(self._locked_shutdown)
        except Exception:  # noqa: BLE001 - close never raises
            log.exception("MetaTrader 5 shutdown failed")

    def _locked_shutdown(self) -> None:
        with self._lock:
            self._connected = False
            self._mod.shutdown()
