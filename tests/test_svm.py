"""SVM on embeddings: grouped inner CV over training subjects only, sensible choices, honest fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from mer.config import SVMConfig
from mer.errors import MerError
from mer.evaluation.svm import fit_svm


def rings(seed: int, subjects: list[str], n: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three concentric rings (one per class) per subject: separable, but not by a linear kernel."""
    rng = np.random.default_rng(seed)
    X, y, g = [], [], []
    for subject in subjects:
        for c, radius in enumerate([0.0, 2.0, 4.0]):
            angle = rng.uniform(0, 2 * np.pi, n)
            r = radius + rng.normal(scale=0.3, size=n)
            X.append(np.c_[r * np.cos(angle), r * np.sin(angle)])
            y += [("negative", "positive", "surprise")[c]] * n
            g += [subject] * n
    return np.vstack(X), np.array(y), np.array(g)


TRAIN = [f"casme2/sub0{i}" for i in range(1, 7)]
TEST = ["samm/006"]


def test_grid_search_uses_only_training_groups() -> None:
    X, y, g = rings(0, TRAIN)
    cfg = SVMConfig(C=[0.1, 1.0], kernel=["linear", "rbf"], inner_folds=4)
    pipe, info = fit_svm(X, y, g, cfg, seed=0)
    assert info["inner_folds"] == 4 and info["fallback"] is None
    val_groups = info["inner_val_groups"]
    assert len(val_groups) == 4
    flat = [s for fold in val_groups for s in fold]
    # every training subject is validated exactly once, nothing else ever is
    assert sorted(flat) == sorted(TRAIN)
    assert not set(flat) & set(TEST)
    # the scaler was fitted on exactly the training samples
    scaler = pipe.named_steps["scale"]
    assert scaler.n_samples_seen_ == len(X)
    np.testing.assert_allclose(scaler.mean_, X.mean(axis=0))


def test_inner_folds_capped_by_number_of_subjects() -> None:
    X, y, g = rings(1, TRAIN[:3])
    _, info = fit_svm(X, y, g, SVMConfig(C=[1.0], kernel=["rbf"], inner_folds=10), seed=0)
    assert info["inner_folds"] == 3
    assert sorted(s for fold in info["inner_val_groups"] for s in fold) == sorted(TRAIN[:3])


def test_picks_sensible_kernel_and_C_and_generalises() -> None:
    X, y, g = rings(2, TRAIN)
    cfg = SVMConfig(C=[0.001, 1.0, 100.0], kernel=["linear", "rbf"], gamma=["scale"], inner_folds=4, class_weight=None)
    pipe, info = fit_svm(X, y, g, cfg, seed=0)
    # linear cannot separate rings (~0.5 F1); rbf with a moderate C can
    assert info["kernel"] == "rbf" and info["C"] == 1.0 and info["gamma"] == "scale"
    # the reported inner score is the best of the grid, recomputed independently on the same grouped splits
    cv = GroupKFold(n_splits=4)
    best = max(
        cross_val_score(
            make_pipeline(StandardScaler(), SVC(C=C, kernel=k)), X, y, groups=g, cv=cv, scoring="f1_macro"
        ).mean()
        for C in cfg.C
        for k in cfg.kernel
    )
    assert info["inner_cv_f1"] == pytest.approx(best)
    assert info["inner_cv_f1"] > 0.95
    X_test, y_test, _ = rings(3, TEST)
    assert (pipe.predict(X_test) == y_test).mean() > 0.9


def test_fallback_with_one_training_group() -> None:
    X, y, g = rings(4, TRAIN[:1])
    cfg = SVMConfig(C=[10.0, 1.0], kernel=["rbf", "linear"], gamma=["0.5", "scale"])
    pipe, info = fit_svm(X, y, g, cfg, seed=0)
    assert info["fallback"] and "1 training subject group" in info["fallback"]
    assert (info["C"], info["kernel"], info["gamma"]) == (10.0, "rbf", 0.5)  # the first grid point, gamma as a number
    assert info["inner_cv_f1"] is None and info["inner_folds"] == 0
    assert pipe.named_steps["svc"].C == 10.0 and pipe.named_steps["svc"].gamma == 0.5
    assert set(pipe.predict(X)) <= set(y)


def test_fallback_when_a_class_lives_in_one_subject() -> None:
    """Two subjects with one class each: every inner training side has a single class, so no grid search."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(20, 4)) + np.repeat([[0.0], [3.0]], 10, axis=0)
    y = np.array(["negative"] * 10 + ["positive"] * 10)
    g = np.array(["a"] * 10 + ["b"] * 10)
    _, info = fit_svm(X, y, g, SVMConfig(C=[1.0, 10.0], kernel=["linear"]), seed=0)
    assert info["fallback"] and "single class" in info["fallback"]
    assert (info["C"], info["kernel"], info["gamma"]) == (1.0, "linear", None)


def test_same_seed_same_predictions() -> None:
    X, y, g = rings(6, TRAIN)
    cfg = SVMConfig(C=[0.1, 1.0], kernel=["rbf"])
    a, info_a = fit_svm(X, y, g, cfg, seed=3)
    b, info_b = fit_svm(X, y, g, cfg, seed=3)
    assert info_a == info_b
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_bad_inputs() -> None:
    X, y, g = rings(7, TRAIN[:2])
    with pytest.raises(MerError, match="at least two classes"):
        fit_svm(X[:10], y[:10], g[:10], SVMConfig(), seed=0)
    with pytest.raises(MerError, match="svm.kernel"):
        fit_svm(X, y, g, SVMConfig(kernel=["cubic"]), seed=0)
    with pytest.raises(MerError, match="svm.gamma"):
        fit_svm(X, y, g, SVMConfig(kernel=["rbf"], gamma=["big"]), seed=0)
    with pytest.raises(MerError, match="differ in length"):
        fit_svm(X, y[:-1], g, SVMConfig(), seed=0)
