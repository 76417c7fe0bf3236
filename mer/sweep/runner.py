"""`mer sweep`: create or resume an Optuna study from a sweep file and run trials in one or several processes.

Grid points are never evaluated twice: Optuna 5's GridSampler gives trial n the n-th point of a seeded shuffle
(trial numbers are unique across processes), every trial first checks that no finished or earlier-started
trial holds its point, and a process stops as soon as every point is finished, running or queued. Trials of
workers that died (same host: the process is gone; other hosts: the RDB heartbeat) are marked FAIL and their
points queued again, so a killed sweep resumes with exactly the missing points.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from mer.errors import MerError
from mer.sweep.objective import (
    DuplicateTrial,
    TrialObjective,
    epoch_pruning_supported,
    scoring_folds,
    training_frame,
    worker_alive,
)
from mer.sweep.spec import SweepConfig, check_space, data_fingerprint, format_value, load_sweep, trial_overrides
from mer.sweep.storage import (
    best_trial,
    default_storage,
    fail_stale_trials,
    leaky_warning,
    load_existing_study,
    mask_url,
    open_storage,
)

MAX_POINT_FAILURES = 2  # a grid point whose trial failed this often is not queued again
MAX_CONSECUTIVE_FAILURES = 3  # a process gives up after this many failed trials in a row
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


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
        """The best parameters as `key=value` overrides for `mer loso` (empty when no trial finished)."""
        return " ".join(trial_overrides(self.best_params))


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's GridSampler, tolerant of queued trials that carry no grid id (its after_trial would KeyError)."""

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        """Stop the optimize loop once every point is finished, as GridSampler does."""
        if "grid_id" in study._storage.get_trial_system_attrs(trial._trial_id):
            super().after_trial(study, trial, state, values)
        elif self.is_exhausted(study):
            study.stop()


def make_sampler(spec: SweepConfig, worker: int = 0) -> optuna.samplers.BaseSampler:
    """GridSampler (same seeded order in every process) or TPESampler (seed + worker index, so workers differ)."""
    if spec.sampler == "grid":
        return _GridSampler({k: s.values for k, s in spec.search.items()}, seed=spec.seed)  # type: ignore[misc]
    return optuna.samplers.TPESampler(seed=spec.seed + worker, n_startup_trials=spec.n_startup_trials)


def make_pruner(spec: SweepConfig) -> optuna.pruners.BasePruner:
    """The pruner named in the sweep file, with its settings."""
    p = spec.pruner
    if p.type == "median":
        return optuna.pruners.MedianPruner(p.n_startup_trials, p.n_warmup_steps, p.interval_steps)
    if p.type == "hyperband":
        return optuna.pruners.HyperbandPruner(p.min_resource, p.max_resource, p.reduction_factor)  # type: ignore[arg-type]
    if p.type == "threshold":
        return optuna.pruners.ThresholdPruner(p.lower, p.upper, p.n_warmup_steps, p.interval_steps)
    return optuna.pruners.NopPruner()


def open_study(spec: SweepConfig, url: str, identity: str, worker: int = 0) -> optuna.Study:
    """Create the study or load it (resume); refuse to resume one made with a different sweep definition."""
    storage = open_storage(url)
    study = optuna.create_study(study_name=spec.study, storage=storage, sampler=make_sampler(spec, worker),
                                pruner=make_pruner(spec), direction=spec.direction, load_if_exists=True)  # fmt: skip
    stored = study.user_attrs.get("sweep")
    if stored is None:
        study.set_user_attr("sweep", identity)
        for key, value in (("leaky", spec.leaky), ("objective", spec.objective), ("metric", spec.metric),
                           ("classifier", spec.classifier), ("source", spec.source)):  # fmt: skip
            study.set_user_attr(key, value)
    elif stored != identity:
        old, new = json.loads(stored), json.loads(identity)
        diff = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        raise MerError(
            f"study '{spec.study}' in {mask_url(url)} was made with other settings ({', '.join(diff)} differ); "
            "restore them to resume, or give the sweep a new study name / --out folder"
        )
    return study


def _key(params: dict[str, Any]) -> str:
    return json.dumps(sorted(params.items()), default=str)


def _params(t: FrozenTrial) -> dict[str, Any]:
    return dict(t.system_attrs.get("fixed_params", t.params))


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker process on this host no longer exists; returns their numbers."""
    dead = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        tag = t.user_attrs.get("worker")
        if tag and worker_alive(tag) is False:
            try:
                study._storage.set_trial_user_attr(t._trial_id, "failed_because", "its worker process died")
                study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
                dead.append(t.number)
            except Exception:  # noqa: BLE001,S112 - another process finished or failed it first
                continue
    return dead


def grid_todo(spec: SweepConfig, trials: Sequence[FrozenTrial]) -> tuple[list[dict[str, Any]], list[FrozenTrial]]:
    """(points nobody holds yet, one failed trial per failed point to queue again) of a grid study.

    A point is held by a COMPLETE, PRUNED, RUNNING or WAITING (queued) trial. A point whose trials all failed is
    retried until it failed MAX_POINT_FAILURES times; skipped duplicates do not count as failures.
    """
    held: set[str] = set()
    failed: dict[str, list[FrozenTrial]] = {}
    for t in trials:
        key = _key(_params(t))
        if t.state in (*FINISHED, TrialState.RUNNING, TrialState.WAITING):
            held.add(key)
        elif t.state == TrialState.FAIL and "duplicate_of" not in t.user_attrs:
            failed.setdefault(key, []).append(t)
    todo = [p for p in spec.grid() if _key(p) not in held and len(failed.get(_key(p), [])) < MAX_POINT_FAILURES]
    retry = [failed[_key(p)][-1] for p in todo if _key(p) in failed]
    return todo, retry


def queue_retry(study: optuna.Study, failed: FrozenTrial) -> None:
    """Queue a failed grid point again, carrying its grid id so GridSampler books it as that point."""
    system = {"fixed_params": _params(failed)}
    for key in ("grid_id", "search_space"):
        if key in failed.system_attrs:
            system[key] = failed.system_attrs[key]
    user = {"retry_of": failed.number}
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, system_attrs=system, user_attrs=user))


class _Slots:
    """How many more trials this command may start (--n-trials): a local count, or a counter shared by workers."""

    def __init__(self, limit: int | None = None, counter: Any = None) -> None:
        self.left = limit
        self.counter = counter

    def take(self) -> bool:
        """Claim one trial; False when this command's --n-trials are used up."""
        if self.counter is not None:
            with self.counter.get_lock():
                if self.counter.value <= 0:
                    return False
                self.counter.value -= 1
                return True
        if self.left is None:
            return True
        if self.left <= 0:
            return False
        self.left -= 1
        return True

    def give_back(self) -> None:
        """Return a claim (the trial was a skipped duplicate, nothing was trained)."""
        if self.counter is not None:
            with self.counter.get_lock():
                self.counter.value += 1
        elif self.left is not None:
            self.left += 1


def work(
    study: optuna.Study,
    spec: SweepConfig,
    objective: Callable[[optuna.Trial], float],
    slots: _Slots | None = None,
    on_trial: Callable[[FrozenTrial], None] | None = None,
) -> int:
    """Run trials until the study's budget is met, the grid is held by someone, or this process's slots run out.

    Returns the number of trials this process evaluated (duplicates skipped are not counted).
    """
    slots = slots or _Slots()
    budget = spec.budget()
    ran = 0
    failures_in_row = 0
    while True:
        fail_dead_trials(study)
        fail_stale_trials(study)  # workers on other hosts: RDB heartbeat; their points are queued again
        trials = study.get_trials(deepcopy=False)
        active = sum(t.state in (*FINISHED, TrialState.RUNNING) for t in trials)
        if budget is not None and active >= budget:
            return ran
        if spec.sampler == "grid":
            todo, retry = grid_todo(spec, trials)
            waiting = any(t.state == TrialState.WAITING for t in trials)
            if not todo and not waiting:
                return ran
            for failed in retry:
                queue_retry(study, failed)
        if not slots.take():
            return ran
        finished: list[FrozenTrial] = []
        try:
            study.optimize(objective, n_trials=1, catch=(DuplicateTrial,), gc_after_trial=False,
                           callbacks=[lambda _s, t, out=finished: out.append(t)])  # fmt: skip
        except (MerError, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - the trial is recorded FAIL; go on with the next one
            failures_in_row += 1
            number = getattr(objective, "last_number", None)
            print(f"trial {number} failed: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                  f"(traceback in {spec.out_dir / 'trials' / str(number) / 'error.txt'})", file=sys.stderr)  # fmt: skip
            if failures_in_row >= MAX_CONSECUTIVE_FAILURES:
                raise MerError(
                    f"{failures_in_row} trials in a row failed (last: {exc.__class__.__name__}: {exc}); "
                    f"see {spec.out_dir / 'trials'}/<n>/error.txt"
                ) from None
        else:
            failures_in_row = 0
        if finished and "duplicate_of" in finished[-1].user_attrs:
            slots.give_back()
        else:
            ran += 1
        if finished and on_trial is not None:
            on_trial(finished[-1])


# ---------------------------------------------------------------- progress display


def _short(key: str) -> str:
    parts = key.split(".")
    return ".".join(parts[-2:]) if len(parts) > 2 else key


def _state(t: FrozenTrial) -> str:
    if t.state == TrialState.FAIL and "duplicate_of" in t.user_attrs:
        return f"SKIP (dup #{t.user_attrs['duplicate_of']})"
    if t.state == TrialState.RUNNING and t.user_attrs.get("progress"):
        return f"RUNNING {t.user_attrs['progress']}"
    return t.state.name


def _value(t: FrozenTrial) -> str:
    if t.value is not None:
        return f"{t.value:.4f}"
    if t.intermediate_values:
        step = max(t.intermediate_values)
        return f"({t.intermediate_values[step]:.4f} @{step})"
    return ""


def trial_line(t: FrozenTrial, metric: str) -> str:
    """One line per finished trial (for logs and non-terminal output)."""
    params = " ".join(f"{k}={format_value(v)}" for k, v in sorted(_params(t).items()))
    secs = f" ({t.duration.total_seconds():.0f} s)" if t.duration else ""
    return f"trial {t.number:>3} {_state(t):<12} {metric}={_value(t) or '-':<8} {params}{secs}"


def trials_table(study: optuna.Study, spec: SweepConfig, limit: int = 30) -> Any:
    """A rich Table of the study's trials (number, state, each parameter, value), best marked, newest last."""
    from rich.table import Table

    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    best = None
    if done:
        pick = max if spec.direction == "maximize" else min
        best = pick(done, key=lambda t: t.value).number  # type: ignore[arg-type, return-value]
    counts = {s: sum(t.state == s for t in trials) for s in TrialState}
    budget = f"/{spec.budget()}" if spec.budget() else ""
    failed = sum(t.state == TrialState.FAIL and "duplicate_of" not in t.user_attrs for t in trials)
    title = (f"{'LEAKY ' if spec.leaky else ''}{spec.study}: {counts[TrialState.COMPLETE]}{budget} done, "
             f"{counts[TrialState.PRUNED]} pruned, {counts[TrialState.RUNNING]} running, {failed} failed")  # fmt: skip
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("state")
    for key in sorted(spec.search):
        table.add_column(_short(key), justify="right")
    table.add_column(spec.metric, justify="right")
    table.add_column("s", justify="right")
    shown = trials[-limit:]
    for t in shown:
        params = _params(t)
        row = [str(t.number) + (" *" if t.number == best else ""), _state(t)]
        row += [format_value(params[k]) if k in params else "" for k in sorted(spec.search)]
        row += [_value(t), f"{t.duration.total_seconds():.0f}" if t.duration else ""]
        table.add_row(*row, style="bold green" if t.number == best else None)
    return table


class Display:
    """Live table in a terminal (rich Live); one line per finished trial otherwise (logs, CI, SLURM)."""

    def __init__(self, study: optuna.Study, spec: SweepConfig, live: bool | None = None) -> None:
        from rich.console import Console

        self.study, self.spec = study, spec
        self.console = Console()
        self.live_on = self.console.is_terminal if live is None else live
        self.live: Any = None
        self.printed: set[int] = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        self.last = 0.0

    def __enter__(self) -> Display:
        if self.live_on:
            from rich.live import Live

            self.live = Live(trials_table(self.study, self.spec), console=self.console, refresh_per_second=2)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.refresh(force=True)
            self.live.__exit__(*exc)
            if not self.console.is_terminal:
                print()

    def refresh(self, force: bool = False) -> None:
        """Redraw the table (terminal) or print the trials that finished since the last call."""
        now = time.monotonic()
        if not force and now - self.last < 0.5:
            return
        self.last = now
        if self.live is not None:
            self.live.update(trials_table(self.study, self.spec))
            return
        for t in self.study.get_trials(deepcopy=False):
            if t.state.is_finished() and t.number not in self.printed:
                self.printed.add(t.number)
                print(trial_line(t, self.spec.metric), flush=True)

    def trial_done(self, _t: FrozenTrial) -> None:
        """Callback after each trial of this process."""
        self.refresh(force=True)


# ---------------------------------------------------------------- summary


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


def show_best(
    spec: SweepConfig | str | Path, storage: str | None = None, out: str | Path | None = None
) -> SweepSummary:
    """`mer sweep --best`: print the best parameters as one override line, then its value; returns the summary."""
    spec = spec if isinstance(spec, SweepConfig) else load_sweep(spec)
    if out is not None:
        spec = dataclasses.replace(spec, out=str(out))
    url = storage or default_storage(spec.out_dir)[0]
    study = load_existing_study(url, spec.study)
    summary = summarize(study, url)
    if summary.best_number is None:
        raise MerError(f"study '{spec.study}' in {mask_url(url)} has no complete trial yet")
    print(summary.override_line())
    where = "LEAKY LOSO test folds" if summary.leaky else "inner folds"
    print(f"# trial {summary.best_number}: pooled {summary.metric} {summary.best_value:.4f} on {where} "
          f"({summary.n_complete} complete, {summary.n_pruned} pruned)")  # fmt: skip
    warning = leaky_warning(study)
    if warning:
        print(f"# {warning}")
    return summary


# ---------------------------------------------------------------- running


@dataclass
class _Job:
    """Everything a worker process needs (pickled to spawned processes)."""

    spec: SweepConfig
    url: str
    identity: str
    frame: pd.DataFrame
    cli_overrides: list[str]
    pretrained: str | None
    threads: int | None = None


def _load_prepared(path: str | Path) -> pd.DataFrame:
    from mer.prepare import load_prepared

    return load_prepared(Path(path))


def _worker_main(job: _Job, index: int, counter: Any, log_path: str, gpu: int | None) -> None:
    """Entry point of a `--workers` process: its output goes to a log file, its trials to the shared storage."""
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - kept open for the process's lifetime
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        import torch

        if job.threads:
            torch.set_num_threads(job.threads)
        study = open_study(job.spec, job.url, job.identity, worker=index)
        objective = TrialObjective(
            job.spec, job.frame, job.spec.out_dir, job.cli_overrides, job.pretrained, job.threads
        )
        ran = work(study, job.spec, objective, _Slots(counter=counter),
                   on_trial=lambda t: print(trial_line(t, job.spec.metric), flush=True))  # fmt: skip
        print(f"worker {index} done: {ran} trial(s)", flush=True)
    except MerError as exc:
        print(f"error: {exc}", flush=True)
        sys.exit(2)


def _run_workers(job: _Job, workers: int, n_trials: int | None, display: Display) -> None:
    import multiprocessing as mp

    import torch

    ctx = mp.get_context("spawn")
    counter = ctx.Value("i", n_trials) if n_trials is not None else None
    gpus = torch.cuda.device_count()
    logs = job.spec.out_dir / "workers"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for i in range(workers):
        log_path = logs / f"worker{i}.log"
        p = ctx.Process(target=_worker_main, args=(job, i, counter, str(log_path), i % gpus if gpus else None))
        p.start()
        procs.append((p, log_path))
    try:
        while any(p.is_alive() for p, _ in procs):
            time.sleep(1.0)
            display.refresh()
    except KeyboardInterrupt:
        for p, _ in procs:
            p.join(timeout=30)
        raise
    for p, _ in procs:
        p.join()
    display.refresh(force=True)
    bad = [(i, p.exitcode, log) for i, (p, log) in enumerate(procs) if p.exitcode != 0]
    if bad:
        i, code, log = bad[0]
        lines = [ln for ln in Path(log).read_text().splitlines() if ln.strip()]
        reason = next(
            (ln for ln in reversed(lines) if ln.startswith("error: ")), lines[-1] if lines else f"exit {code}"
        )
        raise MerError(f"sweep worker {i} stopped ({reason.removeprefix('error: ')}); log: {log}")


def run_sweep(
    spec: SweepConfig | str | Path,
    prepared: pd.DataFrame | str | Path | None = None,
    storage: str | None = None,
    workers: int = 1,
    n_trials: int | None = None,
    pretrained: str | Path | None = None,
    out: str | Path | None = None,
    holdout: Sequence[str] = (),
    cli_overrides: Sequence[str] = (),
    config: str | Sequence[str] | None = None,
    live: bool | None = None,
) -> SweepSummary:
    """`mer sweep`: check the sweep, create or resume its study, run trials (in `workers` processes), summarise.

    `prepared` is a prepared table or the folder written by `mer prepare` (default: the sweep file's `prepared`,
    then the base config's `data.prepared`). `n_trials` caps the trials this call starts (all workers together);
    the study's own budget is the sweep file's `n_trials` (grid: its size). `holdout` adds subjects to
    `exclude_subjects` (the outer test set no trial may see). `config` (one name/path or several stacked) replaces
    the sweep file's `base`; `cli_overrides` come after the file's `overrides`.
    """
    spec = spec if isinstance(spec, SweepConfig) else load_sweep(spec)
    changes: dict[str, Any] = {}
    if out is not None:
        changes["out"] = str(out)
    if config:
        changes["base"] = config if isinstance(config, str) else (list(config) if len(config) > 1 else config[0])
    if holdout:
        changes["exclude_subjects"] = sorted(set(spec.exclude_subjects) | set(holdout))
    spec = dataclasses.replace(spec, **changes)
    cli_overrides = list(cli_overrides)
    if workers < 1:
        raise MerError(f"--workers must be at least 1, got {workers}")
    if n_trials is not None and n_trials < 0:
        raise MerError(f"--n-trials must be 0 (create/check the study only) or more, got {n_trials}")
    cfg = check_space(spec, cli_overrides)
    if spec.stage == "pretrain" and (pretrained or spec.pretrained):
        raise MerError(
            f"{spec.source}: stage: pretrain trains its own weights per trial; drop --pretrained / pretrained:"
        )
    pretrained = str(pretrained or spec.pretrained) if (pretrained or spec.pretrained) else None
    if isinstance(prepared, pd.DataFrame):
        table = prepared
    else:
        table = _load_prepared(prepared or spec.prepared or cfg.data.prepared)
    from mer.evaluation.loso import check_inputs

    frame = training_frame(table, spec.exclude_subjects, cfg.data.classes)
    folds = scoring_folds(spec, frame, cfg)
    check_inputs(cfg, frame, pretrained)
    extra = {"data": data_fingerprint(frame), "pretrained": pretrained}
    identity = spec.identity(cli_overrides, extra)

    url, note = (storage, None) if storage else default_storage(spec.out_dir, workers)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = open_study(spec, url, identity)
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    if note:
        print(note)
    n_subjects = frame.loc[frame["kind"] == "micro", "subject"].nunique()
    size = (
        f"grid of {len(spec.grid())} points"
        if spec.sampler == "grid"
        else f"tpe, {spec.n_trials} trials, seed {spec.seed}"
    )
    print(f"study {spec.study} ({size}) in {mask_url(url)}; trials → {spec.out_dir / 'trials'}")
    if spec.leaky:
        print(f"objective: LEAKY plain LOSO over {n_subjects} subjects ({len(folds)} folds): trials are scored on the "
              "test folds themselves, as papers did; the resulting LOSO score is optimistically biased")  # fmt: skip
    else:
        print(
            f"objective: pooled {spec.metric} ({spec.classifier}) over {len(folds)} grouped inner folds of "
            f"{n_subjects} training subjects; {len(spec.exclude_subjects)} held-out subject(s) never seen"
        )
    if spec.pruner.epochs and spec.pruner.type != "none" and not epoch_pruning_supported():
        print(
            "note: pruner.epochs needs mer.evaluation.loso.run_fold(callbacks=...); pruning after each inner fold only"
        )
    threads = None
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
    job = _Job(spec, url, identity, frame, cli_overrides, pretrained, threads)
    if n_trials == 0:
        print("--n-trials 0: study created/checked, no trial run")
    with Display(study, spec, live) as display:
        if n_trials == 0:
            pass
        elif workers == 1:
            objective = TrialObjective(spec, frame, spec.out_dir, cli_overrides, pretrained, None, display.refresh)
            work(study, spec, objective, _Slots(n_trials), on_trial=display.trial_done)
        else:
            _run_workers(job, workers, n_trials, display)
    summary = summarize(study, url)
    print(describe_summary(summary))
    return summary


def trials_per_hour(study: optuna.Study) -> float:
    """Finished trials per hour of wall time between the first start and the last end (for benchmarks)."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state in FINISHED and t.datetime_complete]
    if not done:
        return math.nan
    start = min(t.datetime_start for t in done if t.datetime_start)
    end = max(t.datetime_complete for t in done if t.datetime_complete)
    hours = (end - start).total_seconds() / 3600
    return len(done) / hours if hours > 0 else math.nan
