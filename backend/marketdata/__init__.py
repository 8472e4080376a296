"""Market data: OHLCV candles from CSV files and from ccxt, recent-close histories, and the
market regime of a bar.

* :mod:`backend.marketdata.candles`
* :mod:`backend.marketdata.history`
* :mod:`backend.marketdata.live_feed`
* :mod:`backend.marketdata.regime`

Nothing is imported here: import the submodules.
"""

__all__ = ["candles", "history", "live_feed", "regime"]
