"""Market data: OHLCV candles from CSV files and from ccxt, recent-close histories, and the
market regime of a bar.

* :mod:`backend.marketdata.candles` -- OHLCV candles from CSV files: loading and validation;
* :mod:`backend.marketdata.history` -- Recent bar closes per symbol: a bounded in-memory
  history and readers of ``market_data``;
* :mod:`backend.marketdata.live_feed` -- Live candles through ccxt: REST polling of closed
  OHLCV bars, as ``BarClosed`` messages;
* :mod:`backend.marketdata.ohlcv` -- The OHLCV bar-array protocol every strategy, feature
  and backtest reads;
* :mod:`backend.marketdata.regime` -- Market regime of a bar, from closing prices only:
  trend direction and volatility level;
* :mod:`backend.marketdata.replay_order` -- The global replay order of several symbols'
  candles: every bar once, by (time, symbol);
* :mod:`backend.marketdata.regime_names` -- The names of the market regimes, and the
  checks of a configured list of them (no numpy: the configuration models use it).

Nothing is imported here: import the submodules.
"""

__all__ = [
    "candles",
    "history",
    "live_feed",
    "ohlcv",
    "regime",
    "regime_names",
    "replay_order",
]
