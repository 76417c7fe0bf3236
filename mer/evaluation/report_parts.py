"""Report pieces both LOSO reports use (one run: `run_report`, a seed study: `report`): the score and interval
types, bootstrap intervals per classifier and their formatting, the Uncertainty section, and the regimes of the folds
(the MIXED banner, the Provenance table of regimes and calls, scores.json's `regimes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mer.evaluation.bootstrap import bootstrap_intervals, paired_difference, verdict
from mer.evaluation.metrics import COMPOSITE
from mer.evaluation.render import Document
from mer.evaluation.run_folder import CLASSIFIERS
from mer.provenance import describe_regime, regime_differences

Scores = dict[str, dict[str, dict[str, Any]]]  # {classifier: {"composite" or dataset: pooled scores}}
Intervals = dict[str, dict[str, dict[str, list[float | None]]]]  # {classifier: {scope: {metric: [low, high]}}}
Regimes = list[tuple[dict[str, Any], list[str]]]  # each distinct regime with its folds (`runs.mixed_regimes`)


def score_intervals(
    frames: list[pd.DataFrame], classifiers: list[str], resamples: int, seed: int, classes: Sequence[str]
) -> Intervals:
    """Bootstrap intervals per classifier (of the seed mean when `frames` holds several seeds); {} without resamples."""
    if resamples <= 0:
        return {}
    return {c: bootstrap_intervals(frames, CLASSIFIERS[c], resamples, seed, classes=classes) for c in classifiers}


def classifier_difference(
    frames: list[pd.DataFrame], classifiers: list[str], resamples: int, seed: int, classes: Sequence[str]
) -> dict[str, Any] | None:
    """Paired SVM − softmax difference over subjects, when both classifiers predicted (else None)."""
    if resamples <= 0 or not {"svm", "softmax"} <= set(classifiers):
        return None
    return paired_difference(
        frames, frames, CLASSIFIERS["svm"], CLASSIFIERS["softmax"], resamples, seed, classes=classes
    )


def bootstrap_meta(resamples: int, seed: int) -> dict[str, Any]:
    return {"resamples": resamples, "seed": seed, "level": 0.95, "unit": "subject", "stratified_by": "dataset",
            "interval": "percentile"}  # fmt: skip


def ci_of(intervals: Intervals, clf: str, scope: str, metric: str) -> list[float | None] | None:
    return ((intervals.get(clf) or {}).get(scope) or {}).get(metric)


def with_ci(value: float | None, ci: list[float | None] | None, sd: float | None = None) -> str:
    """`0.7218 [0.5815, 0.9030]`, with ` ± sd` after the value when given; an em dash for no value."""
    if value is None or not np.isfinite(value):
        return "—"
    text = f"{value:.4f}" + (f" ± {sd:.4f}" if sd is not None else "")
    if ci and ci[0] is not None and ci[1] is not None:
        text += f" [{ci[0]:.4f}, {ci[1]:.4f}]"
    return text


def _diff_text(label: str, d: dict[str, Any]) -> str:
    """`ΔUF1 +0.0512 [-0.0200, 0.1300] (not significant)`."""
    return f"Δ{label} {d['diff']:+.4f} [{d['low']:.4f}, {d['high']:.4f}] ({verdict(d)})"


def uncertainty_section(
    doc: Document, n_subjects: int, resamples: int, seed: int, versus: dict[str, Any] | None, seeds: int = 1
) -> None:
    """How the intervals were made, and the paired SVM − softmax difference when both classifiers predicted."""
    doc.heading("Uncertainty (bootstrap over subjects)")
    if resamples <= 0:
        doc.para("No bootstrap was run (`--resamples 0`).")
        return
    over = f"the mean over the {seeds} seeds of each seed's pooled score" if seeds > 1 else "the pooled score"
    doc.para(
        f"Intervals are 95 % percentile intervals of {resamples} resamples (seed {seed}) of the {n_subjects} test "
        "subjects, drawn with replacement within each dataset; each resample recomputes "
        f"{over} on the drawn subjects. They say how much the number depends on which subjects were tested — "
        "resampling samples instead would ignore that a subject's samples are alike, and give intervals far too "
        "narrow. "
        + (
            "The ± figure is the spread between seeds (training noise); the interval is over subjects, for the "
            "seed mean."
            if seeds > 1
            else "Seed spread (training noise) is not in a one-seed interval: run several seeds for that."
        )
    )
    if versus:
        doc.para(
            "**SVM − softmax** on the same samples (paired: both scored on each resample's subjects): "
            + "; ".join(_diff_text(label, versus[COMPOSITE][m]) for label, m in (("UF1", "uf1"), ("UAR", "uar")))
            + "."
        )


def compact_scores(scores: Scores) -> dict[str, dict[str, dict[str, Any]]]:
    """n, accuracy, UAR and UF1 of every classifier and scope (per-seed rows of scores.json)."""
    return {c: {scope: {k: s[k] for k in ("n", "accuracy", "uar", "uf1")} for scope, s in pooled.items()}
            for c, pooled in scores.items()}  # fmt: skip


def mixed_banner(groups: Regimes) -> str:
    """The MIXED banner: how many regimes, how many folds each, and the first field that differs."""
    first, other = groups[0][0], groups[1][0]
    diff = (regime_differences(first, other) or ["?"])[0]
    counts = ", ".join(f"{chr(65 + i)}: {len(folds)} fold(s)" for i, (_, folds) in enumerate(groups))
    return (f"MIXED: the folds ran under {len(groups)} regimes ({counts}; e.g. {diff}). Pooled numbers mix "
            "code, package versions or numerics; see the regimes per fold under Provenance.")  # fmt: skip


def regimes_section(doc: Document, groups: Regimes, records: list[dict]) -> None:
    """The regime (commit, versions, resolved numerics) of each group of folds, and the calls from runs.jsonl."""
    if groups:
        doc.para("Regimes the folds recorded (commit, resolved numerics, key package versions)"
                 + (" — **MIXED**:" if len(groups) > 1 else ":"))  # fmt: skip
        shown = lambda fs: ", ".join(fs[:8]) + (f" … (+{len(fs) - 8})" if len(fs) > 8 else "")  # noqa: E731
        doc.table(pd.DataFrame([{"regime": chr(65 + i), "folds": f"{len(folds)}: {shown(folds)}",
                                 "what": describe_regime(rec)} for i, (rec, folds) in enumerate(groups)]))  # fmt: skip
    else:
        doc.para("No fold recorded its regime (a run from before per-fold provenance).")
    if records:
        doc.para(f"Calls that wrote to this folder (runs.jsonl, {len(records)}):")
        doc.table(pd.DataFrame([{"time": r.get("time"), "command": f"`{r.get('command')}`",
                                 "folds asked": len(r.get("folds") or []) or "all",
                                 "allow mixed": "yes" if r.get("allow_mixed") else "no",
                                 "commit": str((r.get("regime") or {}).get("mer_commit") or "unknown")[:12]}
                                for r in records]))  # fmt: skip


def regime_records(groups: Regimes) -> list[dict[str, Any]]:
    """scores.json's `regimes`: each distinct regime with its folds."""
    return [{"regime": rec, "folds": folds} for rec, folds in groups]
