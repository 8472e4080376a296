"""A drill mesh that trades through real ccxt against the exchange simulator.

:class:`VenueDrillMesh` is a :class:`~orchestrator.drills.mesh.DrillMesh` (its own Redis
with the ACL, ``tradingmesh up`` as a child process) whose venue is
``venue.kind = "ccxt"`` pointed at an :class:`~backend.exchange_sim.ExchangeSim` the drill
runs in a thread of its own, and whose bars are the simulator's live candles
(``market_data_source = "ccxt"``).  The simulator behaves like Binance spot where it
hurts: a ``newClientOrderId`` is refused only while its order is open
(``dup_scope="open"``), a buy's fee is taken in the coins bought (``fee_asset="base"``),
a signed request older than its ``recvWindow`` is refused.  The strategy is the
``every_tick`` benchmark strategy with a 0.3% bracket, so orders, exits and protective
stops come every few bars.
"""

from __future__ import annotations

import json
from pathlib import Path

from backend.exchange_sim import SAMPLE_SYMBOLS, ExchangeSim
from orchestrator.drills.mesh import DrillMesh

__all__ = ["RECV_WINDOW_MS", "TIMEOUT_MS", "VenueDrillMesh"]

#: ccxt's per-request timeout in the drill (ms): a ``late`` request lands after it.
TIMEOUT_MS = 1500
#: The ``recvWindow`` every signed request carries (ms): nothing lands later than this.
RECV_WINDOW_MS = 4000
#: Market bars the simulator's clock moves per second of wall time.
BARS_PER_S = 4.0


class VenueDrillMesh(DrillMesh):
    """A drill mesh on the exchange simulator (see the module docstring).

    Parameters
    ----------
    work_dir
        As :class:`DrillMesh`.
    limit
        Bars per symbol the live feed publishes before it reports the end.
    seed
        Seed of the simulator's random faults.
    """

    def __init__(self, work_dir: Path, *, limit: int, seed: int = 0) -> None:
        super().__init__(work_dir, limit=limit)
        self.sim = ExchangeSim(symbols=list(SAMPLE_SYMBOLS), start_bar=20, bars_per_s=BARS_PER_S,
                               fee_asset="base", dup_scope="open", seed=seed,
                               balances={"BTC": "1"})

    def env(self) -> dict[str, str]:
        """The orchestrator's environment: the paper drill's plus the venue, the live
        feed, the strategy and limits that let it trade on every bar."""
        env = super().env()
        venue = {
            "kind": "ccxt", "poll_s": 0.2, "submit_timeout_s": 3.0, "resolve_attempts": 4,
            "resolve_backoff_s": 0.2, "retry_max_s": 2.0, "unknown_margin_s": 1.0,
            "unknown_window_s": 5.0, "unknown_recheck_s": 2.0, "position_check_s": 5.0,
            "ccxt": {"urls": self.sim.ccxt_urls(), "rate_limit_ms": 1, "poll_s": 0.1,
                     "timeout_ms": TIMEOUT_MS, "options": {"recvWindow": RECV_WINDOW_MS}},
        }
        env.update({
            "TRADINGMESH_VENUE": json.dumps(venue),
            "TRADINGMESH_MARKET_DATA_SOURCE": "ccxt",
            "TRADINGMESH_DEFAULT_STRATEGY": json.dumps(
                {"name": "every_tick", "params": {"bracket_frac": 0.003}}),
            "TRADINGMESH_COMPLIANCE": json.dumps(
                {"max_trades_per_day": 100_000, "max_notional_per_day": 1_000_000.0,
                 "duplicate_window_s": 0.0}),
            # the drill trades on every bar at a loss (fees): no breaker trip mid-run
            "TRADINGMESH_RISK": json.dumps({"min_confidence": 0.0,
                                            "daily_drawdown_limit": 0.9}),
            # kills and reconciliation crashes come in series: not a crash loop to give up
            "TRADINGMESH_ORCHESTRATOR__MAX_RESTARTS": "100",
            "TRADINGMESH_ORCHESTRATOR__RESTART_BACKOFF_MAX_S": "2",
            "TRADINGMESH_CCXT_API_KEY": self.sim.api_key,
            "TRADINGMESH_CCXT_SECRET": self.sim.secret,
        })
        return env

    async def start(self, timeout: float = 120.0) -> None:
        """Start the simulator, then Redis and the orchestrator."""
        self.sim.start()
        await super().start(timeout)

    async def close(self) -> None:
        """Stop the mesh, then the simulator."""
        try:
            await super().close()
        finally:
            self.sim.stop()
