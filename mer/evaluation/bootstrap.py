"""Subject-level bootstrap: confidence intervals of pooled MEGC scores, and paired differences between two runs.

The unit of resampling is the subject, not the sample: LOSO tests one subject per fold and samples of one subject
are not independent, so an interval over samples would be far too narrow. Each resample draws, within every
dataset, as many subjects as the dataset has, with replacement (a subject drawn twice counts twice), sums their
confusion matrices and scores the pooled matrix with `confusion_metrics`, the function `megc_scores` uses. A run
with several seeds is scored as the mean over its seeds of each seed's pooled score on the same resampled subjects.
The interval is the percentile interval (2.5 % and 97.5 % for the 95 % level) of the resampled scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mer.config import CLASSES
from mer.errors import MerError
from mer.evaluation.metrics import COMPOSITE, confusion_metrics
from mer.files import natural_key

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
METRICS = ("accuracy", "uar", "uf1")
KEY = ["dataset", "subject", "sample_id"]


@dataclass(frozen=True)
class SubjectTable:
    """Per-subject confusion matrices of one run (one stack per seed): what a resample sums."""

    subjects: tuple[str, ...]  # "dataset|subject", sorted
    datasets: tuple[str, ...]  # the dataset of each subject
    confusions: np.ndarray  # (n_seeds, n_subjects, K, K), rows true class, columns predicted


def subject_table(frames: Sequence[pd.DataFrame], pred_col: str | Sequence[str], classes: Sequence[str] = CLASSES
                  ) -> SubjectTable:  # fmt: skip
    """Per-subject confusion matrices of each frame (one per seed; `pred_col` one column or one per frame).

    Every frame must hold the same subjects; a subject's matrix counts its samples by (true, predicted) class.
    """
    if not frames:
        raise MerError("no predictions to bootstrap")
    cols = [pred_col] * len(frames) if isinstance(pred_col, str) else list(pred_col)
    index = {c: i for i, c in enumerate(classes)}
    keyed = [f["dataset"].astype(str) + "|" + f["subject"].astype(str) for f in frames]
    subjects = sorted(set(keyed[0]), key=natural_key)
    for k in keyed[1:]:
        if set(k) != set(subjects):
            raise MerError("the seeds of a run hold different subjects; the bootstrap needs the same subjects")
    pos = {s: i for i, s in enumerate(subjects)}
    k = len(classes)
    stack = np.zeros((len(frames), len(subjects), k, k), dtype=np.int64)
    for v, (frame, key, col) in enumerate(zip(frames, keyed, cols, strict=True)):
        if frame[col].isna().any():
            raise MerError(f"column '{col}' has missing predictions; cannot bootstrap it")
        s_idx = key.map(pos).to_numpy()
        t_idx = frame["label"].astype(str).map(index).to_numpy()
        p_idx = frame[col].astype(str).map(index).to_numpy()
        if pd.isna(t_idx).any() or pd.isna(p_idx).any():
            raise MerError(f"labels outside {list(classes)} in column 'label' or '{col}'")
        np.add.at(stack[v], (s_idx.astype(int), t_idx.astype(int), p_idx.astype(int)), 1)
    datasets = tuple(s.split("|", 1)[0] for s in subjects)
    return SubjectTable(tuple(subjects), datasets, stack)


def resample_weights(datasets: Sequence[str], n_resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(n_resamples, n_subjects) draw counts: within each dataset, its subjects drawn with replacement."""
    rng = np.random.default_rng(seed)
    datasets = np.asarray(datasets)
    weights = np.zeros((n_resamples, len(datasets)), dtype=np.int64)
    rows = np.arange(n_resamples)[:, None]
    for d in sorted(set(datasets.tolist()), key=natural_key):
        members = np.flatnonzero(datasets == d)
        draws = members[rng.integers(0, len(members), size=(n_resamples, len(members)))]
        np.add.at(weights, (np.broadcast_to(rows, draws.shape), draws), 1)
    return weights


def _scope_masks(table: SubjectTable) -> dict[str, np.ndarray]:
    datasets = np.asarray(table.datasets)
    masks = {COMPOSITE: np.ones(len(datasets), dtype=bool)}
    for d in sorted(set(table.datasets), key=natural_key):
        masks[d] = datasets == d
    return masks


def _seed_mean_scores(table: SubjectTable, weights: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """{scope: {metric: (n_resamples,)}}: each seed's pooled score on the weighted subjects, averaged over seeds."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for scope, mask in _scope_masks(table).items():
        w = weights * mask  # subjects outside the scope weigh 0
        cms = np.einsum("bs,vskl->bvkl", w, table.confusions)  # (n_resamples, n_seeds, K, K)
        values = confusion_metrics(cms)
        with np.errstate(all="ignore"):
            out[scope] = {m: np.nanmean(v, axis=1) for m, v in zip(METRICS, values, strict=True)}
    return out


def _interval(values: np.ndarray, level: float) -> list[float | None]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return [None, None]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return [float(low), float(high)]


def bootstrap_intervals(
    frames: Sequence[pd.DataFrame] | pd.DataFrame,
    pred_col: str | Sequence[str],
    n_resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
    classes: Sequence[str] = CLASSES,
) -> dict[str, dict[str, list[float | None]]]:
    """Percentile interval over subjects of the pooled accuracy, UAR and UF1: {scope: {metric: [low, high]}}.

    `frames` is one run's predictions (all folds), or one per seed: then the interval is that of the seed mean.
    """
    frames = [frames] if isinstance(frames, pd.DataFrame) else list(frames)
    table = subject_table(frames, pred_col, classes)
    scores = _seed_mean_scores(table, resample_weights(table.datasets, n_resamples, seed))
    return {scope: {m: _interval(v, level) for m, v in ms.items()} for scope, ms in scores.items()}


def same_samples(a: Sequence[pd.DataFrame], b: Sequence[pd.DataFrame]) -> tuple[bool, str]:
    """Whether every seed of run A and of run B predicts the same samples (dataset, subject, sample_id), and why not."""
    keys = [frozenset(map(tuple, f[KEY].astype(str).to_numpy().tolist())) for f in [*a, *b]]
    if len(set(keys)) == 1:
        return True, ""
    ka, kb = keys[0], keys[len(a)]
    if len(set(keys[: len(a)])) > 1 or len(set(keys[len(a) :])) > 1:
        return False, "the seeds of one run predict different samples (a partial seed?)"
    return False, f"different samples ({len(ka)} and {len(kb)}, {len(ka & kb)} shared)"


def paired_difference(
    a: Sequence[pd.DataFrame] | pd.DataFrame,
    b: Sequence[pd.DataFrame] | pd.DataFrame,
    col_a: str | Sequence[str] = "svm_pred",
    col_b: str | Sequence[str] = "svm_pred",
    n_resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
    classes: Sequence[str] = CLASSES,
) -> dict[str, Any]:
    """Pooled score of A minus that of B on the same samples, with its paired bootstrap interval over subjects.

    Both runs are scored on the same resampled subjects in every resample (A and B may each be several seeds:
    then the seed means are compared). Returns {"applies", "reason", scope: {metric: {"diff", "low", "high",
    "significant"}}}; a difference whose interval contains 0 is not significant. Different samples: applies=False.
    """
    a = [a] if isinstance(a, pd.DataFrame) else list(a)
    b = [b] if isinstance(b, pd.DataFrame) else list(b)
    ok, reason = same_samples(a, b)
    if not ok:
        return {"applies": False, "reason": reason}
    ta, tb = subject_table(a, col_a, classes), subject_table(b, col_b, classes)
    weights = resample_weights(ta.datasets, n_resamples, seed)
    ones = np.ones((1, len(ta.subjects)), dtype=np.int64)
    point_a, point_b = _seed_mean_scores(ta, ones), _seed_mean_scores(tb, ones)
    boot_a, boot_b = _seed_mean_scores(ta, weights), _seed_mean_scores(tb, weights)
    out: dict[str, Any] = {"applies": True, "reason": "", "resamples": n_resamples, "seed": seed, "level": level}
    for scope in boot_a:
        out[scope] = {}
        for m in METRICS:
            low, high = _interval(boot_a[scope][m] - boot_b[scope][m], level)
            diff = float(point_a[scope][m][0] - point_b[scope][m][0])
            significant = low is not None and high is not None and not (low <= 0.0 <= high)
            out[scope][m] = {"diff": diff, "low": low, "high": high, "significant": bool(significant)}
    return out


def verdict(d: dict[str, Any]) -> str:
    """'significant' or 'not significant' for one {"diff", "low", "high", "significant"} entry."""
    return "significant" if d.get("significant") else "not significant"


def seed_spread(per_seed: Sequence[dict[str, dict[str, dict[str, Any]]]]) -> tuple[dict, dict]:
    """Mean and sample standard deviation (ddof 1; None for one seed) over seeds of pooled scores.

    `per_seed` holds one `{classifier: {scope: megc_scores}}` per seed; returns `({clf: {scope: {metric: mean}}},
    {clf: {scope: {metric: sd}}})` over the classifiers and scopes every seed has.
    """
    mean: dict[str, dict[str, dict[str, float | None]]] = {}
    sd: dict[str, dict[str, dict[str, float | None]]] = {}
    first = per_seed[0]
    for clf in first:
        if not all(clf in s for s in per_seed):
            continue
        mean[clf], sd[clf] = {}, {}
        for scope in first[clf]:
            if not all(scope in s[clf] for s in per_seed):
                continue
            mean[clf][scope], sd[clf][scope] = {}, {}
            for m in METRICS:
                values = np.array([s[clf][scope][m] for s in per_seed], dtype=float)
                mean[clf][scope][m] = float(values.mean())
                sd[clf][scope][m] = float(values.std(ddof=1)) if len(values) > 1 else None
    return mean, sd
