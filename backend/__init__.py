"""The library of the mesh; imports neither ``agents`` nor ``orchestrator``.

Flat modules: ``common`` (helpers every package uses), ``channels`` (every channel,
stream and key name), ``settings`` (the configuration, composed of the packages' own
``config`` models), ``indicators`` and ``bus`` (Redis Streams and PUBLISH).  Packages, one
domain each: ``messages``, ``mesh``, ``marketdata``, ``strategies``, ``ml``,
``compliance``, ``risk``, ``venues``, ``persistence``, ``performance``, ``evaluation``,
``backtest``, ``optimizer``, ``redisctl``, ``runtime``, ``exchange_sim`` and ``rest`` (the
REST contract, a leaf).  Nothing is imported here.
"""

__all__ = [
    "backtest",
    "bus",
    "channels",
    "common",
    "compliance",
    "evaluation",
    "exchange_sim",
    "indicators",
    "marketdata",
    "mesh",
    "messages",
    "ml",
    "optimizer",
    "performance",
    "persistence",
    "redisctl",
    "rest",
    "risk",
    "runtime",
    "settings",
    "strategies",
    "venues",
]
