"""Optuna hyper-parameter sweeps from `sweeps/*.yaml`: grid or TPE, SQLite / journal file / PostgreSQL storage,
several worker processes, pruning on inner folds, W&B per trial, and the best parameters as config overrides.

The objective scores a trial on grouped inner folds over the training subjects only (never the LOSO test folds),
unless the sweep asks for the leaky plain-LOSO objective to reproduce a paper.
"""

from mer.sweep.display import trials_table
from mer.sweep.objective import DuplicateTrial, TrialObjective, inner_folds, pooled_metric, training_frame
from mer.sweep.runner import SweepSummary, describe_summary, run_sweep, show_best, summarize, trials_per_hour
from mer.sweep.scheduling import make_pruner, make_sampler, open_study
from mer.sweep.spec import (
    ParamSpace,
    PrunerConfig,
    SweepConfig,
    apply_flags,
    check_space,
    load_sweep,
    sweep_from_dict,
    trial_overrides,
)
from mer.sweep.storage import best_overrides, default_storage, open_storage, split_study_spec

__all__ = [
    "DuplicateTrial",
    "ParamSpace",
    "PrunerConfig",
    "SweepConfig",
    "SweepSummary",
    "TrialObjective",
    "apply_flags",
    "best_overrides",
    "check_space",
    "default_storage",
    "describe_summary",
    "inner_folds",
    "load_sweep",
    "make_pruner",
    "make_sampler",
    "open_storage",
    "open_study",
    "pooled_metric",
    "run_sweep",
    "show_best",
    "split_study_spec",
    "summarize",
    "sweep_from_dict",
    "training_frame",
    "trial_overrides",
    "trials_per_hour",
    "trials_table",
]
