"""How one trial is scored, without leaking the test subjects into model selection.

`inner_loso` (default): the micro subjects of the training set (all of them, minus `exclude_subjects`, the
outer test set) are split into k groups with scikit-learn's `GroupKFold`; each group is held out once while
the network is fine-tuned on the others (`mer.evaluation.loso.run_fold`), and the metric is computed on the
pooled predictions of the k inner folds. The excluded subjects are removed from the data before any training,
so no trial ever sees them. `leaky_loso` scores plain LOSO over the same subjects: the numbers papers report,
biased because the test folds choose the hyper-parameters.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from sklearn.model_selection import GroupKFold

from mer.config import Config, class_names, load_config
from mer.errors import DataError, MerError
from mer.evaluation.loso import Fold, plan_folds, run_fold
from mer.evaluation.metrics import pooled_scores
from mer.evaluation.run_folder import CLASSIFIERS, PREDICTIONS, RunFolder
from mer.files import atomic_write_json, atomic_write_text
from mer.provenance import CHECKPOINT_SELECTION, from_study_selection, write_run_info
from mer.sweep.spec import SweepConfig, trial_overrides
from mer.sweep.storage import mask_url

EPOCH_MONITOR = "val/uf1"
# Lightning messages that every tiny trial would repeat and that say nothing about the trial.
QUIET = (
    ".*Total length of .* across ranks is zero.*",
    ".*isinstance\\(treespec, LeafSpec\\).*",
    ".*exists and is not empty.*",
    ".*does not have many workers.*",
)


class DuplicateTrial(Exception):  # noqa: N818 - reads as an event, like optuna.TrialPruned
    """A grid point that another trial (finished, or started earlier) already covers: this trial is skipped."""


def training_frame(
    prepared: pd.DataFrame, exclude: Sequence[str] = (), classes: Sequence[str] | None = None
) -> pd.DataFrame:
    """The prepared rows a sweep may train and score on: every row except the micro samples of `exclude`.

    Unknown subjects in `exclude` are an error (a typo would silently leak the intended test set).
    """
    micro = prepared["kind"] == "micro"
    if classes is not None:
        micro &= prepared["label"].isin(list(classes))
    subjects = set(prepared.loc[micro, "subject"])
    unknown = sorted(set(exclude) - subjects)
    if unknown:
        raise DataError(
            f"exclude_subjects/--holdout: {', '.join(unknown)} not among the micro subjects "
            f"(e.g. {', '.join(sorted(subjects)[:4])})"
        )
    return prepared[~(prepared["kind"].eq("micro") & prepared["subject"].isin(list(exclude)))].reset_index(drop=True)


def selection_subjects(frame: pd.DataFrame) -> list[str]:
    """The micro subjects of a sweep's training frame: every subject whose samples may score or train a trial."""
    return sorted(frame.loc[frame["kind"] == "micro", "subject"].astype(str).unique().tolist())


def inner_folds(frame: pd.DataFrame, k: int, classes: Sequence[str] | None = None) -> list[Fold]:
    """k grouped folds over the micro subjects of `frame` (GroupKFold: whole subjects, balanced sample counts)."""
    rows = frame[frame["kind"] == "micro"]
    if classes is not None:
        rows = rows[rows["label"].isin(list(classes))]
    n_subjects = rows["subject"].nunique()
    if n_subjects < 2:
        raise DataError(f"the sweep's training set has {n_subjects} micro subject(s); inner folds need at least 2")
    if k > n_subjects:
        raise MerError(f"inner_folds={k} but the training set has only {n_subjects} micro subjects; lower inner_folds")
    splitter = GroupKFold(n_splits=k)
    folds = []
    for i, (_, test_idx) in enumerate(splitter.split(rows, groups=rows["subject"])):
        held = tuple(sorted(rows.iloc[test_idx]["subject"].unique()))
        folds.append(Fold(i, f"inner{i}", held))
    return folds


def scoring_folds(spec: SweepConfig, frame: pd.DataFrame, cfg: Config) -> list[Fold]:
    """The folds a trial is scored on: k inner folds, or (leaky) the plain LOSO folds of the same subjects."""
    if spec.leaky:
        return plan_folds(frame, cfg.loso.group_size)
    return inner_folds(frame, spec.inner_folds, class_names(cfg.data))


def pooled_metric(predictions: pd.DataFrame, metric: str, classifier: str, classes: Sequence[str]) -> float:
    """The sweep metric (uf1, uar or accuracy) of the pooled predictions of the folds run so far (composite)."""
    scores = pooled_scores(predictions, pred_col=CLASSIFIERS[classifier], classes=classes)
    return float(scores["composite"][metric])


def suggest(trial: optuna.Trial, spec: SweepConfig) -> dict[str, Any]:
    """Ask the trial for a value of every search key (names are the dotted config keys)."""
    params: dict[str, Any] = {}
    for key, space in sorted(spec.search.items()):
        if space.kind == "choices":
            params[key] = trial.suggest_categorical(key, space.values)  # type: ignore[arg-type]
        elif space.kind == "int":
            params[key] = trial.suggest_int(
                key, int(space.low), int(space.high), step=int(space.step or 1), log=space.log
            )  # type: ignore[arg-type]
        else:
            params[key] = trial.suggest_float(key, float(space.low), float(space.high), step=space.step, log=space.log)  # type: ignore[arg-type]
    return params


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def worker_tag() -> str:
    """host:pid:start — enough to tell later whether the process running a trial is still alive on this host."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or ''}"


def worker_alive(tag: str) -> bool | None:
    """True/False for a worker of this host; None when it ran elsewhere (the storage heartbeat decides then)."""
    try:
        host, pid_text, start = tag.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not start or _start_time(pid) in (None, start)


def find_duplicate(study: optuna.Study, trial: optuna.Trial, params: dict[str, Any]) -> int | None:
    """Number of a trial that already covers these grid params (finished, or RUNNING with a smaller number)."""
    states = optuna.trial.TrialState
    for other in study.get_trials(deepcopy=False):
        if other.number == trial.number or other.params != params:
            continue
        if other.state in (states.COMPLETE, states.PRUNED):
            return other.number
        if other.state == states.RUNNING and other.number < trial.number:
            return other.number
    return None


class TrialObjective:
    """The Optuna objective: suggest → build the trial's config → (pre-train) → inner folds → pooled metric.

    Reports the pooled metric after every fold (step = fold index, shifted by the epochs of inner fold 0 when
    per-epoch pruning is on) so a pruner can stop a poor trial early. Writes `out/trials/<number>/`.
    """

    def __init__(
        self,
        spec: SweepConfig,
        frame: pd.DataFrame,
        out: Path,
        cli_overrides: Sequence[str] = (),
        pretrained: str | Path | None = None,
        threads: int | None = None,
        on_progress: Callable[[], None] | None = None,
        storage: str | None = None,
    ) -> None:
        self.spec = spec
        self.storage = mask_url(storage) if storage else None  # recorded in a pretrain trial's pretrained.pt
        self.frame = frame
        self.out = Path(out)
        self.overrides = spec.base_overrides(list(cli_overrides))
        self.pretrained = str(pretrained) if pretrained else None
        self.threads = threads
        self.on_progress = on_progress or (lambda: None)
        self.excluded = set(spec.exclude_subjects)
        self.epoch_pruning = spec.pruner.epochs and spec.pruner.type != "none"
        self.last_number: int | None = None
        self.fold_values: list[float] = []

    def config(self, params: dict[str, Any], number: int) -> Config:
        """The trial's config: base ← sweep/CLI overrides ← the trial's parameters (plus its name)."""
        cfg = load_config(self.spec.base, [*self.overrides, *trial_overrides(params)])
        cfg.name = f"{self.spec.study}-trial{number}"
        if self.threads:
            cfg.train.threads = min(cfg.train.threads, self.threads) if cfg.train.threads > 0 else self.threads
        return cfg

    def __call__(self, trial: optuna.Trial) -> float:
        """Run one trial and return its pooled metric (raises TrialPruned / DuplicateTrial / the training error)."""
        with warnings.catch_warnings():
            for pattern in QUIET:
                warnings.filterwarnings("ignore", pattern)
            return self._run(trial)

    def _run(self, trial: optuna.Trial) -> float:
        self.last_number = trial.number
        trial.set_user_attr("worker", worker_tag())
        params = suggest(trial, self.spec)
        if self.spec.sampler == "grid":
            dup = find_duplicate(trial.study, trial, params)
            if dup is not None:
                trial.set_user_attr("duplicate_of", dup)
                raise DuplicateTrial(f"grid point already covered by trial {dup}")
        trial_dir = self.out / "trials" / str(trial.number)
        trial_dir.mkdir(parents=True, exist_ok=True)
        self.fold_values = []
        use_wandb, state, value, start = False, "FAIL", None, time.perf_counter()
        try:
            cfg = self.config(params, trial.number)
            use_wandb, cfg.logging.wandb = cfg.logging.wandb, False  # one W&B run per trial, not per inner fold
            write_run_info(cfg, trial_dir)
            value = self._evaluate(trial, cfg, params, trial_dir)
            state = "COMPLETE"
            return value
        except optuna.TrialPruned:
            state = "PRUNED"
            raise
        except BaseException as exc:
            (trial_dir / "error.txt").write_text("".join(traceback.format_exception(exc)))
            raise
        finally:
            if use_wandb:
                seconds = time.perf_counter() - start
                _log_wandb(cfg, self.spec, trial.number, params, self.fold_values, state, value, seconds, trial_dir)

    def _pretrain(self, cfg: Config, trial_dir: Path, number: int, params: dict[str, Any]) -> str:
        """Pre-train this trial's weights into trial_dir/pretrained.pt, which records that this study chose their
        hyper-parameters on its training subjects (`mer loso --pretrained` stamps its report from that)."""
        # lazy: mer.train loads timm and albumentations, which `import mer.sweep` (`mer sweep --best`) does not need
        from mer.models.backbones import save_weights
        from mer.train import train_stage

        res = train_stage(
            cfg,
            self.frame,
            "pretrain",
            trial_dir / "pretrain",
            seed=cfg.seed,
            run_name=f"{cfg.name}-pretrain",
            job_type="pretrain",
            keep_checkpoint=False,
            enable_progress=False,
        )
        chosen = from_study_selection(self.spec.study, self.storage, self.spec.objective,
                                      selection_subjects(self.frame), params, trial=number)  # fmt: skip
        meta = {"stage": "pretrain", "config": cfg.name, CHECKPOINT_SELECTION: chosen}
        return str(save_weights(res.module.net, trial_dir / "pretrained.pt", meta))

    def _evaluate(self, trial: optuna.Trial, cfg: Config, params: dict[str, Any], trial_dir: Path) -> float:
        spec = self.spec
        start = time.perf_counter()
        leaked = self.excluded & set(self.frame["subject"])
        if leaked:  # the frame was built without them; this guards the invariant
            raise AssertionError(f"excluded subjects {sorted(leaked)} reached a trial's data")
        pretrained = self.pretrained
        if spec.stage == "pretrain":
            trial.set_user_attr("progress", "pre-training")
            self.on_progress()
            pretrained = self._pretrain(cfg, trial_dir, trial.number, params)
        folds = scoring_folds(spec, self.frame, cfg)
        offset = cfg.train.finetune.epochs if self.epoch_pruning else 0
        classes = list(class_names(cfg.data))
        preds: list[pd.DataFrame] = []
        values = self.fold_values
        record: dict[str, Any] = {"number": trial.number, "params": params, "objective": spec.objective,
                                  "leaky": spec.leaky, "metric": spec.metric, "classifier": spec.classifier,
                                  "folds": [{"name": f.name, "held_out": list(f.held_out)} for f in folds]}  # fmt: skip
        for i, fold in enumerate(folds):
            trial.set_user_attr("progress", f"fold {i + 1}/{len(folds)}")
            self.on_progress()
            callbacks = []
            if self.epoch_pruning and i == 0:
                from optuna_integration import PyTorchLightningPruningCallback  # lazy: only with pruner.epochs

                callbacks = [PyTorchLightningPruningCallback(trial, monitor=EPOCH_MONITOR)]
            try:
                run_fold(cfg, self.frame, fold, trial_dir, pretrained, callbacks=callbacks)
            except optuna.TrialPruned:  # by the per-epoch callback, inside inner fold 0
                record.update(state="PRUNED", fold_values=values, seconds=round(time.perf_counter() - start, 2))
                atomic_write_json(trial_dir / "trial.json", record, default=str)
                raise
            fold_preds = RunFolder(trial_dir).read_fold(fold.name, classes).predictions
            stray = set(fold_preds["subject"]) - set(fold.held_out)
            if stray:
                raise AssertionError(f"fold {fold.name} predicted subjects it did not hold out: {sorted(stray)}")
            fold_preds.insert(0, "fold", fold.name)
            preds.append(fold_preds)
            value = pooled_metric(pd.concat(preds, ignore_index=True), spec.metric, spec.classifier, classes)
            values.append(value)
            trial.report(value, step=offset + i)
            if trial.should_prune():
                record.update(state="PRUNED", fold_values=values, seconds=round(time.perf_counter() - start, 2))
                atomic_write_json(trial_dir / "trial.json", record, default=str)
                trial.set_user_attr("progress", f"pruned after fold {i + 1}/{len(folds)}")
                raise optuna.TrialPruned(
                    f"pruned after inner fold {i + 1}/{len(folds)}: pooled {spec.metric} {value:.4f}"
                )
        pooled = pd.concat(preds, ignore_index=True)
        atomic_write_text(RunFolder(trial_dir).file(PREDICTIONS), pooled.to_csv(index=False))
        seconds = round(time.perf_counter() - start, 2)
        record.update(state="COMPLETE", value=values[-1], fold_values=values, n_scored=len(pooled), seconds=seconds)
        atomic_write_json(trial_dir / "trial.json", record, default=str)
        trial.set_user_attr("progress", "")
        trial.set_user_attr("seconds", seconds)
        return values[-1]


def _log_wandb(cfg: Config, spec: SweepConfig, number: int, params: dict[str, Any], fold_values: list[float],
               state: str, value: float | None, seconds: float, trial_dir: Path) -> None:  # fmt: skip
    """One W&B run per trial (group = study, job_type = trial): parameters as config, the pooled metric after each
    inner fold as history, the objective and state as summary.

    Written after the trial, because `run_fold` closes any open W&B run after each fold.
    """
    import wandb  # lazy: slow to import, needed only by sweeps that log to W&B

    from mer.train import wandb_mode

    if wandb.run is not None:
        wandb.finish()
    run = wandb.init(
        project=cfg.logging.wandb_project,
        entity=cfg.logging.wandb_entity,
        group=spec.study,
        job_type="trial",
        name=f"{spec.study}-trial{number}",
        dir=str(trial_dir),
        mode=wandb_mode(cfg),  # type: ignore[arg-type]
        config={
            **params,
            "trial": number,
            "study": spec.study,
            "objective": spec.objective,
            "leaky": spec.leaky,
            "metric": spec.metric,
            "classifier": spec.classifier,
            "stage": spec.stage,
        },  # fmt: skip
        reinit="finish_previous",
    )
    for i, v in enumerate(fold_values):
        run.log({f"inner/{spec.metric}": v, "inner/folds_done": i + 1}, step=i)
    run.summary["state"] = state
    run.summary["seconds"] = round(seconds, 1)
    if value is not None:
        run.summary["objective"] = value
    run.finish()
