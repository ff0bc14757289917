"""Classifier wrappers, estimators and the fit_classifier name space."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from miaudit.errors import ConfigError, InputError, UnknownNameError
from miaudit.models import (
    ESTIMATORS,
    Classifier,
    SklearnClassifier,
    TrainingRecipe,
    fit_classifier,
    model_names,
    softmax,
)


def _blobs(n: int = 90, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = (rng.normal(size=(n, 5)) + y[:, None]).astype(np.float32)
    return x, y


def test_sklearn_classifier_maps_absent_classes_to_their_columns() -> None:
    x, y = _blobs()
    est = LogisticRegression().fit(x, y * 2)  # labels {0, 2, 4} of 6: classes 1, 3, 5 never seen
    clf = SklearnClassifier(est, num_classes=6)
    proba = clf.predict_proba(x)
    assert proba.shape == (len(x), 6)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-12)
    assert proba[:, [1, 3, 5]].max() < 1e-10
    np.testing.assert_allclose(proba[:, [0, 2, 4]], est.predict_proba(x), rtol=1e-6, atol=1e-9)
    logits = clf.predict_logits(x)
    assert np.isfinite(logits).all() and logits.min() >= np.log(1e-12) - 1e-9
    np.testing.assert_allclose(softmax(logits), proba)


@pytest.mark.parametrize("name", ESTIMATORS.names())
def test_every_estimator_fits_and_predicts(name: str) -> None:
    x, y = _blobs()
    x = (x > 1).astype(np.float32) if name == "bernoulli_nb" else x
    clf = fit_classifier(name, x, y, num_classes=4, seed=0, train_indices=np.arange(60))
    assert isinstance(clf, Classifier)
    proba = clf.predict_proba(x)
    assert proba.shape == (90, 4)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(softmax(clf.predict_logits(x)), proba)
    again = fit_classifier(name, x, y, num_classes=4, seed=0, train_indices=np.arange(60))
    np.testing.assert_array_equal(again.predict_logits(x), clf.predict_logits(x))


def test_torch_classifier_softmax_of_logits_is_proba() -> None:
    x, y = _blobs()
    clf = fit_classifier("mlp", x, y, num_classes=3, seed=0, recipe=TrainingRecipe(epochs=2, batch_size=16), progress=False)
    logits, proba = clf.predict_logits(x), clf.predict_proba(x)
    assert logits.shape == proba.shape == (90, 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(softmax(logits), proba)
    with pytest.raises(InputError, match="expects inputs"):
        clf.predict_logits(x[:, :4])


def test_softmax_is_stable() -> None:
    p = softmax(np.array([[1000.0, 0.0, -1000.0], [-1e6, -1e6, -1e6]]))
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]])


def test_names_and_unknown_name() -> None:
    names = model_names()
    assert {"mlp", "cnn", "resnet", "logreg", "decision_tree", "random_forest", "gaussian_nb", "bernoulli_nb", "gradient_boosting"} <= set(names)
    x, y = _blobs()
    with pytest.raises(UnknownNameError) as err:
        fit_classifier("wide_resnet", x, y, num_classes=3, seed=0)
    assert all(name in str(err.value) for name in names)


def test_bad_estimator_option_and_single_class() -> None:
    x, y = _blobs()
    with pytest.raises(ConfigError, match="logreg"):
        fit_classifier("logreg", x, y, num_classes=3, seed=0, options={"no_such_option": 1})
    with pytest.raises(InputError, match="only class"):
        fit_classifier("logreg", x, np.zeros_like(y), num_classes=3, seed=0)
