"""Sweeps: grid/TPE studies on synthetic prepared data with tiny trials (1 epoch, 32² crops, k=2 inner folds).

Covers: exact grid coverage, resume after a stop and after a kill, two worker processes on one journal file,
TPE reproducibility, pruning, the no-leakage rule, the leaky flag, bad input as one-line errors, the CLI.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState
from typer.testing import CliRunner

import mer.sweep.objective as objective_module
from mer.config import as_override, load_config
from mer.data.manifest import save_manifest
from mer.errors import MerError
from mer.models.backbones import read_checkpoint
from mer.sweep import (
    apply_flags,
    best_overrides,
    load_sweep,
    open_storage,
    run_sweep,
    show_best,
    sweep_from_dict,
)
from mer.sweep.objective import find_duplicate, suggest, worker_tag
from mer.sweep.scheduling import Slots, fail_dead_trials, open_study, work
from tests.helpers import (
    BASE,
    MICRO,
    TINY,
    complete,
    grid_points,
    kill_in_trial,
    make_prepared,
    point,
    spec_dict,
    trials,
    write_spec,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> pd.DataFrame:
    """Six micro subjects over two datasets, 2 samples per class each, 32² crops."""
    return make_prepared(tmp_path_factory.mktemp("prepared"), MICRO, per_class=2, size=32)


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory, data):
    """A finished 4-point grid study (shared by the tests that only read it)."""
    out = tmp_path_factory.mktemp("grid")
    path = write_spec(out / "sweep.yaml", spec_dict(out / "sweep"))
    summary = run_sweep(path, prepared=data, live=False)
    return path, out / "sweep", summary


# ---------------------------------------------------------------- grid coverage and resuming


def test_grid_of_four_points_completes_exactly_four_trials(grid_run, data, capsys):
    path, out, summary = grid_run
    ts = trials(out)
    assert len(ts) == 4 and all(t.state == TrialState.COMPLETE for t in ts)
    assert {point(t) for t in ts} == grid_points()
    assert summary.n_complete == 4 and summary.best_number is not None
    best = max(ts, key=lambda t: t.value)
    assert summary.best_value == best.value
    for t in ts:  # every trial wrote its files; the objective is the pooled metric of its predictions
        folder = out / "trials" / str(t.number)
        record = json.loads((folder / "trial.json").read_text())
        assert record["state"] == "COMPLETE" and record["value"] == pytest.approx(t.value)
        preds = pd.read_csv(folder / "predictions.csv")
        assert len(preds) == len(data) and set(preds["fold"]) == {"inner0", "inner1"}
        assert (folder / "config.yaml").is_file()
    # running again adds nothing: the grid is complete
    again = run_sweep(path, prepared=data, live=False)
    assert len(trials(out)) == 4 and again.best_number == summary.best_number
    # the best parameters come back as overrides that load into a config
    overrides = best_overrides(f"sqlite:///{out / 'study.db'}::t")  # ending with the study they came from
    assert overrides == [
        *(f"{k}={v}" for k, v in sorted(best.params.items())),
        f"selected_by=sqlite:///{out}/study.db::t",
    ]
    cfg = load_config("default", overrides)
    assert cfg.train.finetune.lr == best.params["train.finetune.lr"]
    assert best_overrides(str(path)) == overrides  # a sweep file names its own storage and study


def test_stopped_grid_resumes_with_the_missing_points(tmp_path, data):
    raw = spec_dict(tmp_path / "sw")
    first = run_sweep(sweep_from_dict(raw), prepared=data, n_trials=2, live=False)
    assert first.n_complete == 2
    before = {t.number: (point(t), t.value) for t in trials(tmp_path / "sw")}
    run_sweep(sweep_from_dict(raw), prepared=data, live=False)
    ts = trials(tmp_path / "sw")
    assert len(ts) == 4 and len(complete(ts)) == 4
    assert {point(t) for t in ts} == grid_points()  # each point exactly once
    for t in ts:  # the first two were not re-run
        if t.number in before:
            assert (point(t), t.value) == before[t.number]


@pytest.mark.slow
def test_killed_grid_resumes_without_repeating(tmp_path, data):
    raw = spec_dict(tmp_path / "sw", overrides={**TINY, "train.finetune.epochs": 2})
    path = write_spec(tmp_path / "spec.yaml", raw)
    data.to_pickle(tmp_path / "data.pkl")
    script = (
        "import pandas as pd\n"
        "from mer.sweep import run_sweep\n"
        f"run_sweep({str(path)!r}, prepared=pd.read_pickle({str(tmp_path / 'data.pkl')!r}), live=False)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = open(tmp_path / "sweep.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=log, stderr=subprocess.STDOUT)
    victim = None

    def running() -> list[int]:
        return [t.number for t in trials(tmp_path / "sw") if t.state == TrialState.RUNNING and "worker" in t.user_attrs]

    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if not (tmp_path / "sw" / "study.db").is_file():
                continue
            try:
                ts = trials(tmp_path / "sw")
            except Exception:  # noqa: BLE001 - the study is being created
                continue
            if not complete(ts):
                continue
            victim = kill_in_trial(proc, running)
            if victim is not None:
                break
    finally:
        proc.kill()
        proc.wait()
        log.close()
    assert victim is not None, (tmp_path / "sweep.log").read_text()[-2000:]
    done_before = {t.number: (point(t), t.value) for t in complete(trials(tmp_path / "sw"))}
    run_sweep(sweep_from_dict(raw), prepared=data, live=False)
    ts = trials(tmp_path / "sw")
    killed = next(t for t in ts if t.number == victim)
    assert killed.state == TrialState.FAIL and killed.user_attrs["failed_because"] == "its worker process died"
    finished = complete(ts)
    assert len(finished) == 4 and {point(t) for t in finished} == grid_points()
    for t in finished:
        if t.number in done_before:
            assert (point(t), t.value) == done_before[t.number]
    redone = [t for t in finished if point(t) == point(killed)]
    assert len(redone) == 1 and redone[0].number > victim


@pytest.mark.slow
def test_two_workers_share_a_journal_file_without_duplicates(tmp_path, data):
    spec = sweep_from_dict(spec_dict(tmp_path / "sw"))
    summary = run_sweep(spec, prepared=data, workers=2, live=False, devices=["cpu"])
    journal = tmp_path / "sw" / "study.journal"
    assert journal.is_file() and not (tmp_path / "sw" / "study.db").exists()  # workers > 1 → journal file
    ts = trials(tmp_path / "sw", url=f"journal:{journal}")
    evaluated = [t for t in ts if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(evaluated) == 4 and {point(t) for t in evaluated} == grid_points()
    assert all(t.state != TrialState.FAIL or "duplicate_of" in t.user_attrs for t in ts)
    assert summary.n_complete == 4
    assert {p.name for p in (tmp_path / "sw" / "workers").iterdir()} == {"worker0.log", "worker1.log"}
    for i in range(2):  # --devices cpu: each worker hid the GPUs before doing anything
        log = (tmp_path / "sw" / "workers" / f"worker{i}.log").read_text()
        assert log.splitlines()[0] == f"worker {i}: CUDA_VISIBLE_DEVICES=''"


def test_sweep_workers_on_a_gpu_this_process_cannot_see_stop_before_the_study(tmp_path, data, monkeypatch):
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    spec = sweep_from_dict(spec_dict(tmp_path / "sw"))
    with pytest.raises(MerError, match="sees 0 GPU"):
        run_sweep(spec, prepared=data, workers=2, live=False, devices=["1"])
    assert not (tmp_path / "sw").exists()


def cheap_study(tmp_path: Path, lrs: list[float]):
    """A grid study over train.finetune.lr only, for scheduling tests whose objective needs no training."""
    spec = sweep_from_dict(spec_dict(tmp_path / "sw", search={"train.finetune.lr": lrs}))
    return spec, open_study(spec, f"sqlite:///{tmp_path / 'cheap.db'}", spec.identity())


def test_a_failed_grid_point_is_queued_again_then_given_up(tmp_path):
    spec, study = cheap_study(tmp_path, [0.001, 0.003, 0.01])
    calls = []

    def objective(trial):
        lr = suggest(trial, spec)["train.finetune.lr"]
        calls.append(lr)
        if lr == 0.001 or (lr == 0.003 and calls.count(0.003) == 1):
            raise RuntimeError("boom")  # 0.001 always fails, 0.003 fails once
        return lr

    work(study, spec, objective)
    ts = study.get_trials()
    assert sorted(calls) == [0.001, 0.001, 0.003, 0.003, 0.01]  # each failure retried once, no point run after success
    done = {t.params["train.finetune.lr"] for t in ts if t.state == TrialState.COMPLETE}
    assert done == {0.003, 0.01}
    retries = [t for t in ts if "retry_of" in t.user_attrs]
    assert len(retries) == 2 and all(t.system_attrs.get("grid_id") is not None for t in retries)


def test_a_point_running_elsewhere_is_not_started_again(tmp_path):
    spec, study = cheap_study(tmp_path, [0.001, 0.003])
    held = study.ask()  # another live worker holds grid point 0 (this very process, so it is alive)
    held.set_user_attr("worker", worker_tag())
    held_lr = suggest(held, spec)["train.finetune.lr"]
    calls = []
    work(study, spec, lambda t: calls.append(suggest(t, spec)["train.finetune.lr"]) or 0.5)
    assert calls == [x for x in (0.001, 0.003) if x != held_lr]  # only the free point ran, then the worker stopped
    # a trial that lands on a held point (a race between processes) is recognised as a duplicate
    study.enqueue_trial({"train.finetune.lr": held_lr})
    late = study.ask()
    assert find_duplicate(study, late, suggest(late, spec)) == held.number
    # the holder died: its trial is failed and its point queued again on the next run
    held.set_user_attr("worker", "elsewhere:1:1")
    assert fail_dead_trials(study) == []  # another host: left to the storage heartbeat
    held.set_user_attr("worker", f"{socket.gethostname()}:{2**22 + 12345}:")
    assert fail_dead_trials(study) == [held.number]


@pytest.mark.parametrize("stage", ["created", "sampled"])
def test_a_trial_whose_process_died_before_it_started_holds_no_point(tmp_path, monkeypatch, stage):
    """A process killed between Optuna creating its trial and the trial starting leaves a RUNNING trial with no
    worker tag (seen in the nested kill-and-rerun test): the rerun must still run the missing point, and the orphan
    is failed once it is older than the grace period."""
    monkeypatch.setenv("MER_HEARTBEAT_S", "1")
    monkeypatch.setenv("MER_GRACE_S", "2")
    spec, study = cheap_study(tmp_path, [0.001, 0.003])
    calls = []

    def objective(trial):
        calls.append(suggest(trial, spec)["train.finetune.lr"])
        return 0.5

    work(study, spec, objective, slots=Slots(1))
    if stage == "created":  # killed inside study.ask(), before the sampler saw the trial
        study._storage.create_new_trial(study._study_id)
    else:  # killed after ask() returned, before the objective tagged the trial
        study.ask()
    work(study, spec, objective)
    assert sorted(calls) == [0.001, 0.003]  # the old code counted the orphan against the grid and stopped
    ts = study.get_trials()
    assert sorted(t.params["train.finetune.lr"] for t in ts if t.state == TrialState.COMPLETE) == [0.001, 0.003]
    (orphan,) = [t for t in ts if t.state == TrialState.RUNNING]
    assert fail_dead_trials(study) == []  # young: it may be a live process about to tag it
    time.sleep(2.2)
    assert fail_dead_trials(study) == [orphan.number]
    assert study.get_trials()[orphan.number].user_attrs["failed_because"].startswith("its process stopped")


# ---------------------------------------------------------------- samplers, pruning


def test_tpe_with_a_fixed_seed_is_reproducible(tmp_path, data):
    search = {"train.finetune.lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True}, "train.finetune.batch_size": [8, 16]}
    sequences = []
    for run in ("a", "b"):
        raw = spec_dict(tmp_path / run, sampler={"type": "tpe", "seed": 3, "n_startup_trials": 1}, n_trials=2,
                        search=search)  # fmt: skip
        run_sweep(sweep_from_dict(raw), prepared=data, live=False)
        ts = trials(tmp_path / run)
        assert len(complete(ts)) == 2
        sequences.append([(t.params, t.value) for t in ts])
    assert sequences[0] == sequences[1]  # trial 1 comes from TPE's model of trial 0: same values, same suggestion
    assert sequences[0][0][0] != sequences[0][1][0]


def test_pruned_trial_is_recorded_as_pruned(tmp_path, data):
    raw = spec_dict(tmp_path / "sw", search={"train.finetune.lr": [0.001]},
                    pruner={"type": "threshold", "lower": 1.5, "n_warmup_steps": 0})  # fmt: skip
    summary = run_sweep(sweep_from_dict(raw), prepared=data, live=False)
    (t,) = trials(tmp_path / "sw")
    assert t.state == TrialState.PRUNED and list(t.intermediate_values) == [0]
    assert summary.n_pruned == 1 and summary.best_number is None
    folder = tmp_path / "sw" / "trials" / "0"
    assert (folder / "folds" / "inner0" / "predictions.csv").is_file()
    assert not (folder / "folds" / "inner1").exists()  # stopped after the first inner fold
    assert json.loads((folder / "trial.json").read_text())["state"] == "PRUNED"


def test_lightning_pruning_callback_works_with_our_trainer(tmp_path):
    """optuna_integration's PyTorchLightningPruningCallback (lightning.pytorch 2.x) stops train_stage mid-fit."""
    from optuna_integration import PyTorchLightningPruningCallback

    from mer.train import train_stage

    df = make_prepared(tmp_path, {f"casme2/s{i}": "micro" for i in range(5)}, per_class=2, size=32)
    cfg = load_config(BASE, [f"{k}={v}" for k, v in TINY.items() if k != "train.finetune.val_subjects"]
                      + ["train.finetune.val_subjects=0.4", "train.finetune.epochs=3"])  # fmt: skip
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.5))
    trial = study.ask()
    callback = PyTorchLightningPruningCallback(trial, monitor="val/uf1")
    with pytest.raises(optuna.TrialPruned):
        train_stage(cfg, df, "finetune", tmp_path / "run", held_out=("casme2/s0",), callbacks=[callback],
                    enable_progress=False)  # fmt: skip
    assert list(trial.storage.get_trial(trial._trial_id).intermediate_values) == [0]


@pytest.mark.slow
def test_pretrain_stage_pretrains_per_trial_then_scores_inner_folds(tmp_path):
    subjects = {**{f"ckplus/S{i}": "macro" for i in range(4)}, **{f"casme2/s{i}": "micro" for i in range(4)}}
    df = make_prepared(tmp_path / "prep", subjects, per_class=2, size=32)
    overrides = {**TINY, "train.pretrain.epochs": 1, "train.pretrain.batch_size": 16}
    raw = spec_dict(tmp_path / "sw", stage="pretrain", overrides=overrides, search={"train.pretrain.lr": [0.01]})
    summary = run_sweep(sweep_from_dict(raw), prepared=df, live=False)
    assert summary.n_complete == 1
    folder = tmp_path / "sw" / "trials" / "0"
    chose = read_checkpoint(folder / "pretrained.pt")[1]["selection"]  # the study chose its hyper-parameters
    assert chose["method"] == "from-study" and (chose["study"], chose["trial"]) == ("t", 0)
    assert chose["inner_subjects"] == [f"casme2/s{i}" for i in range(4)]
    assert chose["params"] == {"train.pretrain.lr": 0.01}
    preds = pd.read_csv(folder / "predictions.csv")
    assert set(preds["subject"]) == {f"casme2/s{i}" for i in range(4)}  # scored on micro subjects only
    with pytest.raises(MerError) as exc:
        run_sweep(apply_flags(sweep_from_dict(raw), pretrained=tmp_path / "x.pt"), prepared=df)
    assert "drop --pretrained" in one_line(exc)


# ---------------------------------------------------------------- leakage


def test_trials_never_touch_subjects_outside_the_training_set(tmp_path, data, monkeypatch):
    holdout = ["casme2/s0", "samm/s2"]
    training = set(MICRO) - set(holdout)
    calls = []
    real = objective_module.run_fold

    def spy(cfg, prepared, fold, out, pretrained, **kw):
        calls.append((set(prepared["subject"]), fold.held_out))
        return real(cfg, prepared, fold, out, pretrained, **kw)

    monkeypatch.setattr(objective_module, "run_fold", spy)
    raw = spec_dict(tmp_path / "sw", search={"train.finetune.lr": [0.001]})
    run_sweep(apply_flags(sweep_from_dict(raw), holdout=holdout), prepared=data, live=False)
    assert len(calls) == 2
    for subjects, held in calls:
        assert subjects == training  # the data handed to training never contains the holdout
        assert set(held) <= training
    assert set().union(*(set(h) for _, h in calls)) == training  # every training subject scored once
    preds = pd.read_csv(tmp_path / "sw" / "trials" / "0" / "predictions.csv")
    assert set(preds["subject"]) == training
    for fold in ("inner0", "inner1"):
        fold_preds = pd.read_csv(tmp_path / "sw" / "trials" / "0" / "folds" / fold / "predictions.csv")
        assert not set(fold_preds["subject"]) & set(holdout)


def test_leaky_objective_is_flagged_everywhere(tmp_path, data, capsys):
    raw = spec_dict(tmp_path / "sw", objective="leaky_loso", search={"train.finetune.lr": [0.001]},
                    overrides={**TINY, "loso.group_size": 3})  # fmt: skip
    summary = run_sweep(sweep_from_dict(raw), prepared=data, live=False)
    printed = capsys.readouterr().out
    assert summary.leaky and "LEAKY" in printed
    (t,) = trials(tmp_path / "sw")
    assert optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 'sw' / 'study.db'}").user_attrs["leaky"]
    record = json.loads((tmp_path / "sw" / "trials" / "0" / "trial.json").read_text())
    assert record["leaky"] is True and [f["name"] for f in record["folds"]] == ["group00", "group01"]
    best_overrides(f"sqlite:///{tmp_path / 'sw' / 'study.db'}::t")
    assert "LEAKY" in capsys.readouterr().err
    show_best(sweep_from_dict(raw))
    assert "LEAKY" in capsys.readouterr().out


# ---------------------------------------------------------------- bad input: one clear line each


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"search": {"train.finetune.lrr": [0.1]}}, "unknown config key 'train.finetune.lrr'"),
        ({"search": {"train.finetune.lr": []}}, "no values (empty grid)"),
        ({"search": {}}, "'search' is empty"),
        ({"search": {"train.finetune.batch_size": [0.5]}}, "train.finetune.batch_size"),
        ({"search": {"train.finetune.lr": {"low": 0.1, "high": 1.0}}}, "needs explicit values"),
        ({"search": {"train.pretrain.lr": [0.1]}}, "no effect with 'stage: finetune'"),
        ({"metric": "f1"}, "metric: 'f1' is not allowed"),
        ({"samplr": "grid"}, "unknown field(s) ['samplr']"),
        ({"inner_folds": 1}, "inner_folds: 1 is not allowed; must be an integer >= 2"),
    ],
)
def test_bad_sweep_files_are_one_line_errors(tmp_path, data, changes, expected):
    raw = spec_dict(tmp_path / "sw", **changes)
    with pytest.raises(MerError) as exc:
        run_sweep(sweep_from_dict(raw, source="bad.yaml"), prepared=data, live=False)
    assert expected in one_line(exc)


def test_unreachable_storage_is_one_line(tmp_path, data):
    url = "postgresql+psycopg2://127.0.0.1:1/x"
    with pytest.raises(MerError) as exc:
        run_sweep(sweep_from_dict(spec_dict(tmp_path / "sw")), prepared=data, storage=url)
    text = one_line(exc)
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        assert "the database driver 'psycopg2' is not installed; pip install mer-lightning[postgres]" in text
    else:
        assert text.startswith(f"cannot open storage {url}")
    with pytest.raises(MerError) as exc:
        open_storage("not a url")
    assert "not understood" in one_line(exc)
    with pytest.raises(MerError) as exc:
        best_overrides(f"sqlite:///{tmp_path / 'none.db'}::t")
    assert "no SQLite storage" in one_line(exc)


def test_more_bad_input(tmp_path, data):
    with pytest.raises(MerError) as exc:
        run_sweep(apply_flags(sweep_from_dict(spec_dict(tmp_path / "sw")), holdout=["casme2/nobody"]), prepared=data)
    assert "casme2/nobody" in one_line(exc)
    with pytest.raises(MerError) as exc:
        run_sweep(sweep_from_dict(spec_dict(tmp_path / "sw", inner_folds=7)), prepared=data)
    assert "inner_folds=7" in one_line(exc)
    with pytest.raises(MerError) as exc:
        load_sweep(tmp_path / "missing.yaml")
    assert "sweep file not found" in one_line(exc)


def test_resuming_with_another_search_space_is_refused(grid_run, data):
    path, out, _ = grid_run
    raw = yaml.safe_load(path.read_text())
    raw["search"] = {"train.finetune.lr": [0.001, 0.003, 0.01]}
    with pytest.raises(MerError) as exc:
        run_sweep(sweep_from_dict(raw), prepared=data, live=False)
    assert "was made with other settings (search differ)" in one_line(exc)


def test_resuming_on_crops_prepared_with_other_settings_is_refused(grid_run, data, tmp_path):
    """The same samples, ids and labels, but crops from another pipeline setting (say eye mask off): other data."""
    import shutil

    path, _, _ = grid_run
    other = data.copy()
    crops = []
    for crop in data["crop"]:  # as `mer prepare` lays crops out: <cache>/<cfg_hash>/<ab>/<content>.png
        name = Path(crop).name
        target = tmp_path / "crops" / "eyemaskoff00" / name[:2] / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(crop, target)
        crops.append(str(target))
    other["crop"] = crops
    with pytest.raises(MerError) as exc:
        run_sweep(path, prepared=other, live=False)
    assert "was made with other settings (data differ)" in one_line(exc)


def test_data_fingerprint_follows_the_crop_pipeline_not_the_folder():
    from mer.sweep.spec import data_fingerprint

    rows = pd.DataFrame({"sample_id": ["a", "b"], "subject": ["s1", "s2"], "label": ["negative", "positive"]})

    def fingerprint(root: str, cfg_hash: str) -> str:
        crops = [f"{root}/crops/{cfg_hash}/{h[:2]}/{h}.png" for h in ("aa11", "bb22")]
        return data_fingerprint(rows.assign(crop=crops))

    assert fingerprint("/one/prepared", "maskon") == fingerprint("/two/moved", "maskon")  # moving the folder
    assert fingerprint("/one/prepared", "maskon") != fingerprint("/one/prepared", "maskoff")  # other settings
    motion = rows.assign(crop="", motion=["/p/crops/h/motion/aa/k1.npy", "/p/crops/h/motion/bb/k2.npy"])
    assert data_fingerprint(motion) != data_fingerprint(motion.assign(motion=["/p/crops/h/motion/aa/k3.npy"] * 2))


# ---------------------------------------------------------------- CLI


def test_cli_best_prints_an_override_line(grid_run):
    from mer.cli import app

    path, out, summary = grid_run
    result = CliRunner().invoke(app, ["sweep", str(path), "--best"])
    assert result.exit_code == 0, result.output
    first, second = result.output.strip().splitlines()[:2]
    assert first == summary.override_line() and first.startswith("train.finetune.l2=")
    assert f"trial {summary.best_number}" in second and f"{summary.best_value:.4f}" in second


def test_cli_runs_a_sweep_from_a_prepared_folder(tmp_path):
    from mer.cli import app

    prepared = tmp_path / "prepared"
    df = make_prepared(prepared, {f"casme2/s{i}": "micro" for i in range(4)}, per_class=2, size=32)
    df["crop"] = [str(Path(c).relative_to(prepared)) for c in df["crop"]]
    save_manifest(df, prepared / "prepared.csv")
    path = write_spec(tmp_path / "s.yaml", spec_dict(tmp_path / "sw", search={"train.finetune.lr": [0.001]}))
    args = ["sweep", str(path), "--prepared", str(prepared), "--no-live", "-c", "default", "-c", "ablation/no_transfer",
            "-c", "tiny"]  # fmt: skip
    result = CliRunner().invoke(app, [*args, "train.finetune.l2=0.001"])
    assert result.exit_code == 0, result.output
    assert "1 complete" in result.output and "override: train.finetune.lr=0.001" in result.output
    cfg = load_config(tmp_path / "sw" / "trials" / "0" / "config.yaml")
    assert cfg.train.finetune.l2 == 0.001 and cfg.train.finetune.lr == 0.001  # command line and trial parameter
    assert cfg.loso.transfer is False  # the stacked --config replaced the file's base


def test_cli_bad_sweep_is_one_line_exit_2(tmp_path):
    path = write_spec(tmp_path / "bad.yaml", spec_dict(tmp_path / "sw", search={"train.finetune.nope": [1]}))
    proc = subprocess.run([sys.executable, "-m", "mer.cli", "sweep", str(path)], capture_output=True, text=True,
                          cwd=ROOT)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert "train.finetune.nope" in proc.stderr and "Traceback" not in proc.stderr


def test_shipped_sweep_files_are_valid():
    from mer.sweep import check_space

    sizes = {}
    for name in ("paper_grid", "tpe", "demo_grid"):
        spec = load_sweep(ROOT / "sweeps" / f"{name}.yaml")
        check_space(spec)
        sizes[name] = spec.budget()
    assert sizes == {"paper_grid": 36, "tpe": 40, "demo_grid": 4}


def test_the_prepared_folder_is_one_config_setting(tmp_path):
    spec = sweep_from_dict({**spec_dict(tmp_path / "sw"), "prepared": "from/file"})
    assert load_config(spec.base, spec.base_overrides()).data.prepared == "from/file"
    flag = [as_override("data.prepared", "2024-01-01")]  # --prepared comes last and wins; a date stays a name
    assert load_config(spec.base, spec.base_overrides(["data.prepared=other", *flag])).data.prepared == "2024-01-01"
    assert spec.identity(flag) == spec.identity()  # where the table is read from is not what the study is


def _open_after(url: str, barrier, results) -> None:
    barrier.wait()
    try:
        open_storage(url)
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported back to the test
        results.put(str(exc))


def test_processes_opening_one_new_sqlite_study_at_once_all_succeed(tmp_path):
    """A sweep and a reader (or array tasks) creating one new SQLite file together must not collide on Optuna's
    schema ('UNIQUE constraint failed: alembic_version' / 'table ... already exists')."""
    ctx = multiprocessing.get_context("fork")
    for rep in range(3):
        url, barrier, results = f"sqlite:///{tmp_path / f'race{rep}.db'}", ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_open_after, args=(url, barrier, results)) for _ in range(6)]
        for p in procs:
            p.start()
        outcome = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join()
        assert outcome == ["ok"] * 6, outcome


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"inner_folds": "x"}, "bad.yaml: inner_folds: Value 'x' of type 'str' could not be converted to Integer"),
        ({"pruner": {"typo": 1}}, "bad.yaml: unknown field(s) ['pruner.typo']; allowed: epochs, interval_steps"),
        ({"n_trials": 0}, "bad.yaml: n_trials: 0 is not allowed; must be an integer >= 1"),
        ({"classifier": "knn"}, "bad.yaml: classifier: 'knn' is not allowed; choose one of: svm, softmax"),
        ({"pruner": "fancy"}, "bad.yaml: pruner.type: 'fancy' is not allowed; choose one of: none, median"),
        ({"sampler": {"type": "grid", "sed": 1}}, "bad.yaml: unknown sampler field(s) ['sed']"),
        ({"source": "x.yaml"}, "bad.yaml: unknown field(s) ['source']"),
    ],
)
def test_sweep_fields_go_through_the_schema_and_the_table(tmp_path, changes, expected):
    with pytest.raises(MerError) as exc:
        sweep_from_dict(spec_dict(tmp_path / "sw", **changes), source="bad.yaml")
    assert one_line(exc).startswith(expected)


def test_sweep_short_forms_and_override_mappings_become_override_lines(tmp_path):
    overrides = {"train.finetune.unfreeze": {0: "head"}, "data.prepared": "a b"}
    raw = spec_dict(tmp_path / "sw", exclude_subjects="casme2/sub01, samm/006", pruner="median", overrides=overrides)
    spec = sweep_from_dict(raw)
    assert spec.exclude_subjects == ["casme2/sub01", "samm/006"] and spec.pruner.type == "median"
    assert spec.overrides == ["train.finetune.unfreeze={0: head}", "data.prepared=a b"]
    assert (spec.sampler, spec.seed, spec.inner_folds) == ("grid", 0, 2)
