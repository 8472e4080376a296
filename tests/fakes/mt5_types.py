"""Records of the fake ``MetaTrader5`` module.

* what it returns: namedtuples with the real field names (``AccountInfo``,
  ``SymbolInfo`` (the fields the client reads), ``Tick``, ``TradeRequest``,
  ``OrderSendResult``, ``TradeOrder``, ``TradeDeal``, ``TradePosition``);
* what its trade server keeps: :class:`ServerSymbol` and :class:`ServerOrder`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


@dataclass
class ServerSymbol:
    """A symbol at the fake trade server: contract size, volume limits (lots), price
    digits, the current bid/ask, the stops level (points a pending order must keep from
    the market) and the allowed expirations (``SYMBOL_EXPIRATION_*`` flags)."""

    name: str
    contract_size: float
    vmin: float
    vmax: float
    vstep: float
    digits: int
    bid: float
    ask: float
    base: str
    quote: str
    closed: bool = False
    stops_level: int = 0
    expiration_mode: int = 3  # GTC | DAY


@dataclass
class ServerOrder:
    """An order at the fake trade server (volumes in lots; ``price`` the deal price of a
    market order, the trigger of a pending stop)."""

    ticket: int
    symbol: str
    type: int
    volume: float
    filled: float
    price: float
    state: int
    magic: int
    comment: str
    filling: int
    time: float
    sl: float = 0.0
    tp: float = 0.0
    deals: list[int] = field(default_factory=list)


class AccountInfo(NamedTuple):
    login: int
    trade_mode: int
    leverage: int
    margin_mode: int
    balance: float
    credit: float
    profit: float
    equity: float
    margin: float
    margin_free: float
    name: str
    server: str
    currency: str
    company: str


class SymbolInfo(NamedTuple):
    name: str
    visible: bool
    select: bool
    digits: int
    point: float
    trade_mode: int
    filling_mode: int
    expiration_mode: int
    trade_stops_level: int
    bid: float
    ask: float
    trade_contract_size: float
    volume_min: float
    volume_max: float
    volume_step: float
    currency_base: str
    currency_profit: str
    currency_margin: str
    path: str


class Tick(NamedTuple):
    time: int
    bid: float
    ask: float
    last: float
    volume: int
    time_msc: int
    flags: int
    volume_real: float


class TradeRequest(NamedTuple):
    action: int
    magic: int
    order: int
    symbol: str
    volume: float
    price: float
    stoplimit: float
    sl: float
    tp: float
    deviation: int
    type: int
    type_filling: int
    type_time: int
    expiration: int
    comment: str
    position: int
    position_by: int


class OrderSendResult(NamedTuple):
    retcode: int
    deal: int
    order: int
    volume: float
    price: float
    bid: float
    ask: float
    comment: str
    request_id: int
    retcode_external: int
    request: TradeRequest


class TradeOrder(NamedTuple):
    ticket: int
    time_setup: int
    time_setup_msc: int
    time_done: int
    time_done_msc: int
    time_expiration: int
    type: int
    type_time: int
    type_filling: int
    state: int
    magic: int
    position_id: int
    position_by_id: int
    reason: int
    volume_initial: float
    volume_current: float
    price_open: float
    sl: float
    tp: float
    price_current: float
    price_stoplimit: float
    symbol: str
    comment: str
    external_id: str


class TradeDeal(NamedTuple):
    ticket: int
    order: int
    time: int
    time_msc: int
    type: int
    entry: int
    magic: int
    position_id: int
    reason: int
    volume: float
    price: float
    commission: float
    swap: float
    profit: float
    fee: float
    symbol: str
    comment: str
    external_id: str


class TradePosition(NamedTuple):
    ticket: int
    time: int
    time_msc: int
    time_update: int
    time_update_msc: int
    type: int
    magic: int
    identifier: int
    reason: int
    volume: float
    price_open: float
    sl: float
    tp: float
    price_current: float
    swap: float
    profit: float
    symbol: str
    comment: str
    external_id: str
