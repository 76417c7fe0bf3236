"""`mer loso --nested SWEEP.yaml`: nested LOSO, the number that may be compared with other subjects' numbers.

For each outer fold an Optuna study (`<study>/<fold>`) searches the sweep file's space over that fold's training
subjects only (the sweep's sampler, pruner and grouped inner folds; the fold's held-out subjects are added to
`exclude_subjects`, so no inner trial ever sees them), then the fold is fine-tuned and its SVM fitted
(`mer.evaluation.loso.run_fold`) with its own best parameters. One storage holds every inner study; rerunning the
same command resumes both levels: complete folds are skipped, an unfinished inner study continues where it stopped
(trials of a killed process are failed and their grid points run again).

It lives in the sweep layer because it drives sweeps; evaluation knows nothing of it (`run_loso` takes the fold
runner and the selection record as arguments).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from mer.config import Config, class_names, load_config
from mer.errors import MerError
from mer.evaluation.loso import Fold, run_fold, run_loso
from mer.evaluation.run_folder import FoldResult
from mer.provenance import nested_selection
from mer.sweep.objective import selection_subjects, training_frame
from mer.sweep.runner import run_sweep
from mer.sweep.scheduling import holds
from mer.sweep.spec import SweepConfig, check_space, trial_overrides
from mer.sweep.storage import journal_path, load_existing_study, mask_url


def nested_storage(out: Path, workers: int = 1) -> str:
    """The default storage of a nested run: an existing OUT/nested.journal or OUT/nested.db, else SQLite (one
    process) or a journal file (several worker processes)."""
    journal, db = out / "nested.journal", out / "nested.db"
    if journal.exists() or (workers > 1 and not db.exists()):
        return f"journal:{journal}"
    return f"sqlite:///{db}"


def fold_spec(spec: SweepConfig, fold: Fold, out: Path) -> SweepConfig:
    """The inner sweep of one outer fold: study `<study>/<fold>`, the fold's test subjects excluded, its trials in
    OUT/nested/<fold>/."""
    exclude = sorted(set(spec.exclude_subjects) | set(fold.held_out))
    return replace(
        spec, study=f"{spec.study}/{fold.name}", exclude_subjects=exclude, out=str(out / "nested" / fold.name)
    )


def chosen_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The best COMPLETE trial; ties go to the smallest parameter set (never to the trial number, which depends on
    the order trials ran in, so a resumed study chooses what an uninterrupted one would). Refused while a trial still
    runs in another process: the choice would miss it, and a later rerun would choose otherwise."""
    running = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)) if holds(t)]
    if running:
        who = ", ".join(f"trial {t.number} ({t.user_attrs['worker']})" for t in running)
        raise MerError(
            f"inner study '{study.study_name}' still has {who} running in another process; rerun this command when "
            "it ends (a worker that died on another host is failed after MER_GRACE_S without a heartbeat)"
        )
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        raise MerError(f"inner study '{study.study_name}' has no complete trial (see its trials' error.txt)")
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
    return min(done, key=lambda t: (sign * float(t.value), json.dumps(sorted(t.params.items()), default=str)))


def _identity_key(spec: SweepConfig, overrides: list[str]) -> str:
    """What a resumed nested run must share with the folds already complete (search, sampler, objective, ...)."""
    return "nested:" + hashlib.sha256(spec.identity(overrides).encode()).hexdigest()[:16]


def run_nested_loso(
    spec: SweepConfig,
    out: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    storage: str | None = None,
    workers: int = 1,
    fold_index: int | None = None,
    folds: str | list[str] | None = None,
    live: bool | None = False,
    allow_mixed: bool = False,
) -> Path:
    """Nested LOSO: per outer fold, an inner study over its training subjects, then the fold with its best values.

    `spec` is the sweep (its `base` and `pretrained` already set from the command line), `overrides` the config
    overrides every trial and fold starts from; `storage` holds every inner study (default OUT/nested.db);
    `workers` processes run each inner study's trials; `fold_index` / `folds` choose the outer folds this call runs.
    """
    out = Path(out)
    overrides = list(overrides)
    if spec.stage != "finetune":
        raise MerError(f"{spec.source}: nested LOSO searches fine-tuning hyper-parameters; use stage: finetune")
    cfg = check_space(spec, overrides)
    cfg.loso.nested = spec.source
    url = storage or nested_storage(out, workers)
    if journal_path(url) is None and url.startswith("sqlite:") and workers > 1:
        print(f"note: {workers} workers on SQLite storage {url}; a journal file or PostgreSQL is safer")

    def plan_record(plan: list[Fold], prepared: pd.DataFrame) -> dict[str, Any]:
        rec = {}
        for fold in plan:
            inner = fold_spec(spec, fold, out)
            frame = training_frame(fold.restrict(prepared), inner.exclude_subjects, class_names(cfg.data))
            rec[fold.name] = {"study": inner.study, "test_subjects": list(fold.held_out),
                              "inner_subjects": selection_subjects(frame)}  # fmt: skip
        return nested_selection(mask_url(url), spec.study, spec.source, rec)

    def one_fold(fold: Fold, prepared: pd.DataFrame, pretrained: str | Path | None) -> FoldResult:
        inner = fold_spec(spec, fold, out)
        print(f"fold {fold.name}: inner study {inner.study} over its training subjects")
        run_sweep(inner, overrides, prepared=prepared, storage=url, workers=workers, live=live)
        study = load_existing_study(url, inner.study)
        subjects = [str(s) for s in study.user_attrs.get("inner_subjects") or []]
        leaked = sorted(set(subjects) & set(fold.held_out))
        if leaked:  # the study's own record must agree with the exclusion above
            raise AssertionError(f"inner study {inner.study} used this fold's test subjects {leaked}")
        best = chosen_trial(study)
        record = {"study": inner.study, "trial": best.number, "value": best.value, "params": dict(best.params),
                  "inner_subjects": subjects}  # fmt: skip
        return run_fold(fold_config(spec, overrides, best.params, cfg), prepared, fold, out, pretrained,
                        extra={"selection": record})  # fmt: skip

    return run_loso(cfg, out, spec.pretrained, fold_index=fold_index, folds=folds, selection=plan_record,
                    selection_key=_identity_key(spec, overrides), fold_runner=one_fold,
                    allow_mixed=allow_mixed)  # fmt: skip


def fold_config(spec: SweepConfig, overrides: list[str], params: dict[str, Any], run_cfg: Config) -> Config:
    """An outer fold's config: exactly what its inner trials started from, with its best parameters (and the run's
    name, so its seed and files are the run's, not a trial's)."""
    cfg = load_config(spec.base, [*spec.base_overrides(overrides), *trial_overrides(params)])
    cfg.name = run_cfg.name
    cfg.loso.nested = run_cfg.loso.nested
    return cfg
