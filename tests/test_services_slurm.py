"""The shipped SLURM templates on a real one-node Slurm (tests/services.py starts munged, slurmctld and slurmd):
`sweep_array.sbatch` runs a 2-task grid sweep on the PostgreSQL fixture, then `loso_array.sbatch` runs 3 LOSO
folds from that study's best parameters; the array's report must equal a sequential run's. The commands are
the README's ("On a cluster"), with this machine's resources instead of the templates' GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from mer.cli import app
from mer.config import to_yaml
from mer.sweep import open_storage
from tests.helpers import all_predictions, make_prepared, point, spec_dict, tiny_config, write_prepared_dir, write_spec
from tests.services import announce

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "sweeps" / "slurm"
SUBJECTS = {"casme2/s0": "micro", "casme2/s1": "micro", "samm/s0": "micro"}
LR = [0.001, 0.003]
# What this one-node cluster has instead of the templates' GPU, 8 CPUs and 32 GB (command-line options win over
# the #SBATCH lines).
LOCAL = ("--gres=none", "--cpus-per-task=1", "--mem=500M", "--time=00:15:00")


def test_templates_refuse_to_run_without_mer_storage(tmp_path):
    for name in ("sweep_array.sbatch", "loso_array.sbatch"):
        env = {k: v for k, v in os.environ.items() if k != "MER_STORAGE"}
        proc = subprocess.run(["bash", str(TEMPLATES / name)], cwd=tmp_path, env=env, capture_output=True, text=True,
                              check=False)  # fmt: skip
        assert proc.returncode != 0 and "export MER_STORAGE=postgresql+psycopg2://" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_sweep_then_loso_arrays_on_slurm_match_sequential(slurm_cluster, postgres_url, tmp_path, request):
    prepared = write_prepared_dir(tmp_path / "prepared", make_prepared(tmp_path / "prepared", SUBJECTS, per_class=2,
                                                                        size=32))  # fmt: skip
    spec = write_spec(tmp_path / "sweep.yaml", spec_dict(tmp_path / "sweep", search={"train.finetune.lr": LR}))
    (tmp_path / "logs").mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MER_STORAGE": postgres_url,
           "MER": f"{sys.executable} -m mer.cli", "PRETRAINED": ""}  # fmt: skip
    for name in ("sweep_array.sbatch", "loso_array.sbatch"):  # the controller accepts both as the tests submit them
        slurm_cluster.sbatch(TEMPLATES / name, options=("--test-only", "--array=0-1", *LOCAL), cwd=tmp_path, env=env)
    slurm_cluster.jobs.clear()  # --test-only submits nothing

    created = CliRunner().invoke(app, ["sweep", str(spec), "--storage", postgres_url, "--prepared", str(prepared),
                                       "--n-trials", "0", "--no-live"])  # fmt: skip
    assert created.exit_code == 0 and "--n-trials 0: study created/checked" in created.output, created.output
    start = time.perf_counter()
    job = slurm_cluster.sbatch(TEMPLATES / "sweep_array.sbatch", options=("--array=0-1", *LOCAL), cwd=tmp_path,
                               env={**env, "SWEEP": str(spec), "PREPARED": str(prepared)})  # fmt: skip
    states = slurm_cluster.wait(job, timeout=420)
    sweep_s = time.perf_counter() - start
    logs = {p.name: p.read_text()[-1500:] for p in (tmp_path / "logs").glob("*.out")}
    assert states == {"0": "COMPLETED", "1": "COMPLETED"}, (states, logs, slurm_cluster.log_tail())
    trials = optuna.load_study(study_name="t", storage=open_storage(postgres_url, create=False)).get_trials()
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(point(t) for t in done) == [(("train.finetune.lr", lr),) for lr in LR], logs  # each point once
    assert sorted(logs) == [f"mer-sweep-{job}_0.out", f"mer-sweep-{job}_1.out"]

    config = tmp_path / "tiny.yaml"
    config.write_text(to_yaml(tiny_config("data.image_size=32", "face.size=32", "train.threads=1",
                                          "train.finetune.epochs=1", "train.finetune.val_subjects=0.0",
                                          "train.finetune.unfreeze={0: all}", "svm.C=[1.0]")))  # fmt: skip
    start = time.perf_counter()
    job = slurm_cluster.sbatch(TEMPLATES / "loso_array.sbatch", options=("--array=0-2", *LOCAL), cwd=tmp_path,
                               env={**env, "STUDY": "t", "CONFIG": str(config), "OUT": str(tmp_path / "array"),
                                    "PREPARED": str(prepared)})  # fmt: skip
    states = slurm_cluster.wait(job, timeout=420)
    loso_s = time.perf_counter() - start
    logs = {p.name: p.read_text()[-1500:] for p in (tmp_path / "logs").glob(f"mer-loso-{job}_*.out")}
    assert states == {"0": "COMPLETED", "1": "COMPLETED", "2": "COMPLETED"}, (states, logs)
    assert all("using the study's best parameters: train.finetune.lr=" in text for text in logs.values()), logs
    announce(request.config, f"slurm: sweep_array.sbatch, 2 tasks: {sweep_s:.0f} s; loso_array.sbatch, 3 folds: "
             f"{loso_s:.0f} s (submit to last task done, {slurm_cluster.cpus} CPUs, tasks of 1 CPU)")  # fmt: skip

    sequential = tmp_path / "sequential"  # the same command as each array task, all folds in one process
    done = CliRunner().invoke(app, ["loso", "-c", str(config), "--out", str(sequential), "--prepared", str(prepared),
                                    "--from-study", f"{postgres_url}::t"])  # fmt: skip
    assert done.exit_code == 0, done.output
    array = tmp_path / "array"
    assert (array / "report.md").is_file()  # written by the task that completed the last fold
    pd.testing.assert_frame_equal(all_predictions(array), all_predictions(sequential))
    assert json.loads((array / "scores.json").read_text()) == json.loads((sequential / "scores.json").read_text())
