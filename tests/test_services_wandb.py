"""W&B's own offline files: a LOSO run and a sweep write `wandb/offline-run-*/run-*.wandb`, read back here with
wandb's protobuf records (tests/services.py) to check each run's name, group, job type, config and summary, as
`wandb sync` would upload them.
"""

from __future__ import annotations

import json
import time

import pytest

from mer.evaluation.loso import run_loso
from mer.evaluation.seeds import run_seeds
from mer.sweep import run_sweep, sweep_from_dict
from tests.helpers import TINY, make_prepared, spec_dict, tiny_config, trials, write_prepared_dir
from tests.services import wandb_runs

SUBJECTS = {"casme2/s0": "micro", "samm/s0": "micro"}


def settled_runs(folder, timeout_s: float = 60.0):
    """wandb_runs once every offline file is whole: wandb's service may still be writing the run that finished
    last when `run.finish()` returns (seen with the summary run, read right after), so wait for its exit record."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            runs = wandb_runs(folder)
            if all(r.exit_code is not None for r in runs) or time.monotonic() > deadline:
                return runs
        except ValueError:  # a file without its run record yet
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")


@pytest.mark.slow
def test_loso_writes_one_offline_run_per_fold(tmp_path):
    prepared = write_prepared_dir(tmp_path / "prepared", make_prepared(tmp_path / "prepared", SUBJECTS, per_class=2,
                                                                        size=32))  # fmt: skip
    cfg = tiny_config("name=wb-loso", "data.image_size=32", "face.size=32", "train.threads=1",
                      "train.finetune.epochs=2", "train.finetune.val_subjects=0.0", "train.finetune.unfreeze={0: all}",
                      "svm.C=[1.0]", "logging.wandb=true", "logging.wandb_mode=offline",
                      f"data.prepared={prepared}")  # fmt: skip
    run_loso(cfg, tmp_path / "out", None)
    runs = settled_runs(tmp_path / "out")
    # one run per fold, then the summary run, nothing else
    assert [r.name for r in runs] == [f"wb-loso-{s}" for s in sorted(SUBJECTS)] + ["wb-loso-summary"]
    summary = runs.pop()
    saved = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert (summary.group, summary.job_type, summary.exit_code) == ("wb-loso", "summary", 0)
    assert summary.path.is_relative_to(tmp_path / "out" / "wandb")
    assert summary.summary["svm/composite/uf1"] == pytest.approx(saved["scores"]["svm"]["composite"]["uf1"])
    low, high = saved["intervals"]["svm"]["composite"]["uf1"]
    assert (summary.summary["svm/composite/uf1_low"], summary.summary["svm/composite/uf1_high"]) == (
        pytest.approx(low), pytest.approx(high))  # fmt: skip
    assert summary.summary["svm/samm/uar"] == pytest.approx(saved["scores"]["svm"]["samm"]["uar"])
    assert summary.summary["stamp"] == "none" and summary.summary["leaky"] is False
    assert summary.config["loso/selection.method"] == "fixed" and summary.config["name"] == "wb-loso"
    assert [row["fold/index"] for row in summary.history] == [0, 1]  # one history row per fold: per-fold charts
    for run, subject in zip(runs, sorted(SUBJECTS), strict=True):
        assert run.path.is_relative_to(tmp_path / "out" / "train" / subject / "wandb")  # what docs/sweeps.md syncs
        assert (run.group, run.job_type, run.project, run.exit_code) == ("wb-loso", "fold", "mer", 0)
        assert run.config["train.finetune.lr"] == cfg.train.finetune.lr  # the whole resolved config, flattened
        assert run.config["model.backbone"] == "mobilevit_xxs" and run.config["name"] == "wb-loso"
        assert run.summary["epoch"] == 1 and run.summary["trainer/global_step"] > 0
        losses = [row["train/loss"] for row in run.history if "train/loss" in row]
        assert len(losses) == 2 and run.summary["train/loss"] == losses[-1]  # one value per epoch


@pytest.mark.slow
def test_each_sweep_trial_is_one_offline_run_in_the_study_group(tmp_path):
    import wandb

    data = make_prepared(tmp_path / "prepared", {f"{d}/s{i}": "micro" for d in ("casme2", "samm") for i in range(2)},
                         per_class=2, size=32)  # fmt: skip
    raw = spec_dict(tmp_path / "sw", search={"train.finetune.lr": [0.001, 0.003]},
                    overrides={**TINY, "logging.wandb": True, "logging.wandb_mode": "offline"})  # fmt: skip
    run_sweep(sweep_from_dict(raw), prepared=data, live=False)
    assert wandb.run is None  # finished between and after trials
    values = {t.number: t.value for t in trials(tmp_path / "sw")}
    runs = wandb_runs(tmp_path / "sw")  # one run per trial, none per inner fold
    assert [r.name for r in runs] == ["t-trial0", "t-trial1"]
    assert {r.config["train.finetune.lr"] for r in runs} == {0.001, 0.003}
    for n, run in enumerate(runs):
        assert run.path.is_relative_to(tmp_path / "sw" / "trials" / str(n))
        assert (run.group, run.job_type, run.exit_code) == ("t", "trial", 0)
        assert {k: run.config[k] for k in ("trial", "study", "objective", "leaky", "metric")} == {
            "trial": n, "study": "t", "objective": "inner_loso", "leaky": False, "metric": "uf1"}  # fmt: skip
        assert run.summary["state"] == "COMPLETE" and run.summary["objective"] == pytest.approx(values[n])
        inner = [(row["inner/folds_done"], row["inner/uf1"]) for row in run.history]
        assert [k for k, _ in inner] == [1, 2] and inner[-1][1] == pytest.approx(values[n])  # pooled after each fold


@pytest.mark.slow
def test_seed_study_is_one_group_with_fold_seed_and_summary_runs(tmp_path):
    prepared = write_prepared_dir(tmp_path / "prepared", make_prepared(tmp_path / "prepared", SUBJECTS, per_class=2,
                                                                        size=32))  # fmt: skip
    cfg = tiny_config("name=wb-seeds", "data.image_size=32", "face.size=32", "train.threads=1",
                      "train.finetune.epochs=1", "train.finetune.val_subjects=0.0", "train.finetune.unfreeze={0: all}",
                      "svm.C=[1.0]", "logging.wandb=true", "logging.wandb_mode=offline", "loso.seeds=[0, 1]",
                      f"data.prepared={prepared}")  # fmt: skip
    run_seeds(cfg, tmp_path / "out")
    runs = {r.name: r for r in settled_runs(tmp_path / "out")}
    folds = [f"wb-seeds-seed{k}-{s}" for k in (0, 1) for s in sorted(SUBJECTS)]
    assert sorted(runs) == sorted([*folds, "wb-seeds-seed0-summary", "wb-seeds-seed1-summary", "wb-seeds-summary"])
    assert {r.group for r in runs.values()} == {"wb-seeds"}  # the whole study is one W&B group
    assert {runs[n].job_type for n in folds} == {"fold"}
    assert runs["wb-seeds-seed1-summary"].job_type == "seed" and runs["wb-seeds-summary"].job_type == "summary"
    assert runs["wb-seeds-seed1-casme2/s0"].config["seed"] == 1
    saved = json.loads((tmp_path / "out" / "scores.json").read_text())
    top = runs["wb-seeds-summary"].summary
    assert top["svm/composite/uf1"] == pytest.approx(saved["mean"]["svm"]["composite"]["uf1"])
    assert top["svm/composite/uf1_sd"] == pytest.approx(saved["sd"]["svm"]["composite"]["uf1"])
    assert top["svm/composite/uf1_low"] == pytest.approx(saved["intervals"]["svm"]["composite"]["uf1"][0])
    assert top["n_seeds"] == 2 and top["stamp"] == "none"
    per_seed = [row["seed/svm/composite/uf1"] for row in runs["wb-seeds-summary"].history]
    assert per_seed == [pytest.approx(saved["per_seed"][s]["svm"]["composite"]["uf1"]) for s in ("0", "1")]
    assert runs["wb-seeds-seed1-summary"].summary["svm/composite/uf1"] == pytest.approx(
        saved["per_seed"]["1"]["svm"]["composite"]["uf1"])  # fmt: skip
