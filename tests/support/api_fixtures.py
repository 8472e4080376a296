"""Shared harness of the control-plane unit tests (not a test module).

:func:`mesh` builds one fake mesh around the real :class:`ControlPlane`:

* one ``fakeredis.FakeServer`` seen through a sync client (``Harness.sync``: seeding and
  inspection from the test) and an async one (``Harness.aredis``: given to the
  supervisor and the control plane; only ever used from the app's event loop);
* a :class:`DummySupervisor` whose agents are harmless ``sleep`` processes, with
  heartbeats written for their pids (one of them old: ``stale``);
* a SQLite :class:`Store` seeded with signals, decisions, orders, fills, audit rows and
  equity marks, and the execution agent's last portfolio mark in ``PORTFOLIO_KEY``.

Every dummy process is SIGKILLed when the block exits.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fakeredis
import fakeredis.aioredis
from fastapi import FastAPI

from backend import channels
from backend.mesh.topology import agent_specs
from backend.messages import (
    AgentHeartbeat,
    AgentState,
    ComplianceDecided,
    ExitReason,
    FoldScore,
    OptimizerFinished,
    OptimizerProgressed,
    OrderFilled,
    OrderStatus,
    PortfolioMarked,
    PositionSnapshot,
    RiskDecided,
    Side,
    SignalGenerated,
    SubmitOrder,
    client_order_id_for,
    now_ns,
)
from backend.optimizer.proposal import ProposalRecord, proposal_key
from backend.persistence import Store, make_engine
from backend.settings import ApiConfig, OrchestratorConfig, PaperConfig, Settings
from orchestrator.api.app import create_app
from orchestrator.api.server import refresh_metrics
from orchestrator.control import ControlPlane
from orchestrator.metrics import MeshMetrics
from orchestrator.supervisor import Managed, Supervisor

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SYMBOLS = ["ETH/BTC", "LTC/BTC", "ADA/BTC", "DASH/BTC"]
AGENT_IDS = [
    "market_data", "strategy:ETHBTC", "strategy:LTCBTC", "strategy:ADABTC",
    "strategy:DASHBTC", "compliance", "risk", "execution", "optimizer",
]
#: The agent whose heartbeat is old (``stale``, though its state says running).
STALE_AGENT = "compliance"
INITIAL_CASH = 1.0
N_MARKS = 40
#: A seeded optimizer run's best parameters, and the ones running (sma_cross defaults).
BEST = {"fast": 7, "slow": 25, "atr_period": 14, "stop_atr": 2.0, "reward_risk": 2.0}
RUNNING = {"fast": 10, "slow": 30, "atr_period": 14, "stop_atr": 2.0, "reward_risk": 2.0}

_SLEEP = shutil.which("sleep")
#: A harmless long-lived process (coreutils ``sleep`` starts faster than Python).
DUMMY_CMD = [_SLEEP, "600"] if _SLEEP else [sys.executable, "-c", "import time; time.sleep(600)"]


class DummySupervisor(Supervisor):
    """A supervisor whose agents are dummy ``sleep`` processes (no agent code runs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spawned: list[subprocess.Popen[bytes]] = []

    def spawn(self, m: Managed) -> None:  # noqa: D102 - same contract as Supervisor.spawn
        m.proc = subprocess.Popen(  # noqa: S603 - a fixed harmless command
            DUMMY_CMD, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self.spawned.append(m.proc)
        m.started_mono = time.monotonic()
        m.next_start_mono = None
        m.seen_heartbeat = False

    def kill_everything(self) -> None:
        """SIGKILL and reap every process this supervisor ever spawned."""
        for proc in self.spawned:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)


@dataclass
class Seed:
    """Ids of the seeded records."""

    signals: dict[str, SignalGenerated] = field(default_factory=dict)
    orders: dict[str, str] = field(default_factory=dict)  # name -> client order id
    fills: list[str] = field(default_factory=list)
    audit_id: str = ""
    mark: PortfolioMarked | None = None


@dataclass
class Harness:
    """One fake mesh: settings, Redis (sync + async views), supervisor, store, control."""

    settings: Settings
    server: fakeredis.FakeServer
    sync: fakeredis.FakeRedis
    aredis: fakeredis.aioredis.FakeRedis
    supervisor: DummySupervisor
    store: Store
    control: ControlPlane
    metrics: MeshMetrics
    seed: Seed

    def app(self, token: str | None = TOKEN, *, with_metrics: bool = True) -> FastAPI:
        """The FastAPI app around this mesh's control plane."""

        async def metrics_text() -> tuple[bytes, str]:
            return await refresh_metrics(self.control, self.metrics)

        return create_app(self.control, token=token,
                          metrics_text=metrics_text if with_metrics else None)

    def pid(self, agent_id: str) -> int | None:
        """The agent's current pid (None when not running)."""
        return self.supervisor.get(agent_id).pid

    def beat(
        self, agent_id: str, *, age_s: float = 0.0, state: AgentState = AgentState.RUNNING,
        pid: int | None = None, messages_in: int = 7, last_error: str = "",
    ) -> AgentHeartbeat:
        """Write a heartbeat of ``agent_id`` (for its current pid) into its health key."""
        m = self.supervisor.get(agent_id)
        pid = m.pid if pid is None else pid
        assert pid is not None, f"{agent_id} is not running"
        ts = now_ns() - int(age_s * 1e9)
        hb = AgentHeartbeat(
            source=agent_id, ts=ts, agent_id=agent_id, role=m.spec.role, state=state, pid=pid,
            started_at=ts, messages_in=messages_in, messages_out=3, errors=1,
            last_error=last_error,
        )
        self.sync.set(channels.health_key(agent_id), hb.to_json())
        return hb

    def beat_all(self) -> None:
        """A fresh heartbeat for every running agent, an old one for :data:`STALE_AGENT`."""
        for agent_id in self.supervisor.agents:
            if self.pid(agent_id) is not None:
                self.beat(agent_id, age_s=60.0 if agent_id == STALE_AGENT else 0.0)


def make_settings(tmp_path: Path) -> Settings:
    """Settings of a test mesh under ``tmp_path`` (fast shutdown, no emergency wait)."""
    return Settings(
        var_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/t.db", symbols=list(SYMBOLS),
        orchestrator=OrchestratorConfig(shutdown_grace_s=2, heartbeat_ttl_s=5.0),
        api=ApiConfig(emergency_wait_s=0.0), paper=PaperConfig(initial_cash=INITIAL_CASH),
    )


def _signal(sym: str, side: Side, seq: int, ts: int, confidence: float = 0.9) -> SignalGenerated:
    sig = SignalGenerated(
        source=f"strategy:{sym.replace('/', '')}", ts=ts, symbol=sym, side=side,
        confidence=confidence, entry_price=0.05, stop_loss=0.04, take_profit=0.07,
        reason=f"test signal {seq}", strategy="sma_cross", bar_seq=seq, bar_time=ts,
    )
    return sig.model_copy(update={"correlation_id": sig.id})


def _order(store: Store, sig: SignalGenerated, qty: float, status: OrderStatus) -> str:
    coid = client_order_id_for(sig.id)
    store.record_order_intent(SubmitOrder(
        source="risk", ts=sig.ts + 1, correlation_id=sig.id, client_order_id=coid,
        symbol=sig.symbol, side=sig.side, quantity=qty, signal_id=sig.id,
        bar_seq=sig.bar_seq, stop_loss=sig.stop_loss, take_profit=sig.take_profit,
    ))
    if status is not OrderStatus.NEW:
        store.update_order_status(coid, status, venue_order_id=f"v-{coid}", ts=sig.ts + 2)
    return coid


def _fill(store: Store, sig: SignalGenerated, coid: str, qty: float, price: float,
          pnl: float = 0.0, reason: ExitReason = ExitReason.ENTRY) -> str:
    fid = f"f-{coid}"
    store.record_fill(OrderFilled(
        source="execution", ts=sig.ts + 3, correlation_id=sig.id, fill_id=fid,
        client_order_id=coid, symbol=sig.symbol, side=sig.side, quantity=qty, price=price,
        fee=qty * price * 0.001, realized_pnl=pnl, exit_reason=reason, bar_seq=sig.bar_seq,
        fill_time=sig.ts + 3,
    ))
    return fid


def seed_store(store: Store, sync: fakeredis.FakeRedis) -> Seed:
    """Seed the trading records and the last portfolio mark.

    * ETH/BTC: BUY 1 @ 0.05 (FILLED), then SELL 1 @ 0.055 (FILLED): one closed trade;
    * LTC/BTC: BUY 2 @ 0.002 (FILLED): an open trade and the open position of the mark;
    * ADA/BTC: an ACCEPTED order (open, no fill);
    * DASH/BTC: signal approved by compliance, rejected by risk (``min_confidence``);
      a LTC/BTC signal rejected by compliance (``max_trades_per_day``); a REJECTED
      order for DASH/BTC (venue refused) from another signal.
    """
    seed = Seed()
    t0 = now_ns() - 3_600_000_000_000  # an hour ago
    step = 60_000_000_000

    def approve(sig: SignalGenerated, qty: float) -> None:
        store.record_decision(ComplianceDecided(
            source="compliance", ts=sig.ts + 1, correlation_id=sig.id, approved=True,
            rule="ok", reason="all rules passed", signal=sig))
        store.record_decision(RiskDecided(
            source="risk", ts=sig.ts + 2, correlation_id=sig.id, approved=True, rule="ok",
            reason="sized", signal=sig, quantity=qty, notional=qty * sig.entry_price,
            equity=INITIAL_CASH))

    eth_buy = _signal("ETH/BTC", Side.BUY, 1, t0)
    eth_sell = _signal("ETH/BTC", Side.SELL, 2, t0 + step)
    ltc_buy = _signal("LTC/BTC", Side.BUY, 3, t0 + 2 * step)
    ada_buy = _signal("ADA/BTC", Side.BUY, 4, t0 + 3 * step)
    dash_low = _signal("DASH/BTC", Side.BUY, 5, t0 + 4 * step, confidence=0.5)
    ltc_comp = _signal("LTC/BTC", Side.BUY, 6, t0 + 5 * step)
    dash_rej = _signal("DASH/BTC", Side.BUY, 7, t0 + 6 * step)
    for name, sig in [("eth_buy", eth_buy), ("eth_sell", eth_sell), ("ltc_buy", ltc_buy),
                      ("ada_buy", ada_buy), ("dash_low", dash_low), ("ltc_comp", ltc_comp),
                      ("dash_rej", dash_rej)]:
        store.record_signal(sig)
        seed.signals[name] = sig
    for sig, qty in [(eth_buy, 1.0), (eth_sell, 1.0), (ltc_buy, 2.0), (ada_buy, 10.0),
                     (dash_rej, 0.5)]:
        approve(sig, qty)
    store.record_decision(ComplianceDecided(
        source="compliance", ts=dash_low.ts + 1, correlation_id=dash_low.id, approved=True,
        rule="ok", reason="all rules passed", signal=dash_low))
    store.record_decision(RiskDecided(
        source="risk", ts=dash_low.ts + 2, correlation_id=dash_low.id, approved=False,
        rule="min_confidence", reason="confidence 0.50 < 0.85", signal=dash_low))
    store.record_decision(ComplianceDecided(
        source="compliance", ts=ltc_comp.ts + 1, correlation_id=ltc_comp.id, approved=False,
        rule="max_trades_per_day", reason="40 trades today", signal=ltc_comp))

    seed.orders["eth_buy"] = _order(store, eth_buy, 1.0, OrderStatus.FILLED)
    seed.orders["eth_sell"] = _order(store, eth_sell, 1.0, OrderStatus.FILLED)
    seed.orders["ltc_buy"] = _order(store, ltc_buy, 2.0, OrderStatus.FILLED)
    seed.orders["ada_buy"] = _order(store, ada_buy, 10.0, OrderStatus.ACCEPTED)
    seed.orders["dash_rej"] = _order(store, dash_rej, 0.5, OrderStatus.REJECTED)
    seed.fills.append(_fill(store, eth_buy, seed.orders["eth_buy"], 1.0, 0.05))
    seed.fills.append(_fill(store, eth_sell, seed.orders["eth_sell"], 1.0, 0.055, pnl=0.005,
                            reason=ExitReason.SIGNAL))
    seed.fills.append(_fill(store, ltc_buy, seed.orders["ltc_buy"], 2.0, 0.002))

    audit_ts = t0 + 7 * step
    store.record_audit("risk", "reject", "rejected", "confidence 0.50 < 0.85",
                       subject_id=dash_low.id, correlation_id=dash_low.id, ts=audit_ts)
    seed.audit_id = store.audit(action="reject")[-1]["id"]

    marks = []
    equity = INITIAL_CASH
    for i in range(N_MARKS):
        equity *= 1.0 + (0.002 if i % 3 else -0.004)  # a wobbly curve with drawdowns
        marks.append(PortfolioMarked(
            source="execution", bar_seq=100 + i, bar_time=t0 + i * step, cash=equity - 0.0042,
            equity=equity, exposure=0.0042, day=(t0 + i * step) // 86_400_000_000_000,
            day_start_equity=INITIAL_CASH,
            positions={"LTC/BTC": PositionSnapshot(quantity=2.0, avg_price=0.002,
                                                   mark=0.0021)},
        ))
    store.record_equity_many(marks)
    seed.mark = marks[-1]
    sync.set(channels.PORTFOLIO_KEY, seed.mark.to_json())
    return seed


def seed_run(h: Harness, run_id: str, status: str = "proposed", finished: bool = True) -> None:
    """A two-generation, one-fold run of ETH/BTC and (``status``) its verdict."""
    st = h.store
    st.record_optimizer_run(run_id, "sma_cross", "sharpe", {"population": 6}, ["ETH/BTC"],
                            100, 200, started_ts=1_000)
    for g in (0, 1):
        st.record_optimizer_progress(OptimizerProgressed(
            source="optimizer", run_id=run_id, strategy="sma_cross", objective="sharpe",
            fold=0, folds=1, generation=g, generations=1, best=1.0 + g, mean=0.5, std=0.1,
            evaluations=6 * (g + 1), best_params=BEST))
    if not finished:
        return
    st.finish_optimizer_run(OptimizerFinished(
        source="optimizer", run_id=run_id, strategy="sma_cross", objective="sharpe",
        symbols=["ETH/BTC"], best_params=BEST, in_sample=2.0, out_of_sample=1.2,
        mean_in_sample=2.0, mean_out_of_sample=1.2, overfit=False, evaluations=12,
        folds=[FoldScore(fold=0, params=BEST, in_sample=2.0, out_of_sample=1.2, overfit=False,
                         is_start=100, is_end=150, oos_start=150, oos_end=200)],
        started_ns=1_000, finished_ns=2_000))
    if status:
        rec = ProposalRecord(
            run_id=run_id, symbol="ETH/BTC", status=status, reason="test verdict",
            strategy="sma_cross", params=BEST, current_strategy="sma_cross",
            current_params=RUNNING, objective="sharpe", score=1.2, baseline=0.4, margin=0.1,
            decided_ts=3_000)
        st.put_state(proposal_key(run_id), rec.model_dump(mode="json"))



@contextlib.contextmanager
def mesh(
    tmp_path: Path, control_cls: type[ControlPlane] = ControlPlane,
) -> Iterator[Harness]:
    """A running fake mesh (every agent a dummy process with a heartbeat); torn down after."""
    settings = make_settings(tmp_path)
    server = fakeredis.FakeServer()
    sync = fakeredis.FakeRedis(server=server)
    # The async client connects lazily, on the loop of its first command (the app's).
    aredis = fakeredis.aioredis.FakeRedis(server=server)
    supervisor = DummySupervisor(settings, agent_specs(settings), env={},
                                 log_dir=tmp_path / "logs", redis=aredis)
    store = Store(make_engine(settings.db_url()))
    try:
        seed = seed_store(store, sync)
        supervisor.start_all()
        control = control_cls(settings, supervisor, store, redis=aredis)
        h = Harness(settings, server, sync, aredis, supervisor, store, control, MeshMetrics(),
                    seed)
        h.beat_all()
        yield h
    finally:
        supervisor.kill_everything()
        store.close()
        sync.close()
