"""MEGC metrics computed the MEGC way: on the predictions of all LOSO folds pooled together.

MEGC2019 (See et al., FG 2019) scores a leave-one-subject-out run on the *pooled* predictions: the true
positives, false positives and false negatives of each class are summed over every fold, and only then
turned into per-class F1 (2·TP / (2·TP + FP + FN)) and recall (TP / N). UF1 is the unweighted mean of the
per-class F1, UAR the unweighted mean of the per-class recall. Averaging per-fold scores instead is a
different (and, with one subject per fold and classes missing from most folds, badly biased) number, so
per-fold accuracy is only ever shown as a table.

Classes with no ground-truth sample in the scored set (e.g. a dataset without surprise samples) have no
recall and are left out of both means, as in the MEGC2019 evaluation; their per-class row is still
returned (F1 0 when they were predicted, None when neither present nor predicted), and predictions of
such a class still count as false negatives of the true class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from mer.config import CLASSES
from mer.errors import MerError
from mer.files import natural_key

COMPOSITE = "composite"


def _float(value: float) -> float | None:
    """A JSON-friendly float: NaN becomes None."""
    return None if value is None or not np.isfinite(value) else float(value)


def _as_labels(values: Sequence[Any] | np.ndarray | pd.Series, what: str) -> np.ndarray:
    arr = np.asarray(list(values), dtype=object)
    missing = pd.isna(arr)
    if missing.any():
        raise MerError(f"{what}: {int(missing.sum())} of {len(arr)} labels are missing (NaN/empty)")
    return arr.astype(str)


def megc_scores(
    y_true: Sequence[Any] | np.ndarray | pd.Series,
    y_pred: Sequence[Any] | np.ndarray | pd.Series,
    classes: Sequence[str] = CLASSES,
) -> dict[str, Any]:
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

    cm = confusion_matrix(truth, pred, labels=classes)
    tp, support, predicted, recall, f1 = _class_counts(cm)
    fp = predicted - tp
    fn = support - tp
    scored = support > 0
    accuracy, uar, uf1 = confusion_metrics(cm)

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
        "accuracy": float(accuracy),
        "uar": float(uar),
        "uf1": float(uf1),
        "classes": classes,
        "classes_scored": [c for c, s in zip(classes, scored, strict=True) if s],
        "per_class": per_class,
        "confusion": cm.astype(int).tolist(),
    }


def _class_counts(cm: np.ndarray) -> tuple[np.ndarray, ...]:
    """TP, support, predicted count, recall and F1 per class of (a stack of) confusion matrices (..., K, K)."""
    cm = np.asarray(cm, dtype=float)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)  # N_c: true samples of class c
    predicted = cm.sum(axis=-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, tp / support, np.nan)
        denom = support + predicted  # 2·TP + FP + FN
        f1 = np.where(denom > 0, 2 * tp / denom, np.nan)
    return tp, support, predicted, recall, f1


def confusion_metrics(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(accuracy, UAR, UF1) of pooled confusion matrices, rows true and columns predicted: one (K, K) matrix or a
    stack (..., K, K), as the bootstrap needs. Classes without ground-truth samples are left out of both means."""
    tp, support, _, recall, f1 = _class_counts(cm)
    scored = support > 0
    n_scored = scored.sum(axis=-1)
    total = support.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        accuracy = np.where(total > 0, tp.sum(axis=-1) / total, np.nan)
        uar = np.where(n_scored > 0, np.where(scored, recall, 0.0).sum(axis=-1) / n_scored, np.nan)
        uf1 = np.where(n_scored > 0, np.where(scored, f1, 0.0).sum(axis=-1) / n_scored, np.nan)
    return accuracy, uar, uf1


def _check_columns(df: pd.DataFrame, needed: Sequence[str]) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise MerError(f"predictions table lacks columns {missing} (has: {', '.join(map(str, df.columns))})")


def _check_predictions(df: pd.DataFrame, pred_col: str) -> None:
    empty = df[pred_col].isna()
    if empty.any():
        examples = ", ".join(df.loc[empty, "sample_id"].astype(str).head(3)) if "sample_id" in df else ""
        raise MerError(
            f"column '{pred_col}' has no prediction for {int(empty.sum())} of {len(df)} samples"
            + (f" (e.g. {examples})" if examples else "")
        )


def pooled_scores(
    predictions_df: pd.DataFrame, pred_col: str = "svm_pred", classes: Sequence[str] = CLASSES
) -> dict[str, dict[str, Any]]:
    """MEGC scores of the pooled predictions: `{"composite": {...}, "casme2": {...}, ...}` (datasets sorted).

    `predictions_df` needs `label`, `dataset` and `pred_col` columns (the LOSO `predictions.csv` rows of all
    folds concatenated); each value is a `megc_scores` dict.
    """
    _check_columns(predictions_df, ["label", "dataset", pred_col])
    if len(predictions_df) == 0:
        raise MerError("no predictions to score (the predictions table is empty)")
    _check_predictions(predictions_df, pred_col)
    out = {COMPOSITE: megc_scores(predictions_df["label"], predictions_df[pred_col], classes)}
    for dataset in sorted(predictions_df["dataset"].astype(str).unique(), key=natural_key):
        part = predictions_df[predictions_df["dataset"].astype(str) == dataset]
        out[dataset] = megc_scores(part["label"], part[pred_col], classes)
    return out


def per_fold_table(predictions_df: pd.DataFrame, pred_col: str = "svm_pred") -> pd.DataFrame:
    """Per-fold accuracy (columns fold, n, correct, accuracy), folds in natural order: a table, never a headline.

    Folds come from a `fold` column when there is one, else from `subject` (one subject per LOSO fold).
    """
    key = "fold" if "fold" in predictions_df.columns else "subject"
    _check_columns(predictions_df, [key, "label", pred_col])
    _check_predictions(predictions_df, pred_col)
    correct = predictions_df["label"].astype(str).to_numpy() == predictions_df[pred_col].astype(str).to_numpy()
    table = (
        pd.DataFrame({"fold": predictions_df[key].astype(str).to_numpy(), "correct": correct.astype(int)})
        .groupby("fold", sort=False)["correct"]
        .agg(n="size", correct="sum")
        .reset_index()
    )
    table["accuracy"] = table["correct"] / table["n"]
    order = sorted(range(len(table)), key=lambda i: natural_key(table["fold"].iloc[i]))
    return table.iloc[order].reset_index(drop=True)
