"""Honest model selection: nested LOSO in one command, and LEAKY stamps computed from subject sets.

A study whose inner folds covered a subject that a `--from-study` LOSO run then tests stamps the report LEAKY; the
same study with that subject excluded does not; `mer loso --nested` is stamped nested, and spies on the training
and SVM calls show that no test-subject sample reaches any inner trial, SVM fit or checkpoint choice of its fold.
A nested run killed with SIGKILL and rerun gives the uninterrupted run's predictions; inner studies on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

import mer.evaluation.loso as loso_module
from mer.config import as_override, load_config
from mer.errors import MerError
from mer.evaluation.loso import run_loso
from mer.evaluation.runs import load_run
from mer.evaluation.selection import leaky_reasons
from mer.sweep import load_sweep, open_storage, run_sweep, sweep_from_dict
from mer.sweep.nested import chosen_trial, run_nested_loso
from mer.sweep.objective import suggest
from mer.sweep.scheduling import open_study
from mer.sweep.storage import best_selection, mask_url
from tests.helpers import BASE, TINY, all_predictions, make_prepared, spec_dict, write_prepared_dir, write_spec

ROOT = Path(__file__).resolve().parent.parent
SUBJECTS = {f"{d}/s{i}": "micro" for d in ("casme2", "samm") for i in range(2)}
GROUPS = {"group00": {"casme2/s0", "casme2/s1"}, "group01": {"samm/s0", "samm/s1"}}
LR = {"train.finetune.lr": [0.001, 0.003]}


@pytest.fixture(scope="module")
def prepared_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("prepared")
    return write_prepared_dir(root, make_prepared(root, SUBJECTS, per_class=3, size=32))


def loso_cfg(prepared_dir: Path, *extra: str):
    """The LOSO config the sweeps' trials start from (tests.helpers BASE + TINY), then `extra`."""
    tiny = [as_override(k, v) for k, v in TINY.items()]
    return load_config(BASE, [*tiny, as_override("data.prepared", prepared_dir), *extra])


# ---------------------------------------------------------------- stamps


def test_leaky_reasons_compare_subject_sets() -> None:
    tested = {"casme2/s0": {"casme2/s0"}}
    study = {
        "method": "from-study",
        "study": "t",
        "objective": "inner_loso",
        "inner_subjects": ["casme2/s0", "samm/s0"],
    }
    assert "casme2/s0" in leaky_reasons(study, tested)[0]
    assert leaky_reasons({**study, "inner_subjects": ["samm/s0"]}, tested) == []
    assert "leaky_loso" in leaky_reasons({**study, "objective": "leaky_loso", "inner_subjects": []}, tested)[0]
    assert leaky_reasons({**study, "inner_subjects": None}, tested)  # unknown subjects: not presumed clean
    assert leaky_reasons({"method": "fixed"}, tested) == []
    nested = {
        "method": "nested",
        "folds": {"casme2/s0": {"test_subjects": ["casme2/s0"], "inner_subjects": ["samm/s0"]}},
    }
    assert leaky_reasons(nested, tested) == []
    assert leaky_reasons(nested, tested, {"casme2/s0": {"inner_subjects": ["casme2/s0"]}})  # the study's own record


@pytest.mark.slow
@pytest.mark.parametrize("excluded", [False, True], ids=["inner-folds-cover-test-subject", "test-subject-excluded"])
def test_from_study_is_leaky_exactly_when_a_test_subject_chose_parameters(prepared_dir, tmp_path, excluded):
    raw = spec_dict(tmp_path / "sw", search={"train.finetune.lr": [0.001]},
                    exclude_subjects=["casme2/s0"] if excluded else [])  # fmt: skip
    run_sweep(sweep_from_dict(raw), [as_override("data.prepared", prepared_dir)], live=False)
    overrides, record = best_selection(f"sqlite:///{tmp_path / 'sw' / 'study.db'}::t")
    assert record["method"] == "from-study" and record["objective"] == "inner_loso"
    assert ("casme2/s0" in record["inner_subjects"]) is not excluded  # read from the study's own records
    out = tmp_path / "loso"
    run_loso(loso_cfg(prepared_dir, "loso.folds=[casme2/s0]", *overrides), out, None, selection=record)
    assert json.loads((out / "loso.json").read_text())["selection"]["method"] == "from-study"
    md = (out / "report.md").read_text()
    scores = json.loads((out / "scores.json").read_text())
    if excluded:
        assert "LEAKY" not in md and scores["leaky"] is False
    else:
        assert "[LEAKY]" in md.splitlines()[0] and "casme2/s0" in md and scores["leaky"] is True
        assert '<div class="banner leaky">' in (out / "report.html").read_text()


# ---------------------------------------------------------------- nested


class Spy:
    """Records the subjects every training call (data, train and validation splits) and every SVM fit sees."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[dict] = []
        real_train, real_svm = loso_module.train_stage, loso_module.fit_svm

        def train_stage(cfg, prepared, stage, out_dir, **kw):
            res = real_train(cfg, prepared, stage, out_dir, **kw)
            dm = res.datamodule
            micro = prepared[prepared["kind"] == "micro"]
            self.calls.append({"dir": Path(out_dir).as_posix(), "data": set(micro["subject"]),
                               "held_out": set(kw.get("held_out") or ()), "train": set(dm.train_df["subject"]),
                               "val": set(dm.val_df["subject"]), "svm": None})  # fmt: skip
            return res

        def fit_svm(emb, labels, groups, svm_cfg, seed):
            self.calls[-1]["svm"] = set(groups)
            return real_svm(emb, labels, groups, svm_cfg, seed)

        monkeypatch.setattr(loso_module, "train_stage", train_stage)
        monkeypatch.setattr(loso_module, "fit_svm", fit_svm)


def nested_args(tmp_path: Path, prepared_dir: Path) -> tuple[Path, list[str]]:
    spec = write_spec(tmp_path / "nested.yaml", spec_dict(tmp_path / "unused", search=dict(LR)))
    return spec, ["loso.group_size=2", as_override("data.prepared", prepared_dir)]


@pytest.fixture(scope="module")
def nested_run(prepared_dir, tmp_path_factory):
    """An uninterrupted nested run (2 outer folds of 2 subjects, 2 grid points, 2 inner folds), with spies."""
    mp = pytest.MonkeyPatch()
    spy = Spy(mp)
    root = tmp_path_factory.mktemp("nested")
    spec, overrides = nested_args(root, prepared_dir)
    try:
        run_nested_loso(load_sweep(spec), root / "out", overrides)
    finally:
        mp.undo()
    return root / "out", spy.calls


@pytest.mark.slow
def test_nested_run_is_stamped_and_no_test_sample_reaches_its_selection(nested_run):
    out, calls = nested_run
    selection = json.loads((out / "loso.json").read_text())["selection"]
    assert selection["method"] == "nested" and selection["study_prefix"] == "t"
    for fold, test in GROUPS.items():
        rec = selection["folds"][fold]
        assert rec["study"] == f"t/{fold}" and set(rec["test_subjects"]) == test
        assert set(rec["inner_subjects"]) == set(SUBJECTS) - test
        metrics = json.loads((out / "folds" / fold / "metrics.json").read_text())
        assert set(metrics["selection"]["inner_subjects"]) == set(SUBJECTS) - test
        assert metrics["selection"]["params"]["train.finetune.lr"] in LR["train.finetune.lr"]
        inner = [c for c in calls if f"/nested/{fold}/" in c["dir"]]
        outer = [c for c in calls if c["dir"].endswith(f"/train/{fold}")]
        assert len(inner) == 4 and len(outer) == 1  # 2 grid points x 2 inner folds, then the fold itself
        for c in inner:  # inner trials: the fold's test subjects are not even in their data
            assert not (c["data"] | c["train"] | c["val"] | c["svm"]) & test
        for c in outer:  # the fold: its test subjects only in the test split, never in training, checkpoint or SVM
            assert c["held_out"] == test and not (c["train"] | c["val"] | c["svm"]) & test
    storage = open_storage(f"sqlite:///{out / 'nested.db'}", create=False)
    assert sorted(optuna.get_all_study_names(storage)) == ["t/group00", "t/group01"]
    run = load_run(out)
    assert not run.leaky
    md = (out / "report.md").read_text()
    assert "LEAKY" not in md and "## Hyper-parameters chosen per fold (nested)" in md and "nested: one inner" in md
    assert json.loads((out / "scores.json").read_text())["selection"]["method"] == "nested"


def nested_command(spec: Path, out: Path, overrides: list[str]) -> tuple[list[str], dict[str, str]]:
    """`mer loso --nested` as a user runs it, with one fixed environment for every process of the comparison."""
    cmd = [sys.executable, "-m", "mer.cli", "loso", "--nested", str(spec), "--out", str(out), *overrides]
    return cmd, {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_nested_run_killed_and_rerun_equals_uninterrupted(prepared_dir, tmp_path):
    # Every run here is a fresh `mer loso --nested` process with one environment: the uninterrupted reference, the
    # run killed mid-study and its rerun. (An in-process reference can differ in the last float bits from a fresh
    # process after hundreds of other tests ran in it, and a tiny model's near-tied inner trials then pick another
    # learning rate: that compares processes, not resume.)
    spec, overrides = nested_args(tmp_path, prepared_dir)
    reference, out = tmp_path / "reference", tmp_path / "out"
    cmd, env = nested_command(spec, reference, overrides)
    subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    cmd, env = nested_command(spec, out, overrides)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = out / "nested" / "group01" / "trials"
    deadline = time.time() + 600
    # kill inside the second fold's inner study: fold group00 complete, one of its trials done, another running
    while not any(marker.glob("*/trial.json")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the nested run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "folds/group00/metrics.json").is_file() and not (out / "folds/group01/metrics.json").exists()
    done = (out / "folds/group00/metrics.json").stat().st_mtime_ns
    subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    assert (out / "folds/group00/metrics.json").stat().st_mtime_ns == done  # complete fold skipped
    pd.testing.assert_frame_equal(all_predictions(out), all_predictions(reference))
    storage = open_storage(f"sqlite:///{out / 'nested.db'}", create=False)
    study = optuna.load_study(study_name="t/group01", storage=storage)
    states = [t.state for t in study.get_trials()]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2  # each grid point finished exactly once
    ref_storage = open_storage(f"sqlite:///{reference / 'nested.db'}", create=False)
    ref_study = optuna.load_study(study_name="t/group01", storage=ref_storage)
    assert sorted(t.value for t in study.trials if t.value is not None) == sorted(
        t.value for t in ref_study.trials if t.value is not None
    )  # the rerun trial scored what the uninterrupted one did
    assert (out / "report.md").is_file()


def test_no_choice_while_an_inner_trial_runs_in_another_process(tmp_path):
    """chosen_trial refuses a study with a live RUNNING trial elsewhere: choosing then would ignore that point, and
    a rerun would choose otherwise. An untagged RUNNING trial (a process killed before it started) holds nothing."""
    spec = sweep_from_dict(spec_dict(tmp_path / "sw", search=dict(LR)))
    study = open_study(spec, f"sqlite:///{tmp_path / 'inner.db'}", spec.identity())
    study.enqueue_trial({"train.finetune.lr": 0.001})
    done = study.ask()
    suggest(done, spec)
    study.tell(done, 0.5)
    study.ask()  # untagged: ignored
    assert chosen_trial(study).number == done.number
    elsewhere = study.ask()
    elsewhere.set_user_attr("worker", "mer-node-b:4242:1")
    with pytest.raises(MerError, match=rf"trial {elsewhere.number} \(mer-node-b:4242:1\) running in another process"):
        chosen_trial(study)


@pytest.mark.slow
def test_nested_inner_studies_on_postgresql(postgres_url, prepared_dir, tmp_path):
    spec, overrides = nested_args(tmp_path, prepared_dir)
    sweep = load_sweep(spec)
    sweep.search["train.finetune.lr"].values = [0.001]  # one grid point: a < 90 s test
    start = time.perf_counter()
    out = run_nested_loso(sweep, tmp_path / "out", [*overrides, "loso.folds=[group00]"], storage=postgres_url)
    seconds = time.perf_counter() - start
    names = optuna.get_all_study_names(open_storage(postgres_url, create=False))
    assert names == ["t/group00"]
    selection = json.loads((out / "loso.json").read_text())["selection"]
    assert selection["method"] == "nested" and selection["storage"] == mask_url(postgres_url)
    assert selection["folds"]["group00"]["study"] == "t/group00"
    assert (out / "report.md").is_file() and not load_run(out).leaky
    print(f"nested LOSO on PostgreSQL: {seconds:.1f} s")


def test_cli_dispatches_nested_from_flag_or_config(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import mer.sweep.nested as nested_module
    from mer.cli import app

    seen = []
    monkeypatch.setattr(nested_module, "run_nested_loso", lambda spec, out, overrides, **kw: seen.append((spec, kw)))
    spec = write_spec(tmp_path / "s.yaml", spec_dict(tmp_path / "sw"))
    runner = CliRunner()
    r = runner.invoke(app, ["loso", "--nested", str(spec), "--workers", "3", "--fold-index", "1", "--storage", "x"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["loso", "-c", "default", "-c", "tiny", f"loso.nested={spec}"])
    assert r.exit_code == 0, r.output
    (first, kw1), (second, _) = seen
    assert first.study == "t" and first.base == BASE and kw1 == {"storage": "x", "workers": 3, "fold_index": 1,
                                                                 "folds": None, "allow_mixed": False}  # fmt: skip
    assert second.base == ["default", "tiny"]  # --config replaces the sweep's base
