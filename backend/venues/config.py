"""Configuration of the venue the execution agent trades on (``[venue]`` in the TOML).

``kind = "paper"`` (the default, and the only kind the tests trade for real) keeps the
simulated venue of :mod:`backend.venues.paper.adapter`.  The live kinds read their secrets from
environment variables (names configurable) or from a secrets file; secret values are
held as :class:`pydantic.SecretStr`, never logged and never written to the resolved
``settings.json``.

Units: times in seconds unless the name says otherwise; MT5 ``deviation`` in points.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from backend.common import ConfigError

__all__ = [
    "CcxtConfig",
    "IbContract",
    "IbkrConfig",
    "Mt5Config",
    "PaperConfig",
    "VenueConfig",
    "VenueConfigError",
    "VenueSettings",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CcxtConfig(_Strict):
    """A crypto exchange through ccxt.

    ``exchange`` is a ccxt exchange id (``binance``, ``kraken``, ...); ``sandbox`` switches
    to its testnet (``set_sandbox_mode``).  Keys come from the environment variables named
    here, else from ``secrets_file`` (TOML or ``KEY=value`` lines with ``api_key``,
    ``secret``, ``password``).  ``urls`` overrides ccxt's ``urls['api']`` entries (the
    tests point them at a loopback fake).  ccxt's own rate limiter stays on unless
    ``enable_rate_limit`` is false.
    """

    exchange: str = "binance"
    sandbox: bool = False
    api_key_env: str = "TRADINGMESH_CCXT_API_KEY"
    secret_env: str = "TRADINGMESH_CCXT_SECRET"
    password_env: str = "TRADINGMESH_CCXT_PASSWORD"
    secrets_file: Path | None = None
    urls: dict[str, str] = Field(default_factory=dict)
    timeout_ms: int = Field(default=10_000, ge=100, le=120_000)
    enable_rate_limit: bool = True
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)
    #: Market types ``load_markets`` fetches, where the exchange takes
    #: ``options['fetchMarkets']`` (binance, bybit, okx, ...); the mesh trades spot, so
    #: the futures/options exchange-info endpoints are not called.  Empty = ccxt's default.
    market_types: list[str] = Field(default_factory=lambda: ["spot"])
    #: Overrides the exchange's ccxt ``rateLimit`` (ms per request of weight 1; the
    #: loopback fake of the tests uses 1).  ``None`` keeps ccxt's value for the exchange.
    rate_limit_ms: float | None = Field(default=None, gt=0)
    #: Live market data through ccxt: candles polled every ``poll_s`` (websockets are
    #: used where ccxt supports them for the exchange and ``websocket`` is true).
    poll_s: float = Field(default=2.0, gt=0)
    websocket: bool = False
    #: Closed candles before its start a fresh live feed emits (indicator warm-up; the
    #: strategies may signal on them, so 0 when trading for real).
    history_bars: int = Field(default=0, ge=0, le=1000)
    #: Declare that the exchange refuses a client order id used by *any* earlier order
    #: (filled ones too), so an order absent at a lookup may be resent at once.  Binance
    #: spot refuses one only while the first order is open: keep false unless the
    #: exchange's documentation guarantees it.
    unique_client_order_ids: bool = False
    #: Rest each position's stop loss at the exchange as a stop-market order, where the
    #: exchange supports them (Binance spot ``STOP_LOSS``).
    protective_stops: bool = True


class Mt5Config(_Strict):
    """A MetaTrader 5 terminal (Windows only; the ``MetaTrader5`` package).

    ``login``/``server`` identify the account; the password comes from ``password_env``
    or ``secrets_file``.  Orders carry ``magic`` and our client order id in ``comment``;
    ``deviation`` is the accepted slippage in points; ``filling`` the filling mode.
    """

    login: int | None = None
    server: str = ""
    password_env: str = "TRADINGMESH_MT5_PASSWORD"
    secrets_file: Path | None = None
    terminal_path: Path | None = None
    magic: int = Field(default=240_615, ge=0)
    deviation: int = Field(default=20, ge=0)
    filling: Literal["ioc", "fok", "return"] = "ioc"
    timeout_ms: int = Field(default=10_000, ge=100)
    reconnect_attempts: int = Field(default=5, ge=1)
    #: First pause between reconnect attempts (doubles each attempt, at most 8x).
    reconnect_backoff_s: float = Field(default=0.5, ge=0)
    #: How far back order/deal history is searched for a client order id (days).
    history_days: int = Field(default=7, ge=1)
    #: The trade server's clock minus UTC (s): MT5 reports deal times in server time.
    server_utc_offset_s: int = 0
    #: Our symbol -> terminal symbol (default: ``EUR/USD`` -> ``EURUSD``).
    symbols: dict[str, str] = Field(default_factory=dict)


class IbContract(_Strict):
    """How one of our symbols maps to an IB contract (``Stock`` or ``Forex``)."""

    sec_type: Literal["STK", "CASH"] = "STK"
    symbol: str = ""  # IB's symbol (default: our base currency / ticker)
    exchange: str = "SMART"  # "IDEALPRO" for FX
    currency: str = ""  # default: our quote currency


class IbkrConfig(_Strict):
    """Interactive Brokers TWS / IB Gateway through ``ib_async`` (or ``ib_insync``)."""

    host: str = "127.0.0.1"
    port: int = Field(default=7497, ge=1, le=65535)  # 7497 TWS paper, 4002 gateway paper
    client_id: int = Field(default=17, ge=0)
    account: str = ""
    timeout_s: float = Field(default=10.0, gt=0)
    reconnect_backoff_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=60.0, gt=0)
    contracts: dict[str, IbContract] = Field(default_factory=dict)


class VenueConfig(_Strict):
    """Which venue execution trades on and how it talks to it.

    ``poll_s``: how often a live venue is asked for fills and order updates besides
    every bar; ``submit_timeout_s``: an order creation that takes longer is UNKNOWN;
    ``resolve_attempts``/``resolve_backoff_s``: lookups by client order id of an UNKNOWN
    order before execution gives up and reports the venue unreconciled;
    ``quote_currency``: the account currency a live venue's cash is read from (empty:
    the quote currency of the first symbol); ``retry_max_s``: the longest pause between
    two attempts to reconcile or to handle an input while the venue is unreachable.
    """

    kind: Literal["paper", "ccxt", "mt5", "ibkr"] = "paper"
    poll_s: float = Field(default=1.0, gt=0)
    submit_timeout_s: float = Field(default=10.0, gt=0)
    resolve_attempts: int = Field(default=5, ge=1)
    resolve_backoff_s: float = Field(default=0.5, gt=0)
    quote_currency: str = ""
    retry_max_s: float = Field(default=30.0, gt=0)
    #: Added to the venue's request lifetime before an order absent from the order
    #: lookup and the trade history counts as never landed (clock skew, queueing).
    unknown_margin_s: float = Field(default=5.0, ge=0)
    #: At a venue that does not bound a request's lifetime (MT5, IB): how long an order
    #: with an unknown outcome is looked for before it is declared unresolved (its symbol
    #: halted, a person asked); it is never resent there.
    unknown_window_s: float = Field(default=30.0, gt=0)
    #: How often UNKNOWN orders left for a person are looked up again (adopted if found).
    unknown_recheck_s: float = Field(default=10.0, gt=0)
    #: How often the venue's positions are compared with the books (live venues).
    position_check_s: float = Field(default=60.0, gt=0)
    #: What the kill switch closes: ``mesh`` = the positions the mesh's fills made (coins
    #: held before it traded stay), ``account`` = every position the venue reports.
    flatten_scope: Literal["mesh", "account"] = "mesh"
    #: When the execution agent is given up: ``cancel`` open orders (protective stops
    #: resting at the venue stay), or ``flatten`` too (venues without resting stops).
    failsafe: Literal["cancel", "flatten"] = "cancel"
    ccxt: CcxtConfig = Field(default_factory=CcxtConfig)
    mt5: Mt5Config = Field(default_factory=Mt5Config)
    ibkr: IbkrConfig = Field(default_factory=IbkrConfig)


class PaperConfig(BaseModel):
    """Paper venue: one account in one quote currency."""

    model_config = ConfigDict(extra="forbid")  # a typo in the section is an error

    initial_cash: float = Field(default=1.0, gt=0)
    quote_currency: str = "BTC"
    fee_rate: float = Field(default=0.001, ge=0, lt=0.1)  # fraction of notional, per side
    slippage_bps: float = Field(default=2.0, ge=0, lt=1000)


class VenueConfigError(ConfigError):
    """The configured venue cannot be built here (module or SDK missing, bad kind)."""


class VenueSettings(Protocol):
    """What the venue factory reads of the mesh's settings (:class:`backend.settings.Settings`).

    ``venue`` selects and configures the venue, ``paper`` the paper account, ``symbols``
    the traded symbols (``BASE/QUOTE``).
    """

    @property
    def venue(self) -> VenueConfig: ...

    @property
    def paper(self) -> PaperConfig: ...

    @property
    def symbols(self) -> Sequence[str]: ...
