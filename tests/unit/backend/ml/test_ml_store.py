"""Versioned model store: versions grow, metadata round-trips, tampering is caught."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.marketdata.candles import Candles, load_dir
from backend.ml.features import feature_matrix
from backend.ml.store import ModelStore, ModelStoreError, list_models, model_root
from backend.ml.train import train_model
from backend.settings import MlConfig, Settings


@pytest.fixture(scope="module")
def eth() -> Candles:
    return load_dir(Settings().data_dir, ["ETH/BTC"])["ETH/BTC"]


@pytest.fixture(scope="module")
def trained(eth: Candles):  # noqa: ANN201
    return train_model(eth, symbol="ETH/BTC", horizon=6, end=1500)


def test_versions_increase_and_metadata_round_trips(tmp_path: Path, trained, eth) -> None:  # noqa: ANN001
    store = ModelStore(tmp_path, "ETH/BTC")
    assert store.versions() == [] and store.latest() is None
    v1 = store.save(trained)
    v2 = store.save(trained.with_meta(trigger="hit_rate", trigger_seq=42))
    assert (v1.version, v2.version) == (1, 2) and store.versions() == [1, 2]
    assert store.latest() == 2
    assert store.path(1).name == "v0001.joblib" and store.dir == tmp_path / "ETHBTC" / \
        "ml_classifier"
    meta = store.meta(2)
    assert meta == v2.meta and meta.sha256 and meta.trigger_seq == 42
    skip = {"version", "sha256", "trigger", "trigger_seq"}
    assert meta.model_dump(exclude=skip) == trained.meta.model_dump(exclude=skip)
    loaded = store.load()  # the latest
    assert loaded.version == 2
    x = feature_matrix(eth)
    np.testing.assert_array_equal(loaded.p_up(x), trained.p_up(x))
    assert [m.version for m in list_models(tmp_path)] == [1, 2]
    assert list_models(tmp_path, "LTC/BTC") == []
    assert store.find_same(v2.meta) == 2 and store.find_same(trained.meta) is None


def test_a_tampered_model_file_fails_the_hash_check(tmp_path: Path, trained) -> None:  # noqa: ANN001
    store = ModelStore(tmp_path, "ETH/BTC")
    store.save(trained)
    with store.path(1).open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelStoreError, match=r"v0001\.joblib: SHA-256 .* does not match"):
        store.load(1)


def test_missing_and_corrupt_files_are_clear_errors(tmp_path: Path, trained) -> None:  # noqa: ANN001
    store = ModelStore(tmp_path, "ETH/BTC")
    with pytest.raises(ModelStoreError, match="no saved ml_classifier model for ETH/BTC"):
        store.load()
    store.save(trained)
    with pytest.raises(ModelStoreError, match=r"version 7: .*not found \(versions: 1\)"):
        store.load(7)
    store.save(trained)
    store.path(2).unlink()
    with pytest.raises(ModelStoreError, match=r"v0002\.joblib not found"):
        store.load(2)
    store.path(1, ".json").write_text("{not json")
    with pytest.raises(ModelStoreError, match="invalid model metadata"):
        store.load(1)


def test_a_model_of_another_feature_set_is_refused(tmp_path: Path, trained) -> None:  # noqa: ANN001
    store = ModelStore(tmp_path, "ETH/BTC")
    store.save(trained.with_meta(feature_set="ohlcv-v0"))
    with pytest.raises(ModelStoreError, match="feature set 'ohlcv-v0'.*retrain"):
        store.load(1)


def test_an_orphan_model_file_is_skipped(tmp_path: Path, trained) -> None:  # noqa: ANN001
    """A crash between the model file and its metadata leaves no version behind."""
    store = ModelStore(tmp_path, "ETH/BTC")
    store.save(trained)
    store.path(2).write_bytes(b"half written")
    assert store.versions() == [1]
    assert store.save(trained).version == 3
    assert not list(store.dir.glob(".tmp-*"))


def test_model_root_defaults_under_var_dir(tmp_path: Path) -> None:
    s = Settings(var_dir=tmp_path)
    assert model_root(s) == tmp_path / "models"
    s2 = Settings(var_dir=tmp_path, ml=MlConfig(model_dir=str(tmp_path / "m")))
    assert model_root(s2) == tmp_path / "m"
