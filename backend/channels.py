"""Every Redis channel, stream and key name the mesh uses, in one place.

Pub/sub is at-most-once, so every channel on the order path is *also* a Redis
Stream of the same name, read through consumer groups (see ``ORDER_PATH_STREAMS``).
Everything is PUBLISHed as well, so ``redis-cli PSUBSCRIBE '*'`` shows live traffic.

Key naming: ``<area>:<thing>[:<id>]``.  Agent ids are ``<role>`` or
``<role>:<SYMBOL>`` (compact symbol, e.g. ``strategy:ETHBTC``).
"""

from __future__ import annotations

from typing import Final

# --- channels named by the product brief -----------------------------------------
MARKET_DATA: Final = "market_data"
TRADING_EVENTS: Final = "trading_events"
AGENT_STATUS: Final = "agent:status"
AGENT_ERRORS: Final = "agent:errors"
AGENT_BROADCAST: Final = "agent:broadcast"
MODEL_METRICS: Final = "model_metrics"
RETRAIN_STATUS: Final = "retrain_status"

# --- pipeline channels ------------------------------------------------------------
SIGNALS: Final = "signals"
SIGNALS_APPROVED: Final = "signals:approved"  # compliance -> risk
SIGNALS_REJECTED: Final = "signals:rejected"  # compliance or risk said no (with reason)
ORDERS: Final = "orders"  # risk -> execution (SubmitOrder commands)
RISK_ALERTS: Final = "risk_alerts"
AUDIT: Final = "audit"
AGENT_CONTROL: Final = "agent:control"
DEAD_LETTER: Final = "dead_letter"

# --- optimizer and hot reload (durable control streams, off the order path) -------
#: ``RunOptimizer`` commands (REST API, the agent's own schedule) -> optimizer agent.
OPTIMIZER_REQUESTS: Final = "optimizer:requests"
#: ``ParamsProposed`` events: optimizer agent -> orchestrator (applies, or awaits approval).
OPTIMIZER_PROPOSALS: Final = "optimizer:proposals"
#: ``UpdateStrategyParams`` commands (orchestrator -> strategy agents) and the agents'
#: ``StrategyParamsUpdated`` events (the bar from which the new parameters hold).
STRATEGY_PARAMS: Final = "strategy:params"

#: Channels that are also Redis Streams read with consumer groups (at-least-once).
ORDER_PATH_STREAMS: Final = (MARKET_DATA, SIGNALS, SIGNALS_APPROVED, ORDERS, TRADING_EVENTS)

#: Streams read with consumer groups that are *not* on the order path: the replay's
#: back-pressure never waits for them (an optimization may take minutes).
CONTROL_STREAMS: Final = (OPTIMIZER_REQUESTS, OPTIMIZER_PROPOSALS, STRATEGY_PARAMS)

#: Streams kept for inspection (``XRANGE``) but not consumed through groups.
HISTORY_STREAMS: Final = (SIGNALS_REJECTED, DEAD_LETTER, AUDIT, RISK_ALERTS)

STREAMS: Final = ORDER_PATH_STREAMS + CONTROL_STREAMS + HISTORY_STREAMS

ALL_CHANNELS: Final = (
    MARKET_DATA,
    TRADING_EVENTS,
    AGENT_STATUS,
    AGENT_ERRORS,
    AGENT_BROADCAST,
    MODEL_METRICS,
    RETRAIN_STATUS,
    SIGNALS,
    SIGNALS_APPROVED,
    SIGNALS_REJECTED,
    ORDERS,
    RISK_ALERTS,
    AUDIT,
    AGENT_CONTROL,
    DEAD_LETTER,
    OPTIMIZER_REQUESTS,
    OPTIMIZER_PROPOSALS,
    STRATEGY_PARAMS,
)

# --- keys ------------------------------------------------------------------------
HEALTH_KEY_PREFIX: Final = "agent:health:"
#: Latched trading halt (kill switch / circuit breaker). JSON of ``HaltState``.
HALT_KEY: Final = "mesh:halt"
#: The last audited reset of the latch (JSON ``HaltReset``: generation, time, who, why).
HALT_RESET_KEY: Final = "mesh:halt:reset"
#: A random token the orchestrator keeps in Redis: gone = Redis lost its data.
INSTANCE_KEY: Final = "mesh:instance"
#: Hash ``symbol -> SymbolHalt JSON``: symbols halted until a person resolves them (an
#: order whose outcome stayed unknown, a position the venue holds differently).
SYMBOL_HALTS_KEY: Final = "mesh:halt:symbols"
#: Set of agent ids an operator stopped on purpose (their groups hold nothing back).
PARKED_AGENTS_KEY: Final = "mesh:parked"
#: Replay cursor of the market_data agent (last published bar seq).
REPLAY_CURSOR_KEY: Final = "market_data:cursor"
#: Deployment epoch of the current bar sequence (``BarClosed.epoch``); a sequence that
#: starts afresh (no cursor) takes the next epoch from the database.
REPLAY_EPOCH_KEY: Final = "market_data:epoch"
#: Set by the market_data agent when a finite replay has published its last bar.
REPLAY_DONE_KEY: Final = "market_data:done"
#: Latest portfolio state published by the execution agent (JSON ``PortfolioState``).
PORTFOLIO_KEY: Final = "execution:portfolio"
#: Paper venue book (JSON), owned by the paper venue adapter.
PAPER_VENUE_KEY: Final = "venue:paper:book"
#: Paper venue hashes: client order id -> order; -> rejection; -> ``{"symbol", "side",
#: "quantity"}`` of every order submitted; fill id -> ``OrderFilled`` JSON (its trades).
PAPER_ORDERS_HASH: Final = "venue:paper:orders"
PAPER_REJECTS_HASH: Final = "venue:paper:rejects"
PAPER_ORDER_LOG_HASH: Final = "venue:paper:order_log"
PAPER_FILLS_HASH: Final = "venue:paper:fills"
#: Hash ``channel -> messages published`` (the agents' and the dashboard's counters).
STATS_KEY: Final = "stats:messages"
#: Prefix of an agent's "message already handled" sets (:func:`seen_key`).
SEEN_KEY_PREFIX: Final = "agent:seen:"
#: ns time of the optimizer agent's next scheduled run (``optimizer.interval_s`` > 0).
OPTIMIZER_SCHEDULE_KEY: Final = "optimizer:schedule:next"
#: Hash ``run id -> UpdateStrategyParams JSON`` of every proposal applied: written in the
#: same MULTI/EXEC as the command, so a run's parameters are applied at most once.
OPTIMIZER_APPLIED_KEY: Final = "optimizer:applied"
#: Consumer group (and consumer name) of the orchestrator on ``optimizer:proposals``.
ORCHESTRATOR_GROUP: Final = "orchestrator"


def health_key(agent_id: str) -> str:
    """Return the TTL key that holds ``agent_id``'s last heartbeat."""
    return f"{HEALTH_KEY_PREFIX}{agent_id}"


def state_key(agent_id: str) -> str:
    """Return the key holding an agent's durable working state (JSON)."""
    return f"agent:state:{agent_id}"


def lease_key(agent_id: str) -> str:
    """Return the key of the lease that makes one process the live ``agent_id``."""
    return f"agent:lease:{agent_id}"


def lease_fence_key(agent_id: str) -> str:
    """Return the counter of ``agent_id``'s lease generations (fencing tokens)."""
    return f"agent:lease:{agent_id}:fence"


def decisions_key(agent_id: str) -> str:
    """Return the hash ``message id -> emitted output`` used for idempotent redelivery."""
    return f"agent:decisions:{agent_id}"


def seen_key(agent_id: str, day: int) -> str:
    """Return the set of message ids ``agent_id`` handled on UTC day index ``day``."""
    return f"{SEEN_KEY_PREFIX}{agent_id}:{day}"


def live_ledger_key(venue: str) -> str:
    """Return the prefix of live venue ``venue``'s ledger keys (blob, ``:orders``,
    ``:fills``; :func:`backend.venues.live_state.ledger_keys`)."""
    return f"venue:live:{venue}"


def compact_symbol(symbol: str) -> str:
    """``'ETH/BTC'`` -> ``'ETHBTC'`` (also accepts ``ETH-BTC``, ``ETH_BTC``, ``ETHBTC``)."""
    return symbol.replace("/", "").replace("-", "").replace("_", "").upper()
