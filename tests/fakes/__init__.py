"""In-process fakes of the venues' APIs (MetaTrader 5 terminal, IB TWS, ...) for tests."""
