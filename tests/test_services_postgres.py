"""Sweeps on a real PostgreSQL server (tests/services.py starts one): stale-heartbeat trials failed and run again,
three worker processes with one killed by SIGKILL and the sweep rerun, `mer sweep --best` and `mer loso
--from-study` reading the study back.

The killed worker runs in its own UTS namespace with another host name, as on a second cluster node: only the RDB
heartbeat can tell that it died (same-host workers are checked by process id, see mer.sweep.runner).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from mer.cli import app
from mer.config import as_override, load_config
from mer.sweep import open_storage, run_sweep, sweep_from_dict
from mer.sweep.objective import suggest
from mer.sweep.scheduling import open_study, work
from tests.helpers import (
    GRID,
    MICRO,
    TINY,
    grid_points,
    kill_in_trial,
    make_prepared,
    point,
    spec_dict,
    write_prepared_dir,
    write_spec,
)

ROOT = Path(__file__).resolve().parent.parent
OTHER_HOST = "mer-node-b"


def study_trials(url: str, name: str = "t") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=open_storage(url, create=False)).get_trials()


def complete_by_point(ts: list[optuna.trial.FrozenTrial]) -> dict[tuple, list[int]]:
    done: dict[tuple, list[int]] = {}
    for t in ts:
        if t.state == TrialState.COMPLETE:
            done.setdefault(point(t), []).append(t.number)
    return done


def hold_on_another_host(study: optuna.Study, spec) -> tuple[optuna.Trial, dict]:
    """A RUNNING trial of a worker on another host that beat once and then died (no more heartbeats)."""
    held = study.ask()
    params = suggest(held, spec)
    held.set_user_attr("worker", f"{OTHER_HOST}:4242:1")
    study._storage.record_heartbeat(held._trial_id)
    return held, params


def test_stale_grid_trial_of_another_host_is_failed_and_run_again(postgres_url, tmp_path, monkeypatch):
    monkeypatch.setenv("MER_HEARTBEAT_S", "1")
    monkeypatch.setenv("MER_GRACE_S", "3")
    spec = sweep_from_dict(spec_dict(tmp_path / "sw", search={"train.finetune.lr": [0.001, 0.003]}))
    study = open_study(spec, postgres_url, spec.identity())
    held, params = hold_on_another_host(study, spec)
    calls = []

    def objective(trial):
        calls.append(suggest(trial, spec)["train.finetune.lr"])
        return 0.5

    work(study, spec, objective)  # the free point runs; the held one is still beating (within the grace period)
    assert calls == [x for x in (0.001, 0.003) if x != params["train.finetune.lr"]]
    assert study.get_trials()[held.number].state == TrialState.RUNNING
    time.sleep(3.5)
    work(study, spec, objective)  # nothing else to start: the rerun itself must fail the stale trial and redo it
    assert sorted(calls) == [0.001, 0.003]
    ts = study.get_trials()
    assert ts[held.number].state == TrialState.FAIL and "failed_because" not in ts[held.number].user_attrs
    (retry,) = [t for t in ts if t.user_attrs.get("retry_of") == held.number]
    assert retry.state == TrialState.COMPLETE and retry.params == params
    assert retry.system_attrs["failed_trial"] == held.number  # queued by Optuna's RetryHeartbeatStaleTrialCallback
    assert retry.user_attrs["retry_reason"] == "no heartbeat for 3 s" and "worker" not in retry.user_attrs
    assert all(len(n) == 1 for n in complete_by_point(ts).values()) and len(complete_by_point(ts)) == 2


def test_stale_tpe_trial_is_retried_with_its_parameters(postgres_url, tmp_path, monkeypatch):
    monkeypatch.setenv("MER_HEARTBEAT_S", "1")
    monkeypatch.setenv("MER_GRACE_S", "2")
    raw = spec_dict(tmp_path / "sw", sampler={"type": "tpe", "seed": 0, "n_startup_trials": 5}, n_trials=2,
                    search={"train.finetune.lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True}})  # fmt: skip
    spec = sweep_from_dict(raw)
    study = open_study(spec, postgres_url, spec.identity())
    held, params = hold_on_another_host(study, spec)
    time.sleep(2.5)
    calls = []
    work(study, spec, lambda t: calls.append(suggest(t, spec)["train.finetune.lr"]) or 0.5)
    assert len(calls) == 2 and calls[0] == params["train.finetune.lr"]  # the retry first, then one new trial
    ts = study.get_trials()
    assert ts[held.number].state == TrialState.FAIL
    assert [t.state for t in ts[1:]] == [TrialState.COMPLETE, TrialState.COMPLETE]


def _other_host_prefix() -> list[str]:
    """Run a command under another host name (a UTS namespace), or skip saying why that is impossible here."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) not found: cannot run a worker under another host name")
    probe = subprocess.run(["unshare", "--uts", "sh", "-c", f"hostname {OTHER_HOST} && hostname"],
                           capture_output=True, text=True, check=False)  # fmt: skip
    if probe.stdout.strip() != OTHER_HOST:
        pytest.skip(f"unshare --uts is not permitted here ({probe.stderr.strip()}): no second host name for a worker")
    return ["unshare", "--uts", "sh", "-c", f'hostname {OTHER_HOST} && exec "$@"', "sh"]


def _running_on_other_host(url: str) -> list[int]:
    mine = [t for t in study_trials(url) if t.user_attrs.get("worker", "").startswith(f"{OTHER_HOST}:")]
    return [t.number for t in mine if t.state == TrialState.RUNNING]


@pytest.mark.slow
def test_three_workers_one_killed_then_rerun_and_read_back(postgres_url, tmp_path, monkeypatch):
    """3 `mer sweep` processes on one PostgreSQL study; the one on 'another host' is SIGKILLed mid-trial."""
    other_host = _other_host_prefix()
    monkeypatch.setenv("MER_HEARTBEAT_S", "2")
    monkeypatch.setenv("MER_GRACE_S", "10")
    prepared = write_prepared_dir(tmp_path / "prepared", make_prepared(tmp_path / "prepared", MICRO, per_class=2,
                                                                        size=32))  # fmt: skip
    path = write_spec(tmp_path / "sweep.yaml", spec_dict(tmp_path / "sw"))
    on_prepared = [as_override("data.prepared", prepared)]
    run_sweep(path, on_prepared, storage=postgres_url, n_trials=0, live=False)  # create the study once (docs)
    cmd = [sys.executable, "-m", "mer.cli", "sweep", str(path), "--storage", postgres_url, "--prepared", str(prepared),
           "--no-live"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    logs = [open(tmp_path / f"worker{i}.log", "w") for i in range(3)]  # noqa: SIM115 - closed below
    # worker 0 (the other host) is killed inside a trial (tests.helpers.kill_in_trial) while workers 1 and 2 run
    procs = [subprocess.Popen((other_host if i == 0 else []) + cmd, env=env, stdout=logs[i], stderr=subprocess.STDOUT)
             for i in range(3)]  # fmt: skip
    victim, killed_at = None, 0.0
    try:
        deadline = time.monotonic() + 300
        while victim is None and time.monotonic() < deadline and procs[0].poll() is None:
            time.sleep(0.2)
            victim = kill_in_trial(procs[0], lambda: _running_on_other_host(postgres_url))
        killed_at = time.monotonic()  # its last heartbeat came before the kill
        for p in procs[1:]:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for log in logs:
            log.close()
    tails = "\n".join(f"--- worker{i}\n" + (tmp_path / f"worker{i}.log").read_text()[-1500:] for i in range(3))
    assert victim is not None, tails
    assert procs[0].returncode == -signal.SIGKILL and [p.returncode for p in procs[1:]] == [0, 0], tails
    time.sleep(max(0.0, killed_at + 10.5 - time.monotonic()))  # the rerun comes after the grace period
    summary = run_sweep(path, on_prepared, storage=postgres_url, live=False)

    ts = study_trials(postgres_url)
    done = complete_by_point(ts)
    assert set(done) == grid_points() and all(len(n) == 1 for n in done.values()), done  # each point exactly once
    killed = ts[victim]
    assert killed.state == TrialState.FAIL and "failed_because" not in killed.user_attrs  # not seen as a local pid
    (queued,) = [t for t in ts if t.system_attrs.get("failed_trial") == victim]  # RetryHeartbeatStaleTrialCallback
    assert queued.user_attrs["retry_reason"] == "no heartbeat for 10 s" and point(queued) == point(killed)
    # A worker that reads the study between Optuna failing the trial and queueing its copy queues the point too
    # (scheduling.grid_todo); one of the copies runs and the other is skipped as a duplicate, never trained twice.
    copies = [t for t in ts if t.user_attrs.get("retry_of") == victim]
    assert [t.state for t in copies].count(TrialState.COMPLETE) == 1 and all(point(t) == point(killed) for t in copies)
    assert all(t.state == TrialState.COMPLETE or "duplicate_of" in t.user_attrs for t in copies)
    assert all(t.state != TrialState.FAIL or t.number == victim or "duplicate_of" in t.user_attrs for t in ts)
    assert summary.n_complete == len(GRID["train.finetune.lr"]) * len(GRID["train.finetune.l2"])

    best = CliRunner().invoke(app, ["sweep", str(path), "--storage", postgres_url, "--best"])
    assert best.exit_code == 0, best.output
    assert best.output.splitlines()[0] == summary.override_line()
    assert f"# trial {summary.best_number}: pooled uf1 {summary.best_value:.4f}" in best.output
    overrides = [f"{k}={v}" for k, v in TINY.items()]
    loso = CliRunner().invoke(app, ["loso", "--prepared", str(prepared), "--out", str(tmp_path / "loso"),
                                    "--fold-index", "0", "--from-study", f"{postgres_url}::t", *overrides])  # fmt: skip
    assert loso.exit_code == 0, loso.output
    assert f"using the study's best parameters: {summary.override_line()}" in loso.output
    cfg = load_config(tmp_path / "loso" / "config.yaml")
    assert cfg.train.finetune.lr == summary.best_params["train.finetune.lr"]
    assert cfg.train.finetune.l2 == summary.best_params["train.finetune.l2"]
    assert (tmp_path / "loso" / "folds" / "casme2" / "s0" / "metrics.json").is_file()
