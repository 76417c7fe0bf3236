"""Which trial runs where: the study and its grid bookkeeping, the trial loop of one process, the process pool.

Grid points are never evaluated twice: Optuna 5's GridSampler gives trial n the n-th point of a seeded shuffle
(trial numbers are unique across processes), every trial first checks that no finished or earlier-started
trial holds its point, and a process stops as soon as every point is finished, running or queued. Trials of
workers that died (same host: the process is gone; other hosts: the RDB heartbeat; a trial killed before its
worker tagged it holds nothing and is failed after the grace period) are marked FAIL and their points queued
again, so a killed sweep resumes with exactly the missing points.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import torch
from optuna.trial import FrozenTrial, TrialState

from mer.errors import MerError
from mer.sweep.display import Display, trial_line, trial_params
from mer.sweep.objective import DuplicateTrial, TrialObjective, worker_alive
from mer.sweep.spec import SweepConfig
from mer.sweep.storage import fail_stale_trials, heartbeat_settings, mask_url, open_storage

MAX_POINT_FAILURES = 2  # a grid point whose trial failed this often is not queued again
MAX_CONSECUTIVE_FAILURES = 3  # a process gives up after this many failed trials in a row
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


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


def holds(t: FrozenTrial) -> bool:
    """Whether a trial counts for the grid and the budget: finished, queued, or RUNNING under a worker's tag.

    A RUNNING trial without a tag is one whose process stopped between Optuna creating it and the objective starting
    (a kill at that moment); a live process tags its trial within milliseconds, so an untagged trial holds nothing.
    """
    return t.state != TrialState.RUNNING or "worker" in t.user_attrs


def _dead_because(t: FrozenTrial, grace: float) -> str | None:
    tag = t.user_attrs.get("worker")
    if tag:
        return "its worker process died" if worker_alive(tag) is False else None
    started = t.datetime_start
    if started is not None and (datetime.now() - started).total_seconds() > grace:  # Optuna stores local time
        return "its process stopped before the trial started (no worker tag)"
    return None


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker process on this host no longer exists, and the untagged ones
    (see `holds`) older than the grace period (MER_GRACE_S); returns their numbers."""
    dead = []
    grace = heartbeat_settings()[1]
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = _dead_because(t, grace)
        if reason is not None:
            try:
                study._storage.set_trial_user_attr(t._trial_id, "failed_because", reason)
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
        key = _key(trial_params(t))
        if t.state in (*FINISHED, TrialState.RUNNING, TrialState.WAITING) and holds(t):
            held.add(key)
        elif t.state == TrialState.FAIL and "duplicate_of" not in t.user_attrs:
            failed.setdefault(key, []).append(t)
    todo = [p for p in spec.grid() if _key(p) not in held and len(failed.get(_key(p), [])) < MAX_POINT_FAILURES]
    retry = [failed[_key(p)][-1] for p in todo if _key(p) in failed]
    return todo, retry


def queue_retry(study: optuna.Study, failed: FrozenTrial) -> None:
    """Queue a failed grid point again, carrying its grid id so GridSampler books it as that point."""
    system = {"fixed_params": trial_params(failed)}
    for key in ("grid_id", "search_space"):
        if key in failed.system_attrs:
            system[key] = failed.system_attrs[key]
    user = {"retry_of": failed.number}
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, system_attrs=system, user_attrs=user))


class Slots:
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
    slots: Slots | None = None,
    on_trial: Callable[[FrozenTrial], None] | None = None,
) -> int:
    """Run trials until the study's budget is met, the grid is held by someone, or this process's slots run out.

    Returns the number of trials this process evaluated (duplicates skipped are not counted).
    """
    slots = slots or Slots()
    budget = spec.budget()
    ran = 0
    failures_in_row = 0
    while True:
        fail_dead_trials(study)
        fail_stale_trials(study)  # workers on other hosts: RDB heartbeat; their points are queued again
        trials = study.get_trials(deepcopy=False)
        active = sum(t.state in (*FINISHED, TrialState.RUNNING) and holds(t) for t in trials)
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


# ---------------------------------------------------------------- process pool


@dataclass
class Job:
    """Everything a worker process needs (pickled to spawned processes)."""

    spec: SweepConfig
    url: str
    identity: str
    frame: pd.DataFrame
    overrides: list[str]
    threads: int | None = None
    gpus: tuple[str, ...] | None = None  # worker i's CUDA_VISIBLE_DEVICES (runtime.device_placement); None: as is


def _worker_main(job: Job, index: int, counter: Any, log_path: str, gpu: str | None) -> None:
    """Entry point of a `--workers` process: its output goes to a log file, its trials to the shared storage."""
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - kept open for the process's lifetime
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    if gpu is not None:  # before anything initialises CUDA in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        print(f"worker {index}: CUDA_VISIBLE_DEVICES={gpu!r}", flush=True)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        if job.threads:
            torch.set_num_threads(job.threads)
        study = open_study(job.spec, job.url, job.identity, worker=index)
        objective = TrialObjective(
            job.spec, job.frame, job.spec.out_dir, job.overrides, job.spec.pretrained, job.threads, storage=job.url
        )
        ran = work(study, job.spec, objective, Slots(counter=counter),
                   on_trial=lambda t: print(trial_line(t, job.spec.metric), flush=True))  # fmt: skip
        print(f"worker {index} done: {ran} trial(s)", flush=True)
    except MerError as exc:
        print(f"error: {exc}", flush=True)
        sys.exit(2)


def run_workers(job: Job, workers: int, n_trials: int | None, display: Display) -> None:
    """Run `workers` spawned processes on the study (worker i on `job.gpus[i]`), refreshing the display meanwhile.

    Raises MerError naming the first worker that stopped with an error, with the line of its log that says why.
    """
    ctx = mp.get_context("spawn")
    counter = ctx.Value("i", n_trials) if n_trials is not None else None
    logs = job.spec.out_dir / "workers"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for i in range(workers):
        log_path = logs / f"worker{i}.log"
        gpu = job.gpus[i] if job.gpus is not None else None
        p = ctx.Process(target=_worker_main, args=(job, i, counter, str(log_path), gpu))
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
