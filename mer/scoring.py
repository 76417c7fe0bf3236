"""MEGC2019 scores of one pooled set of predictions (numpy only): the one function reports and model selection share.

A leaf module so that `mer.models` (validation UF1/UAR for checkpointing and early stopping) and
`mer.evaluation` (the report's headline numbers) compute the same thing without models importing evaluation.

Per class: F1 = 2·TP / (2·TP + FP + FN), recall = TP / N. UF1 and UAR are the unweighted means over the classes
that have ground-truth samples in the scored set; a class absent from it is left out of both means (its row is
still returned: F1 0 when it was predicted, None when neither present nor predicted), as in MEGC2019.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from mer.errors import MerError

# The MEGC2019 composite classes, in the order the benchmark lists them (the default class order of every score).
MEGC_CLASSES = ("negative", "positive", "surprise")


def _float(value: float | None) -> float | None:
    """A JSON-friendly float: NaN becomes None."""
    return None if value is None or not np.isfinite(value) else float(value)


def _missing(value: Any) -> bool:
    """None, NaN, NaT or pandas' NA (the only values that are not equal to themselves, or refuse to say)."""
    if value is None:
        return True
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return True


def _as_labels(values: Iterable[Any], what: str) -> np.ndarray:
    items = list(values)
    missing = sum(_missing(v) for v in items)
    if missing:
        raise MerError(f"{what}: {missing} of {len(items)} labels are missing (NaN/empty)")
    return np.asarray([str(v) for v in items], dtype=object)


def confusion(truth: np.ndarray, pred: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Counts (rows = true class, columns = predicted class, in `classes` order) of two label arrays."""
    index = {c: i for i, c in enumerate(classes)}
    rows = np.array([index[t] for t in truth], dtype=np.int64)
    cols = np.array([index[p] for p in pred], dtype=np.int64)
    cm = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(cm, (rows, cols), 1)
    return cm


def megc_scores(y_true: Iterable[Any], y_pred: Iterable[Any], classes: Sequence[str] = MEGC_CLASSES) -> dict[str, Any]:
    """Accuracy, UAR and UF1 of one pooled set of predictions, with per-class counts and the confusion matrix.

    Returns a JSON-serialisable dict: `n`, `accuracy`, `uar`, `uf1`, `classes`, `classes_scored` (classes
    with ground-truth samples, the ones averaged), `per_class` ({class: support, predicted, tp, fp, fn,
    recall, f1}) and `confusion` (rows = true class, columns = predicted class, in `classes` order).
    """
    classes = [str(c) for c in classes]
    truth = _as_labels(y_true, "y_true")
    pred = _as_labels(y_pred, "y_pred")
    if len(truth) != len(pred):
        raise MerError(f"y_true has {len(truth)} labels but y_pred has {len(pred)}")
    if len(truth) == 0:
        raise MerError("no predictions to score (empty y_true / y_pred)")
    unknown = sorted((set(truth) | set(pred)) - set(classes))
    if unknown:
        raise MerError(f"labels {unknown} are not among the classes {classes}")

    cm = confusion(truth, pred, classes)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1).astype(float)  # N_c: true samples of class c
    predicted = cm.sum(axis=0).astype(float)
    fp = predicted - tp
    fn = support - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, tp / support, np.nan)
        denom = 2 * tp + fp + fn
        f1 = np.where(denom > 0, 2 * tp / denom, np.nan)
    scored = support > 0

    per_class = {
        c: {
            "support": int(support[i]),
            "predicted": int(predicted[i]),
            "tp": int(tp[i]),
            "fp": int(fp[i]),
            "fn": int(fn[i]),
            "recall": _float(recall[i]),
            "f1": _float(f1[i]),
        }
        for i, c in enumerate(classes)
    }
    return {
        "n": int(len(truth)),
        "accuracy": float(tp.sum() / len(truth)),
        "uar": float(recall[scored].mean()),
        "uf1": float(f1[scored].mean()),
        "classes": classes,
        "classes_scored": [c for c, s in zip(classes, scored, strict=True) if s],
        "per_class": per_class,
        "confusion": cm.astype(int).tolist(),
    }
