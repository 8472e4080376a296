"""Read model of the ML models for the REST API: saved versions and live agent state.

``GET /api/models`` (:mod:`orchestrator.api`) returns :func:`models_view`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from backend.mesh.topology import strategy_id
from backend.ml.live import ml_state_key, parse_ml_state
from backend.ml.store import list_models, model_root
from backend.rest.ml import ModelLiveView, ModelsView, ModelVersionView

__all__ = ["live_view", "models_view"]


def live_view(symbol: str, raw: bytes | str | None, settings: Any) -> ModelLiveView:
    """The live state of ``symbol``'s model from its agent's ML state JSON ``raw``."""
    agent = strategy_id(symbol)
    ml = settings.ml
    base = {"symbol": symbol, "agent_id": agent, "window": ml.hit_rate_window,
            "threshold": ml.hit_rate_threshold}
    st = parse_ml_state(raw)
    if st is None:
        return ModelLiveView(**base, reported=False)
    a, p = st.active, st.pending
    return ModelLiveView(
        **base, version=a.version if a else None, since_seq=a.since_seq if a else 0,
        trigger=a.trigger if a else "", cv_score=a.cv_score if a else None,
        pending_version=p.version if p else None, pending_after_seq=p.after_seq if p else None,
        hit_rate=st.hit_rate, resolved=st.resolved, bars=st.bars,
        bars_since_train=st.bars_since_train)


async def models_view(settings: Any, redis: Any) -> ModelsView:
    """Saved versions (every symbol under the models directory) and the live state of
    each configured symbol's strategy agent.

    Parameters
    ----------
    settings : backend.settings.Settings
    redis : redis.asyncio.Redis
    """
    root = model_root(settings)
    metas = await asyncio.to_thread(list_models, root)
    symbols = list(settings.symbols)
    raws = await redis.mget([ml_state_key(strategy_id(s)) for s in symbols]) if symbols else []
    return ModelsView(
        models_dir=str(root),
        versions=[ModelVersionView(**m.model_dump()) for m in metas],
        live=[live_view(s, raw, settings) for s, raw in zip(symbols, raws, strict=True)])
