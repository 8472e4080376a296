"""Running the exchange simulator in the foreground (``python -m backend.exchange_sim``,
``tradingmesh exchange-sim``): options, their parsing, the ready line, signals.

:func:`serve` starts the simulator on 127.0.0.1, prints **one JSON line** on stdout once it
listens -- ``{"url", "ccxt_urls", "api_key", "secret", "admin_url"}`` -- and runs until
SIGTERM or SIGINT (exit code 0).  Bad options or data give a one-line ``error: ...`` on
stderr and exit code 2.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TextIO

from backend.exchange_sim.server import (
    DEFAULT_DATA,
    SAMPLE_SYMBOLS,
    TEST_KEY,
    TEST_SECRET,
    ExchangeSim,
)

#: Exit code of a bad option or data directory.
USAGE_ERROR = 2


@dataclass
class SimOptions:
    """Command-line options of the simulator (see ``--help``).

    Defaults behave like real Binance spot (fees of a BUY in the base asset, duplicate
    client order ids refused only while the order is open) with a clock at 4 bars/s
    (5-minute bars at 1200x real time).
    """

    data: Path = DEFAULT_DATA
    symbols: list[str] = field(default_factory=lambda: list(SAMPLE_SYMBOLS))
    port: int = 0
    bars_per_s: float = 4.0
    start_bar: int = 60
    timeframe: str = "5m"
    fee_rate: str = "0.001"
    fee_asset: str = "base"
    dup_scope: str = "open"
    balances: dict[str, str] = field(default_factory=lambda: {"BTC": "1"})
    seed: int = 0
    admin_token: str | None = None
    api_key: str = TEST_KEY
    secret: str = TEST_SECRET


def parse_symbols(text: str) -> list[str]:
    """``"ETH/BTC,LTC/BTC"`` -> ``["ETH/BTC", "LTC/BTC"]`` (ValueError when malformed)."""
    out = [s.strip().upper() for s in text.split(",") if s.strip()]
    bad = [s for s in out if s.count("/") != 1 or not all(s.split("/"))]
    if not out or bad:
        raise ValueError(f"symbols must be BASE/QUOTE[,BASE/QUOTE...], not {text!r}")
    return out


def parse_balances(text: str) -> dict[str, str]:
    """``"BTC=1,ETH=0"`` -> ``{"BTC": "1", "ETH": "0"}`` (ValueError when malformed)."""
    out: dict[str, str] = {}
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        asset, sep, amount = item.partition("=")
        try:
            ok = bool(sep and asset.strip()) and Decimal(amount.strip()) >= 0
        except InvalidOperation:
            ok = False
        if not ok:
            raise ValueError(f"balances must be ASSET=AMOUNT[,...] with amounts >= 0, "
                             f"not {text!r}")
        out[asset.strip().upper()] = amount.strip()
    return out


def build(opts: SimOptions) -> ExchangeSim:
    """The simulator the options describe (not started).

    Raises
    ------
    ValueError
        Invalid options, or missing or invalid data (``DataError`` is a ValueError).
    """
    if not 0 <= opts.port <= 65535:
        raise ValueError(f"port must be within 0..65535, not {opts.port}")
    return ExchangeSim(
        opts.data, opts.symbols, api_key=opts.api_key, secret=opts.secret, seed=opts.seed,
        admin_token=opts.admin_token, port=opts.port, timeframe=opts.timeframe,
        balances=opts.balances, fee_rate=opts.fee_rate, fee_asset=opts.fee_asset,
        start_bar=opts.start_bar, bars_per_s=opts.bars_per_s or None,
        dup_scope=opts.dup_scope,
    )


def ready_line(sim: ExchangeSim) -> str:
    """The JSON line printed once the simulator listens."""
    return json.dumps({"url": sim.base_url, "ccxt_urls": sim.ccxt_urls(),
                       "api_key": sim.api_key, "secret": sim.secret,
                       "admin_url": f"{sim.base_url}/_sim"})


def serve(opts: SimOptions, out: TextIO | None = None, err: TextIO | None = None,
          stop: threading.Event | None = None) -> int:
    """Run the simulator until SIGTERM/SIGINT (or ``stop`` is set); returns the exit code.

    Parameters
    ----------
    opts : SimOptions
        What to simulate.
    out, err : file, optional
        Where the ready line and the messages go (stdout, stderr).
    stop : threading.Event, optional
        Set it to stop (signal handlers are installed only in the main thread).

    Returns
    -------
    int
        0 after a clean stop, :data:`USAGE_ERROR` for bad options, data or port.
    """
    out, err = out or sys.stdout, err or sys.stderr
    stop = stop or threading.Event()
    try:
        sim = build(opts).start()
    except (ValueError, OSError) as exc:
        err.write(f"error: {exc}\n")
        err.flush()
        return USAGE_ERROR
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        out.write(ready_line(sim) + "\n")
        out.flush()
        err.write(f"exchange simulator on {sim.base_url} ({', '.join(opts.symbols)}; admin API "
                  f"{sim.base_url}/_sim/); SIGTERM or Ctrl-C stops it\n")
        err.flush()
        while not stop.wait(0.5):  # a short wait keeps signal handling prompt
            pass
    finally:
        sim.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
