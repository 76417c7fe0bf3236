"""Evaluation: LOSO folds (fine-tune → embed → SVM), the SVM itself, MEGC metrics and the run report.
Names are imported on use: `mer report` needs no training stack."""

from __future__ import annotations

from mer._lazy import lazy_getattr

_EXPORTS = {
    "Fold": "loso",
    "plan_folds": "loso",
    "run_final": "loso",
    "run_fold": "loso",
    "run_loso": "loso",
    "fit_svm": "svm",
    "per_fold_table": "metrics",
    "pooled_scores": "metrics",
    "write_report": "report",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
