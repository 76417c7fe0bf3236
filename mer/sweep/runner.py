"""`mer sweep`: create or resume an Optuna study from a sweep file, run its trials, print what it found.

The sweep arrives with the command line already applied: its own keys through `apply_flags` (--out, --config,
--holdout, --pretrained) and config keys as overrides (--prepared → `data.prepared`). Scheduling (grid
bookkeeping, the process pool) is in `mer.sweep.scheduling`, the live table in `mer.sweep.display`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import torch
from optuna.trial import TrialState

from mer.config import as_override, class_names
from mer.data.prepared import load_prepared
from mer.errors import MerError
from mer.evaluation.loso import check_inputs
from mer.runtime import device_placement
from mer.sweep.display import Display
from mer.sweep.objective import TrialObjective, scoring_folds, selection_subjects, training_frame
from mer.sweep.scheduling import FINISHED, Job, Slots, open_study, run_workers, work
from mer.sweep.spec import SweepConfig, check_space, data_fingerprint, load_sweep, trial_overrides
from mer.sweep.storage import (
    best_trial,
    default_storage,
    leaky_warning,
    load_existing_study,
    mask_url,
    study_reference,
)


@dataclass
class SweepSummary:
    """What a sweep has produced so far (printed after every run and by `mer sweep --best`)."""

    study: str
    storage: str
    n_complete: int
    n_pruned: int
    n_failed: int
    n_running: int
    best_number: int | None
    best_value: float | None
    best_params: dict[str, Any] = field(default_factory=dict)
    metric: str = "uf1"
    objective: str = "inner_loso"
    leaky: bool = False

    def override_line(self) -> str:
        """The best parameters as `key=value` overrides for `mer loso` / `mer pretrain`, then `selected_by=URL::STUDY`
        so that the run records (and checks) where they came from; empty when no trial finished."""
        if self.best_number is None:
            return ""
        reference = as_override("selected_by", study_reference(self.storage, self.study))
        return " ".join([*trial_overrides(self.best_params), reference])


def summarize(study: optuna.Study, url: str) -> SweepSummary:
    """Counts and the best trial of a study."""
    trials = study.get_trials(deepcopy=False)
    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    best = None
    if count[TrialState.COMPLETE]:
        best = best_trial(study)
    return SweepSummary(
        study=study.study_name,
        storage=url,
        n_complete=count[TrialState.COMPLETE],
        n_pruned=count[TrialState.PRUNED],
        n_failed=sum(t.state == TrialState.FAIL and "duplicate_of" not in t.user_attrs for t in trials),
        n_running=count[TrialState.RUNNING],
        best_number=best.number if best else None,
        best_value=best.value if best else None,
        best_params=dict(best.params) if best else {},
        metric=str(study.user_attrs.get("metric", "value")),
        objective=str(study.user_attrs.get("objective", "?")),
        leaky=bool(study.user_attrs.get("leaky", False)),
    )


def describe_summary(s: SweepSummary) -> str:
    """The lines printed at the end of a sweep and by --best (leaky studies say so on every line that scores)."""
    where = "LEAKY plain-LOSO test folds" if s.leaky else "grouped inner folds of the training subjects"
    lines = [f"study {s.study}: {s.n_complete} complete, {s.n_pruned} pruned, {s.n_failed} failed, "
             f"{s.n_running} running  [{mask_url(s.storage)}]"]  # fmt: skip
    if s.best_number is None:
        lines.append("no complete trial yet")
    else:
        lines.append(f"best: trial {s.best_number}, pooled {s.metric} {s.best_value:.4f} on {where}")
        lines.append(f"override: {s.override_line()}")
        lines.append(f"next: mer loso --from-study '{mask_url(s.storage)}::{s.study}' (+ your --config, --pretrained)")
    if s.leaky:
        lines.append("LEAKY objective: trials were scored on the LOSO test folds; any LOSO score with these parameters "
                     "is optimistically biased (for reproducing papers only)")  # fmt: skip
    return "\n".join(lines)


def show_best(spec: SweepConfig | str | Path, storage: str | None = None) -> SweepSummary:
    """`mer sweep --best`: print the best parameters as one override line, then its value; returns the summary."""
    spec = spec if isinstance(spec, SweepConfig) else load_sweep(spec)
    url = storage or default_storage(spec.out_dir)[0]
    study = load_existing_study(url, spec.study)
    summary = summarize(study, url)
    if summary.best_number is None:
        raise MerError(f"study '{spec.study}' in {mask_url(url)} has no complete trial yet")
    print(summary.override_line())
    where = "LEAKY LOSO test folds" if summary.leaky else "inner folds"
    print(f"# trial {summary.best_number}: pooled {summary.metric} {summary.best_value:.4f} on {where} "
          f"({summary.n_complete} complete, {summary.n_pruned} pruned)")  # fmt: skip
    print("# selected_by names the study: mer loso checks its subjects against every fold's test subjects (LEAKY "
          "when they meet), mer pretrain records it in pretrained.pt")  # fmt: skip
    warning = leaky_warning(study)
    if warning:
        print(f"# {warning}")
    return summary


def run_sweep(
    spec: SweepConfig | str | Path,
    overrides: Sequence[str] = (),
    *,
    prepared: pd.DataFrame | None = None,
    storage: str | None = None,
    workers: int = 1,
    n_trials: int | None = None,
    live: bool | None = None,
    devices: Sequence[str] = (),
) -> SweepSummary:
    """`mer sweep`: check the sweep, create or resume its study, run trials (in `workers` processes), summarise.

    `overrides` come after the sweep file's own (and its `prepared`). The data is the prepared folder that
    `data.prepared` resolves to, unless `prepared` hands over a table already loaded. The rest says how this call
    runs, not what the study is: `storage` (default: in the sweep folder), `workers`, `n_trials` (a cap on the
    trials this call starts, all workers together; the study's budget is the file's `n_trials`, grid: its size),
    `devices` (worker processes' GPUs, as `loso.devices`; with one worker the caller places its own process).
    """
    spec = spec if isinstance(spec, SweepConfig) else load_sweep(spec)
    overrides = list(overrides)
    if workers < 1:
        raise MerError(f"--workers must be at least 1, got {workers}")
    # each worker's CUDA_VISIBLE_DEVICES; a GPU this process cannot see is an error before the study is touched
    gpus = device_placement(devices, workers, torch.cuda.device_count()) if workers > 1 else None
    if n_trials is not None and n_trials < 0:
        raise MerError(f"--n-trials must be 0 (create/check the study only) or more, got {n_trials}")
    cfg = check_space(spec, overrides)
    if spec.stage == "pretrain" and spec.pretrained:
        raise MerError(
            f"{spec.source}: stage: pretrain trains its own weights per trial; drop --pretrained / pretrained:"
        )
    table = prepared if prepared is not None else load_prepared(Path(cfg.data.prepared))
    frame = training_frame(table, spec.exclude_subjects, class_names(cfg.data))
    folds = scoring_folds(spec, frame, cfg)
    check_inputs(cfg, frame, spec.pretrained)
    identity = spec.identity(overrides, {"data": data_fingerprint(frame), "pretrained": spec.pretrained})

    url, note = (storage, None) if storage else default_storage(spec.out_dir, workers)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = open_study(spec, url, identity)
    if "inner_subjects" not in study.user_attrs:  # facts for the LEAKY check of any LOSO run that uses this study
        study.set_user_attr("inner_subjects", selection_subjects(frame))
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    if note:
        print(note)
    _describe_start(spec, url, frame, len(folds))
    if n_trials == 0:
        print("--n-trials 0: study created/checked, no trial run")
    with Display(study, spec, live) as display:
        if n_trials == 0:
            pass
        elif workers == 1:
            objective = TrialObjective(
                spec, frame, spec.out_dir, overrides, spec.pretrained, None, display.refresh, storage=url
            )
            work(study, spec, objective, Slots(n_trials), on_trial=display.trial_done)
        else:
            threads = max(1, (os.cpu_count() or 1) // workers)
            job = Job(spec, url, identity, frame, overrides, threads, tuple(gpus) if gpus is not None else None)
            run_workers(job, workers, n_trials, display)
    summary = summarize(study, url)
    print(describe_summary(summary))
    return summary


def _describe_start(spec: SweepConfig, url: str, frame: pd.DataFrame, n_folds: int) -> None:
    """Print the study's size and storage, and how trials are scored (LEAKY said loudly)."""
    n_subjects = frame.loc[frame["kind"] == "micro", "subject"].nunique()
    size = (
        f"grid of {len(spec.grid())} points"
        if spec.sampler == "grid"
        else f"tpe, {spec.n_trials} trials, seed {spec.seed}"
    )
    print(f"study {spec.study} ({size}) in {mask_url(url)}; trials → {spec.out_dir / 'trials'}")
    if spec.leaky:
        print(f"objective: LEAKY plain LOSO over {n_subjects} subjects ({n_folds} folds): trials are scored on the "
              "test folds themselves, as papers did; the resulting LOSO score is optimistically biased")  # fmt: skip
    else:
        print(
            f"objective: pooled {spec.metric} ({spec.classifier}) over {n_folds} grouped inner folds of "
            f"{n_subjects} training subjects; {len(spec.exclude_subjects)} held-out subject(s) never seen"
        )


def trials_per_hour(study: optuna.Study) -> float:
    """Finished trials per hour of wall time between the first start and the last end (for benchmarks)."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state in FINISHED and t.datetime_complete]
    if not done:
        return math.nan
    start = min(t.datetime_start for t in done if t.datetime_start)
    end = max(t.datetime_complete for t in done if t.datetime_complete)
    hours = (end - start).total_seconds() / 3600
    return len(done) / hours if hours > 0 else math.nan
