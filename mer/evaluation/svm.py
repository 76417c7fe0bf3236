"""The paper's classifier: StandardScaler + SVC on the network's embeddings, tuned on training subjects only.

C, kernel and gamma are chosen by a grid search whose inner folds are GroupKFold splits over the
*training* subjects (`groups_train`), scored by macro F1. `fit_svm` only ever receives training arrays,
so the held-out subject of a LOSO fold cannot influence the chosen parameters; the returned info records
which subjects formed each inner validation fold, so a run can prove it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from mer.config import SVMConfig
from mer.errors import MerError

GAMMA_NAMES = ("scale", "auto")


def _gamma(value: Any) -> str | float:
    """'scale' / 'auto' stay names; anything else (YAML may hand '0.01' as text) must be a positive number."""
    if isinstance(value, str) and value in GAMMA_NAMES:
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MerError(f"svm.gamma: '{value}' is not allowed; use scale, auto or a positive number") from None
    if number <= 0:
        raise MerError(f"svm.gamma: {value} must be positive (or scale / auto)")
    return number


def _param_grid(cfg: SVMConfig) -> list[dict[str, list[Any]]]:
    """The grid as GridSearchCV wants it; gamma only varies for kernels that use it (not for linear)."""
    if not cfg.C or not cfg.kernel:
        raise MerError("svm.C and svm.kernel need at least one value each")
    C = [float(c) for c in cfg.C]
    if any(c <= 0 for c in C):
        raise MerError(f"svm.C: every value must be positive, got {list(cfg.C)}")
    gammas = [_gamma(g) for g in (cfg.gamma or ["scale"])]
    grid: list[dict[str, list[Any]]] = []
    for kernel in dict.fromkeys(cfg.kernel):  # keeps order, drops repeats
        if kernel not in ("linear", "rbf", "poly", "sigmoid"):
            raise MerError(f"svm.kernel: '{kernel}' is not allowed; use linear, rbf, poly or sigmoid")
        point: dict[str, list[Any]] = {"svc__kernel": [kernel], "svc__C": C}
        if kernel != "linear":
            point["svc__gamma"] = gammas
        grid.append(point)
    return grid


def _first_point(cfg: SVMConfig) -> dict[str, Any]:
    """The grid's first point (first C, first kernel, first gamma): the fallback when no inner CV is possible."""
    kernel = str(cfg.kernel[0])
    gamma = None if kernel == "linear" else _gamma((cfg.gamma or ["scale"])[0])
    return {"C": float(cfg.C[0]), "kernel": kernel, "gamma": gamma}


def _pipeline(cfg: SVMConfig, seed: int) -> Pipeline:
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("svc", SVC(class_weight=cfg.class_weight, random_state=seed)),
        ]
    )


def _inner_splits(y: np.ndarray, groups: np.ndarray, inner_folds: int) -> tuple[list, str | None]:
    """GroupKFold splits over the training subjects, or ([], reason) when a grid search is not possible."""
    n_groups = len(np.unique(groups))
    n_splits = min(int(inner_folds), n_groups)
    if n_splits < 2:
        return [], (
            f"only {n_groups} training subject group(s) and svm.inner_folds={inner_folds}; "
            "grouped inner CV needs at least 2"
        )
    splits = list(GroupKFold(n_splits=n_splits).split(np.zeros(len(y)), y, groups))
    for train_idx, val_idx in splits:
        if len(np.unique(y[train_idx])) < 2:
            held = ", ".join(sorted(map(str, np.unique(groups[val_idx]))))
            return [], (
                f"a class is too small to spread over {n_splits} inner folds: without subject(s) {held} "
                "the inner training side has a single class"
            )
    return splits, None


def fit_svm(
    X_train: np.ndarray,
    y_train: Sequence[Any] | np.ndarray,
    groups_train: Sequence[Any] | np.ndarray,
    cfg: SVMConfig,
    seed: int,
) -> tuple[Pipeline, dict[str, Any]]:
    """Fit StandardScaler + SVC on training embeddings; C/kernel/gamma by grouped inner CV over training subjects.

    Returns the pipeline refitted on all training samples with the chosen parameters, and a JSON-friendly
    dict: `C`, `kernel`, `gamma` (None for linear), `inner_cv_f1` (mean macro F1 of the best point over the
    inner folds, None on fallback), `inner_folds` (number of inner splits), `inner_val_groups` (the training
    subjects held out in each inner split), `n_train`, `fallback` (why the grid's first point was used, else None).
    """
    X = np.asarray(X_train, dtype=np.float64)
    y = np.asarray(y_train).astype(str)
    groups = np.asarray(groups_train).astype(str)
    if X.ndim != 2:
        raise MerError(f"X_train must be a 2-D array (samples × features), got shape {X.shape}")
    if not len(X) == len(y) == len(groups):
        raise MerError(f"X_train, y_train and groups_train differ in length: {len(X)}, {len(y)}, {len(groups)}")
    if len(np.unique(y)) < 2:
        raise MerError(
            f"the SVM needs at least two classes in its training samples, got only {sorted(set(y.tolist()))}"
        )

    grid = _param_grid(cfg)
    splits, reason = _inner_splits(y, groups, cfg.inner_folds)
    info: dict[str, Any] = {"n_train": int(len(y)), "inner_folds": len(splits)}
    if reason is not None:
        params = _first_point(cfg)
        pipe = _pipeline(cfg, seed).set_params(**{f"svc__{k}": v for k, v in params.items() if v is not None})
        pipe.fit(X, y)
        info.update(params, inner_cv_f1=None, inner_val_groups=[], fallback=reason)
        return pipe, info

    search = GridSearchCV(
        _pipeline(cfg, seed), grid, scoring="f1_macro", cv=splits, refit=True, error_score="raise", n_jobs=None
    )
    with warnings.catch_warnings():
        # An inner validation fold without some class makes its F1 ill-defined (scored 0); that is expected.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        search.fit(X, y)
    best = search.best_params_
    info.update(
        C=float(best["svc__C"]),
        kernel=str(best["svc__kernel"]),
        gamma=best.get("svc__gamma"),  # None for the linear kernel, which has no gamma
        inner_cv_f1=float(search.best_score_),
        inner_val_groups=[sorted(np.unique(groups[val]).tolist()) for _, val in splits],
        fallback=None,
    )
    if isinstance(info["gamma"], np.floating):
        info["gamma"] = float(info["gamma"])
    return search.best_estimator_, info
