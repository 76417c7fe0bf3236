"""The run folder (`mer.evaluation.run_folder`) and per-fold provenance: one write/read of a fold's result, the
regime every fold records, runs.jsonl appended per call, and resumes or array tasks under another regime (mer commit,
resolved precision) refused unless --allow-mixed, which stamps the report MIXED."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import mer.provenance as provenance
from mer.cli import main
from mer.config import load_config
from mer.errors import MerError
from mer.evaluation.compare import compare_runs
from mer.evaluation.loso import run_loso
from mer.evaluation.report import write_report
from mer.evaluation.run_folder import BASE_COLUMNS, FoldResult, RunFolder, prediction_columns
from mer.evaluation.runs import load_run
from mer.evaluation.seeds import run_seeds
from tests.helpers import BASE, TINY, make_prepared, make_run, write_prepared_dir

SUBJECTS = {f"{d}/s{i}": "micro" for d in ("casme2", "samm") for i in range(2)}
PLAN = ["casme2/s0", "samm/s0"]  # two folds keep the array tests short; the other subjects only train
OVERRIDES = [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}"
             for k, v in {**TINY, "loso.folds": PLAN}.items()]  # fmt: skip


@pytest.fixture(scope="module")
def prepared_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    return write_prepared_dir(root, make_prepared(root, SUBJECTS, per_class=2, size=32))


def cfg(prepared_dir: Path, *extra: str):
    return load_config(BASE, [*OVERRIDES, f"data.prepared={prepared_dir}", *extra])


def on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process now resolves `train.precision: auto` as a bf16 GPU would (the folds still train on the CPU)."""
    monkeypatch.setattr(provenance, "_device", lambda train, cuda: ("cuda", "simulated GPU", True))


def cli(args: list[str]) -> int:
    """`mer ARGS` in this process (so the monkeypatched provenance applies); its exit code."""
    with pytest.raises(SystemExit) as exc:
        main(args)
    return int(exc.value.code or 0)


def at_another_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provenance, "git_state", lambda: ("f" * 40, False))


# ------------------------------------------------------------------------------------------ FoldResult / RunFolder


def test_fold_result_is_written_and_read_once_and_complete_only_when_written(tmp_path: Path) -> None:
    classes = ["negative", "positive", "surprise"]
    test = pd.DataFrame({"sample_id": ["001", "002"], "dataset": "casme2", "subject": "casme2/s0",
                         "label": ["negative", "surprise"], "kind": "micro"})  # fmt: skip
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    regime = provenance.regime(load_config("tiny"))
    result = FoldResult.build(test, classes, svm_pred=np.array(["negative", "positive"]), probs=probs,
                              fold="casme2/s0", index=0, held_out=["casme2/s0"], seed=3, n_train=10,
                              seconds=1.234, provenance=regime, extra={"selection": {"method": "x"}})  # fmt: skip
    assert (
        list(result.predictions.columns)
        == prediction_columns(classes)
        == [*BASE_COLUMNS, "prob_negative", "prob_positive", "prob_surprise"]
    )
    assert result.metrics.svm_accuracy == 0.5 and result.metrics.softmax_accuracy == 1.0
    folder = RunFolder(tmp_path / "run")
    folder.start_fold("casme2/s0")
    assert not folder.fold_complete("casme2/s0") and not folder.has_folds()
    assert folder.scan_folds() == ([], ["casme2/s0"])  # started, not complete: a report lists it as missing
    folder.write_fold("casme2/s0", result)
    assert folder.fold_complete("casme2/s0") and folder.has_folds()
    back = folder.read_fold("casme2/s0")
    assert back.metrics == result.metrics  # the typed metrics, provenance and extra fields included
    assert back.predictions["sample_id"].tolist() == ["001", "002"]  # ids stay strings
    pd.testing.assert_frame_equal(back.predictions.drop(columns=list(BASE_COLUMNS)),
                                  result.predictions.drop(columns=list(BASE_COLUMNS)))  # fmt: skip
    assert folder.fold_regimes() == {"casme2/s0": regime}
    # a feature fold: no network, so no softmax prediction and no probabilities
    feature = FoldResult.build(test, classes, svm_pred=["negative", "negative"], probs=None, fold="f", index=1,
                               held_out=["casme2/s0"], seed=0, n_train=4)  # fmt: skip
    assert feature.metrics.softmax_accuracy is None and (feature.predictions["softmax_pred"] == "").all()
    assert feature.predictions["prob_negative"].isna().all()


def test_regime_resolves_auto_and_names_the_first_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    c = load_config("tiny")
    assert c.train.precision == "auto"
    here = provenance.regime(c, cuda=False)
    assert (here["precision"], here["device"], here["tf32"]) == ("32-true", "cpu", False)
    assert set(here["versions"]) == set(provenance.REGIME_PACKAGES)
    on_a_gpu(monkeypatch)
    gpu = provenance.regime(c)
    assert (gpu["precision"], gpu["device"]) == ("bf16-mixed", "cuda")
    assert provenance.regime_differences(here, gpu)[0] == "precision: 32-true → bf16-mixed"
    assert provenance.regime_differences(gpu, {**gpu, "device_name": "another GPU"}) == []  # shown, not compared
    lbp = provenance.regime(load_config(None, ["model.backbone=lbptop"]))
    assert lbp["precision"] == "none" and lbp["device"] == "cpu"  # no network: nothing resolves


# ------------------------------------------------------------------------------------------ array tasks and resumes


def test_array_task_under_another_precision_is_refused_then_allowed_and_stamped_mixed(
    prepared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    run_loso(cfg(prepared_dir), out, None, fold_index=0)  # array task 0 on a CPU machine: auto → 32-true
    first = RunFolder(out).fold_regimes()["casme2/s0"]
    assert first["precision"] == "32-true" and first["device"] == "cpu"
    on_a_gpu(monkeypatch)  # array task 1 lands on a GPU node: auto → bf16-mixed
    with pytest.raises(MerError, match=r"another regime \(fold casme2/s0: precision: 32-true → bf16-mixed"):
        run_loso(cfg(prepared_dir), out, None, fold_index=1)
    assert not RunFolder(out).fold_complete("samm/s0")  # refused before anything ran
    assert len(RunFolder(out).run_records()) == 1
    run_loso(cfg(prepared_dir), out, None, fold_index=1, allow_mixed=True)
    records = RunFolder(out).run_records()  # one line per call that ran, appended
    assert [r["folds"] for r in records] == [["casme2/s0"], ["samm/s0"]]
    assert records[1]["allow_mixed"] and records[1]["regime"]["precision"] == "bf16-mixed"
    run = load_run(out)
    assert run.mixed and run.stamps == ["MIXED"]
    assert [folds for _, folds in run.regime_groups] == [["casme2/s0"], ["samm/s0"]]
    report = (out / "report.md").read_text()
    assert report.splitlines()[0].endswith("[MIXED]")
    assert "MIXED: the folds ran under 2 regimes" in report and "precision: 32-true → bf16-mixed" in report
    assert "| A | 1: casme2/s0 |" in report and "| B | 1: samm/s0 |" in report
    scores = json.loads((out / "scores.json").read_text())
    assert scores["mixed"] and [r["folds"] for r in scores["regimes"]] == [["casme2/s0"], ["samm/s0"]]
    compare_runs([out], tmp_path / "cmp", resamples=0)
    assert "MIXED" in (tmp_path / "cmp" / "compare.md").read_text()


def test_array_task_from_another_commit_is_a_one_line_exit_2_unless_allowed(
    prepared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["loso", "--out", str(out), *(a for b in BASE for a in ("--config", b)), *OVERRIDES,
            f"data.prepared={prepared_dir}"]  # fmt: skip
    assert cli([*args, "--fold-index", "0"]) == 0
    capsys.readouterr()
    at_another_commit(monkeypatch)
    assert cli([*args, "--fold-index", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "another regime (fold casme2/s0: mer_commit:" in err
    assert "--allow-mixed" in err
    assert cli([*args, "--fold-index", "1", "--allow-mixed"]) == 0
    run = load_run(out)
    assert run.mixed and run.regimes["samm/s0"]["mer_commit"] == "f" * 40
    assert "[MIXED]" in (out / "report.md").read_text().splitlines()[0]


def test_same_regime_resumes_and_folds_without_a_record_are_not_compared(
    prepared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    run_loso(cfg(prepared_dir), out, None, fold_index=0)
    metrics = RunFolder(out).fold_dir("casme2/s0") / "metrics.json"
    old = json.loads(metrics.read_text())
    old.pop("provenance")  # a fold written before regimes were recorded
    metrics.write_text(json.dumps(old))
    at_another_commit(monkeypatch)
    run_loso(cfg(prepared_dir), out, None, fold_index=1)  # nothing recorded to differ from
    run = load_run(out)
    assert not run.mixed and list(run.regimes) == ["samm/s0"]


def test_seed_study_array_task_is_checked_against_every_seed(
    prepared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "study"
    study = cfg(prepared_dir, "loso.seeds=[0,1]")
    run_seeds(study, out, None, fold_index=0)  # seed 0, fold 0
    on_a_gpu(monkeypatch)
    with pytest.raises(MerError, match=r"another regime \(fold seed0/casme2/s0: precision"):
        run_seeds(study, out, None, fold_index=2)  # seed 1's folder is empty: only the study-wide check sees it
    assert not RunFolder(out).seed(1).has_folds()


# ------------------------------------------------------------------------------------------ reports


def _stamp_regimes(run_dir: Path, regimes: dict[str, dict]) -> None:
    for fold, rec in regimes.items():
        path = RunFolder(run_dir).fold_dir(fold) / "metrics.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "provenance": rec}))


def test_report_stamps_mixed_only_when_recorded_regimes_differ(tmp_path: Path) -> None:
    base = provenance.regime(load_config("tiny"), cuda=False)
    same = make_run(tmp_path / "same")
    _stamp_regimes(same, dict.fromkeys(["casme2/sub01", "samm/006"], base))
    write_report(same)
    text = (same / "report.md").read_text()
    assert "MIXED" not in text and "| A | 2: casme2/sub01, samm/006 |" in text
    assert not json.loads((same / "scores.json").read_text())["mixed"]
    mixed = make_run(tmp_path / "mixed")
    _stamp_regimes(mixed, {"casme2/sub01": base, "samm/006": {**base, "tf32": True}})
    write_report(mixed)
    text = (mixed / "report.md").read_text()
    assert text.splitlines()[0].endswith("[MIXED]") and "tf32: False → True" in text
    unrecorded = make_run(tmp_path / "old")
    write_report(unrecorded)
    assert "No fold recorded its regime" in (unrecorded / "report.md").read_text()
