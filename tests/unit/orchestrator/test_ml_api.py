"""``GET /api/models`` on the fake mesh of tests/support/api_fixtures.py: saved versions and
each symbol's live model state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.marketdata.candles import load_dir
from backend.ml.live import ActiveModel, MlAgentState, PendingModel, ml_state_key
from backend.ml.store import ModelStore, model_root
from backend.ml.train import train_model
from backend.rest.models import ModelsView
from tests.support.api_fixtures import AUTH, Harness, mesh


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    with mesh(tmp_path) as harness:
        yield harness


def test_models_lists_versions_and_live_state(h: Harness) -> None:
    with TestClient(h.app(), headers=AUTH) as client:
        view = ModelsView.model_validate(client.get("/api/models").json())
        assert view.versions == [] and all(not lv.reported for lv in view.live)
        assert view.models_dir == str(model_root(h.settings))

        eth = load_dir(h.settings.data_dir, ["ETH/BTC"])["ETH/BTC"]
        store = ModelStore(model_root(h.settings), "ETH/BTC")
        saved = store.save(train_model(eth, symbol="ETH/BTC", horizon=6, end=1200))
        st = MlAgentState(active=ActiveModel(version=1, since_seq=401, trigger="initial",
                                             horizon=6, cv_score=saved.meta.cv_score),
                          pending=PendingModel(version=2, after_seq=900, trigger="hit_rate"),
                          hit_rate=0.45, resolved=120, bars=500)
        h.sync.set(ml_state_key("strategy:ETHBTC"), st.to_json())
        r = client.get("/api/models")
        assert r.status_code == 200, r.text
        view = ModelsView.model_validate(r.json())
        (v,) = view.versions
        assert (v.symbol, v.version, v.bars, v.cv_scores) == (
            "ETH/BTC", 1, 1200, saved.meta.cv_scores)
        live = {lv.symbol: lv for lv in view.live}
        e = live["ETH/BTC"]
        assert (e.version, e.since_seq, e.hit_rate, e.resolved, e.pending_version,
                e.pending_after_seq, e.reported) == (1, 401, 0.45, 120, 2, 900, True)
        assert e.threshold == h.settings.ml.hit_rate_threshold
        assert not live["LTC/BTC"].reported and live["LTC/BTC"].version is None
        assert client.get("/api/models", headers={"Authorization": ""}).status_code == 401
