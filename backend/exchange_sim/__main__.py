"""``python -m backend.exchange_sim``: run the exchange simulator in the foreground.

Serves on 127.0.0.1 only, prints one JSON line on stdout once listening (``url``,
``ccxt_urls``, ``api_key``, ``secret``, ``admin_url``) and runs until SIGTERM/SIGINT (exit
0).  A bad option or data directory: one ``error: ...`` line on stderr, exit code 2.
``tradingmesh exchange-sim`` takes the same options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from backend.exchange_sim.run import USAGE_ERROR, SimOptions, parse_balances, parse_symbols, serve


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    d = SimOptions()
    p = _Parser(prog="python -m backend.exchange_sim",
                description="A simulated Binance spot exchange (REST API for ccxt) with "
                            "fault injection and an admin API under /_sim/.")
    p.add_argument("--data", type=Path, default=d.data,
                   help="directory of BASE_QUOTE-<timeframe>.csv candles [the sample data]")
    p.add_argument("--symbols", default=",".join(d.symbols),
                   help="markets, comma-separated [%(default)s]")
    p.add_argument("--port", type=int, default=d.port, help="port on 127.0.0.1 [0: any free]")
    p.add_argument("--bars-per-s", type=float, default=d.bars_per_s,
                   help="bars the market clock moves per second; 0: only by the admin API "
                        "[%(default)s]")
    p.add_argument("--start-bar", type=int, default=d.start_bar,
                   help="bars after the first one the clock starts at [%(default)s]")
    p.add_argument("--timeframe", default=d.timeframe, choices=["1m", "5m", "15m", "1h"],
                   help="candle length (file suffix) [%(default)s]")
    p.add_argument("--fee-rate", default=d.fee_rate,
                   help="taker fee, fraction of the notional [%(default)s]")
    p.add_argument("--fee-asset", default=d.fee_asset, choices=["base", "quote"],
                   help="asset a BUY pays its fee in (Binance without BNB: base) "
                        "[%(default)s]")
    p.add_argument("--dup-scope", default=d.dup_scope, choices=["open", "all"],
                   help="client order ids refused as duplicates: of open orders (Binance) "
                        "or of any order [%(default)s]")
    p.add_argument("--balances", default="BTC=1",
                   help="initial balances ASSET=AMOUNT,... [%(default)s]")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="seed of the random faults [%(default)s]")
    p.add_argument("--admin-token", default=None,
                   help="require this X-Sim-Token header on the admin API")
    p.add_argument("--api-key", default=d.api_key, help="API key it accepts [the test key]")
    p.add_argument("--secret", default=d.secret, help="secret it accepts [the test secret]")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and serve until a signal; returns the exit code."""
    p = _parser()
    a = p.parse_args(argv)
    try:
        symbols, balances = parse_symbols(a.symbols), parse_balances(a.balances)
    except ValueError as exc:
        p.error(str(exc))
    if a.bars_per_s < 0 or a.start_bar < 0:
        p.error("--bars-per-s and --start-bar must be >= 0")
    return serve(SimOptions(
        data=a.data, symbols=symbols, port=a.port, bars_per_s=a.bars_per_s,
        start_bar=a.start_bar, timeframe=a.timeframe, fee_rate=a.fee_rate,
        fee_asset=a.fee_asset, dup_scope=a.dup_scope, balances=balances, seed=a.seed,
        admin_token=a.admin_token, api_key=a.api_key, secret=a.secret,
    ))


if __name__ == "__main__":
    sys.exit(main())
