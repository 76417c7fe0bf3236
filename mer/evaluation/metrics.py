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

import pandas as pd

from mer.config import CLASSES
from mer.errors import MerError
from mer.files import natural_key
from mer.scoring import megc_scores

__all__ = ["COMPOSITE", "megc_scores", "natural_key", "per_fold_table", "pooled_scores"]

COMPOSITE = "composite"


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
