"""``tradingmesh exchange-sim``: run the exchange simulator in the foreground.

Hooked into the main CLI by ``register(app)``.  The same options as ``python -m
backend.exchange_sim`` (:mod:`backend.exchange_sim.run` does the work): serves a simulated
Binance spot REST API on 127.0.0.1, prints one JSON line (``url``, ``ccxt_urls``,
``api_key``, ``secret``, ``admin_url``) once listening, runs until SIGTERM/Ctrl-C (exit 0);
a bad option or data directory exits 2 with a one-line error.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["exchange_sim", "register"]


def exchange_sim(
    data: Path | None = typer.Option(
        None, help="Directory of BASE_QUOTE-<timeframe>.csv candles (default: the sample "
                   "data)."),
    symbols: str = typer.Option("ETH/BTC,LTC/BTC,ADA/BTC,DASH/BTC",
                                help="Markets, comma-separated."),
    port: int = typer.Option(0, help="Port on 127.0.0.1 (0: any free one)."),
    bars_per_s: float = typer.Option(
        4.0, "--bars-per-s", help="Bars the market clock moves per second (0: only by the "
                                  "admin API)."),
    start_bar: int = typer.Option(60, help="Bars after the first one the clock starts at."),
    timeframe: str = typer.Option("5m", help="Candle length (file suffix): 1m, 5m, 15m, 1h."),
    fee_rate: str = typer.Option("0.001", help="Taker fee, fraction of the notional."),
    fee_asset: str = typer.Option("base", help="Asset a BUY pays its fee in: base (Binance "
                                               "without BNB) or quote."),
    dup_scope: str = typer.Option("open", help="Client order ids refused as duplicates: "
                                               "'open' orders' (Binance) or 'all'."),
    balances: str = typer.Option("BTC=1", help="Initial balances ASSET=AMOUNT,..."),
    seed: int = typer.Option(0, help="Seed of the random faults."),
    admin_token: str | None = typer.Option(
        None, help="Require this X-Sim-Token header on the admin API."),
    api_key: str | None = typer.Option(
        None, help="API key it accepts (default: the test key)."),
    secret: str | None = typer.Option(
        None, help="Secret it accepts (default: the test secret)."),
) -> None:
    """Run a simulated Binance spot exchange (for ccxt) with faults and an admin API."""
    from backend.exchange_sim.run import (
        USAGE_ERROR,
        SimOptions,
        parse_balances,
        parse_symbols,
        serve,
    )

    defaults = SimOptions()
    try:
        opts = SimOptions(
            data=data or defaults.data, symbols=parse_symbols(symbols), port=port,
            bars_per_s=bars_per_s, start_bar=start_bar, timeframe=timeframe,
            fee_rate=fee_rate, fee_asset=fee_asset, dup_scope=dup_scope,
            balances=parse_balances(balances), seed=seed, admin_token=admin_token,
            api_key=api_key or defaults.api_key, secret=secret or defaults.secret,
        )
        if bars_per_s < 0 or start_bar < 0:
            raise ValueError("--bars-per-s and --start-bar must be >= 0")
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(USAGE_ERROR) from None
    raise typer.Exit(serve(opts))


def register(app: typer.Typer) -> None:
    """Add the ``exchange-sim`` command to ``app``."""
    app.command("exchange-sim")(exchange_sim)
