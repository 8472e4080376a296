"""Training: deterministic, time-series CV with a gap, labels only inside the training data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from backend.marketdata.candles import Candles, load_dir
from backend.ml.features import FEATURE_NAMES, FEATURE_SET, feature_matrix
from backend.ml.labels import forward_sign, trainable
from backend.ml.train import CV_SPLITS, cv_folds, train_model
from backend.settings import Settings

END = 2500


@pytest.fixture(scope="module")
def eth() -> Candles:
    return load_dir(Settings().data_dir, ["ETH/BTC"])["ETH/BTC"]


@pytest.fixture(scope="module")
def model(eth: Candles):  # noqa: ANN201
    return train_model(eth, symbol="ETH/BTC", horizon=6, C=0.5, end=END)


def test_metadata_describes_the_training(eth: Candles, model) -> None:  # noqa: ANN001
    m = model.meta
    assert (m.symbol, m.horizon, m.params, m.bars) == ("ETH/BTC", 6, {"C": 0.5}, END)
    assert (m.data_start, m.data_end) == (int(eth.time[0]), int(eth.time[END - 1]))
    assert m.features == list(FEATURE_NAMES) and m.feature_set == FEATURE_SET
    assert len(m.cv_scores) == CV_SPLITS and m.cv_gap == 6
    assert all(0.0 <= s <= 1.0 for s in m.cv_scores)
    assert m.cv_score == pytest.approx(np.mean(m.cv_scores))
    x, y = feature_matrix(eth.slice(0, END)), forward_sign(eth.close[:END], 6)
    rows = trainable(x, y)
    assert m.rows == rows.size and m.up_share == pytest.approx(np.mean(y[rows] > 0))
    assert m.version == 0 and m.sklearn_version


def test_training_is_deterministic(eth: Candles, model) -> None:  # noqa: ANN001
    again = train_model(eth, symbol="ETH/BTC", horizon=6, C=0.5, end=END)
    assert again.meta.cv_scores == model.meta.cv_scores
    x = feature_matrix(eth)
    np.testing.assert_array_equal(again.p_up(x), model.p_up(x))


def test_labels_after_the_training_end_are_never_used(eth: Candles, model) -> None:  # noqa: ANN001
    """Rewriting every bar from END on changes nothing in the model."""
    rng = np.random.default_rng(7)
    f = rng.uniform(0.5, 2.0, size=len(eth) - END)
    cols = {k: np.array(getattr(eth, k)) for k in ("open", "high", "low", "close")}
    for k in cols:
        cols[k][END:] *= f
    other = replace(eth, **cols)
    m2 = train_model(other, symbol="ETH/BTC", horizon=6, C=0.5, end=END)
    assert m2.meta.cv_scores == model.meta.cv_scores
    x = feature_matrix(eth)
    np.testing.assert_array_equal(m2.p_up(x), model.p_up(x))
    # ... while training on all bars does see them
    full = train_model(other, symbol="ETH/BTC", horizon=6, C=0.5)
    assert full.meta.cv_scores != model.meta.cv_scores


@pytest.mark.parametrize("horizon", [1, 6, 24])
def test_cv_folds_leave_a_gap_of_the_horizon(eth: Candles, horizon: int) -> None:
    x = feature_matrix(eth.slice(0, END))
    rows = trainable(x, forward_sign(eth.close[:END], horizon))
    folds = cv_folds(rows, horizon)
    assert len(folds) == CV_SPLITS
    for tr, te in folds:
        # the last training label looks at close[tr.max() + horizon]: before the test fold
        assert tr.max() + horizon < te.min()
        assert np.all(np.diff(tr) > 0) and np.all(np.diff(te) > 0)


def test_p_up_equals_sklearn_and_is_row_exact(eth: Candles, model) -> None:  # noqa: ANN001
    x = feature_matrix(eth)
    ok = np.isfinite(x).all(axis=1)
    p = model.p_up(x)
    assert np.isnan(p[~ok]).all()
    ref = model.pipeline.predict_proba(x[ok])[:, 1]
    np.testing.assert_allclose(p[ok], ref, rtol=0, atol=1e-12)
    for a, b in ((100, 101), (1000, 1256), (3000, 5760)):  # any batch: the same bits
        np.testing.assert_array_equal(model.p_up(x[a:b]), p[a:b])


def test_too_little_data_or_one_class_is_a_clear_error(eth: Candles) -> None:
    with pytest.raises(ValueError, match="too little data"):
        train_model(eth, symbol="ETH/BTC", horizon=6, end=200)
    n = 400
    rising = np.linspace(1.0, 2.0, n)
    c = Candles("UP/Q", np.arange(n, dtype=np.int64), rising, rising * 1.001, rising * 0.999,
                rising, np.ones(n))
    with pytest.raises(ValueError, match="single sign"):
        train_model(c, symbol="UP/Q", horizon=3)
