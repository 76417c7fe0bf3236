"""LOSO runner: fold plan, no leakage, resume, array index and workers agree, input checks before training."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from mer.errors import DataError, MerError
from mer.evaluation.loso import plan_folds, run_loso
from mer.evaluation.run_folder import RunFolder
from mer.models.backbones import MERNet, save_weights
from tests.helpers import all_predictions, make_prepared, tiny_config, write_prepared_dir

SUBJECTS = {f"{d}/s{i}": "micro" for d in ("casme2", "samm") for i in range(2)}


@pytest.fixture(scope="module")
def prepared_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    return write_prepared_dir(root, make_prepared(root, SUBJECTS, per_class=3))


def cfg(prepared_dir, *extra):
    return tiny_config("train.finetune.val_subjects=0.3", "train.threads=1", f"data.prepared={prepared_dir}", *extra)


@pytest.fixture(scope="module")
def full_run(prepared_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    run_loso(cfg(prepared_dir), out, None)
    return out


def test_plan_one_fold_per_subject(prepared_dir):
    from mer.data.prepared import load_prepared

    df = load_prepared(prepared_dir)
    plan = plan_folds(df)
    assert [f.name for f in plan] == sorted(SUBJECTS)
    assert all(f.held_out == (f.name,) for f in plan)
    grouped = plan_folds(df, group_size=2)
    assert [f.held_out for f in grouped] == [("casme2/s0", "casme2/s1"), ("samm/s0", "samm/s1")]
    with pytest.raises(MerError, match="unknown fold"):
        plan_folds(df, only=["casme2/s9"])


def test_full_run_outputs_and_no_leakage(full_run):
    total = len(SUBJECTS) * 9
    for subject in SUBJECTS:
        d = full_run / "folds" / subject
        assert RunFolder(full_run).fold_complete(subject)
        preds = pd.read_csv(d / "predictions.csv")
        m = json.loads((d / "metrics.json").read_text())
        assert set(preds.subject) == {subject}  # only the held-out subject is predicted
        assert subject not in m["val_subjects"]
        assert m["n_train"] + m["n_val"] + m["n_test"] == total
        inner = {g for split in m["svm_params"]["inner_val_groups"] for g in split}
        assert subject not in inner  # the SVM's parameter search never saw the held-out subject
        assert set(preds.svm_pred) <= {"negative", "positive", "surprise"}
        assert preds[["prob_negative", "prob_positive", "prob_surprise"]].sum(axis=1).round(4).eq(1).all()
    for name in ("report.md", "report.html", "confusion_matrix.png", "config.yaml", "run_info.json", "loso.json"):
        assert (full_run / name).is_file(), name
    assert json.loads((full_run / "loso.json").read_text())["planned_folds"] == sorted(SUBJECTS)


def test_resume_after_kill_gives_identical_predictions(full_run, prepared_dir, tmp_path):
    out = tmp_path / "resumed"
    run_loso(cfg(prepared_dir), out, None, folds="casme2/s0,samm/s1")  # "killed" after two folds
    assert not (out / "report.md").exists()
    # a fold killed mid-write: predictions without metrics is incomplete and is redone
    half = out / "folds" / "casme2" / "s1"
    half.mkdir(parents=True)
    (half / "predictions.csv").write_text("garbage")
    before = (out / "folds/casme2/s0/metrics.json").stat().st_mtime_ns
    run_loso(cfg(prepared_dir), out, None)
    assert (out / "folds/casme2/s0/metrics.json").stat().st_mtime_ns == before  # complete fold skipped
    pd.testing.assert_frame_equal(all_predictions(out), all_predictions(full_run))
    assert (out / "report.md").is_file()


def test_resume_with_another_config_is_refused(full_run, prepared_dir, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(full_run, out)
    with pytest.raises(MerError, match="another config"):
        run_loso(cfg(prepared_dir, "train.finetune.lr=0.5"), out, None)


def test_resume_with_more_workers_is_the_same_run(full_run, prepared_dir, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(full_run, out)
    (out / "report.md").unlink()
    run_loso(cfg(prepared_dir, "loso.workers=2"), out, None)  # every fold complete: nothing to train
    assert (out / "report.md").is_file()


def test_fold_index_matches_sequential(full_run, prepared_dir, tmp_path):
    out = tmp_path / "array"
    for i in range(len(SUBJECTS)):
        run_loso(cfg(prepared_dir), out, None, fold_index=i)
    pd.testing.assert_frame_equal(all_predictions(out), all_predictions(full_run))
    with pytest.raises(MerError, match="out of range"):
        run_loso(cfg(prepared_dir), out, None, fold_index=len(SUBJECTS))


@pytest.mark.slow
def test_two_workers_match_sequential(full_run, prepared_dir, tmp_path):
    out = tmp_path / "workers"
    run_loso(cfg(prepared_dir, "loso.workers=2"), out, None)
    pd.testing.assert_frame_equal(all_predictions(out), all_predictions(full_run))


@pytest.mark.slow
def test_two_cpu_workers_match_sequential(full_run, prepared_dir, tmp_path):
    out = tmp_path / "cpu-workers"
    run_loso(cfg(prepared_dir, "loso.workers=2", "loso.devices=[cpu]"), out, None)
    pd.testing.assert_frame_equal(all_predictions(out), all_predictions(full_run))


def test_checks_fail_before_training(prepared_dir, tmp_path):
    out = tmp_path / "bad"
    with pytest.raises(MerError, match="not found"):
        run_loso(cfg(prepared_dir), out, tmp_path / "missing.ckpt")
    other = save_weights(MERNet("resnet18", image_size=64), tmp_path / "resnet.pt")
    with pytest.raises(MerError, match="resnet18"):
        run_loso(cfg(prepared_dir), out, other)
    with pytest.raises(MerError, match="unknown fold"):
        run_loso(cfg(prepared_dir), out, None, folds="smic/s7")
    assert not (out / "folds").exists()  # nothing trained


def test_one_class_manifest_is_refused(tmp_path):
    df = make_prepared(tmp_path, SUBJECTS, per_class=1)
    write_prepared_dir(tmp_path, df[df.label == "positive"])
    with pytest.raises(DataError, match="only class"):
        run_loso(cfg(tmp_path), tmp_path / "out", None)


def test_final_bundle(prepared_dir, tmp_path):
    from mer.evaluation.loso import run_final
    from mer.inference.bundle import load_bundle

    bundle = run_final(cfg(prepared_dir), tmp_path / "final", None)
    b = load_bundle(bundle)
    assert b.svm is not None
    info = json.loads((bundle / "bundle.json").read_text())["info"]
    assert info["trained_on"] == sorted(SUBJECTS)


def test_softmax_only_and_no_transfer_ablations(prepared_dir, tmp_path):
    from mer.config import load_config, to_yaml

    pre = save_weights(MERNet("mobilevit_xxs", image_size=64), tmp_path / "pre.pt")
    c = load_config(text=to_yaml(cfg(prepared_dir)), overrides=["loso.classifier=softmax", "loso.transfer=false"])
    out = tmp_path / "ablation"
    run_loso(c, out, pre, folds="casme2/s0")
    preds = pd.read_csv(out / "folds/casme2/s0/predictions.csv", keep_default_na=False)
    assert (preds.svm_pred == "").all() and preds.softmax_pred.isin(["negative", "positive", "surprise"]).all()
    assert json.loads((out / "folds/casme2/s0/metrics.json").read_text())["svm_params"] is None


def test_two_classes_drive_columns_metrics_and_report(prepared_dir, tmp_path):
    """data.classes=[positive, surprise]: only their prob_ columns, in that order; metrics and report use them only."""
    c = cfg(prepared_dir, "data.classes=[positive,surprise]", "model.num_classes=2", "loso.folds=[casme2/s0]")
    out = tmp_path / "two"
    run_loso(c, out, None)
    preds = pd.read_csv(out / "folds/casme2/s0/predictions.csv")
    assert [col for col in preds.columns if col.startswith("prob_")] == ["prob_positive", "prob_surprise"]
    assert set(preds.label) == {"positive", "surprise"} and set(preds.svm_pred) <= {"positive", "surprise"}
    assert preds[["prob_positive", "prob_surprise"]].sum(axis=1).round(4).eq(1).all()
    scores = json.loads((out / "scores.json").read_text())["scores"]["svm"]["composite"]
    assert scores["classes"] == ["positive", "surprise"] and list(scores["per_class"]) == ["positive", "surprise"]
    md = (out / "report.md").read_text()
    assert "pred positive" in md and "pred negative" not in md


def test_resume_refuses_another_checkpoint_or_other_data(full_run, prepared_dir, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(full_run, out)
    notes = json.loads((out / "loso.json").read_text())
    assert notes["pretrained_sha256"] is None and len(notes["data_fingerprint"]) == 64
    pre = save_weights(MERNet("mobilevit_xxs", image_size=64), tmp_path / "pre.pt")
    with pytest.raises(MerError, match="another pre-trained checkpoint"):
        run_loso(cfg(prepared_dir), out, pre)
    other = tmp_path / "other_data"
    shutil.copytree(prepared_dir, other)
    csv = other / "prepared.csv"
    csv.write_text("".join(csv.read_text().splitlines(keepends=True)[:-1]))  # one sample fewer
    with pytest.raises(MerError, match="another prepared data"):
        run_loso(cfg(prepared_dir, f"data.prepared={other}"), out, None)
    # moved data (same content) and keys that only say how the run executes never block a resume
    moved = tmp_path / "moved"
    shutil.copytree(prepared_dir, moved)
    (out / "report.md").unlink()
    run_loso(cfg(moved, "train.threads=2", "logging.progress_bar=true", "data.num_workers=0"), out, None)
    assert (out / "report.md").is_file()
    assert json.loads((out / "loso.json").read_text())["selection"] == {"method": "fixed"}
