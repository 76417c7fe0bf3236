"""loso.protocol: composite, per-dataset LOSO, leave one dataset out, DFME's official split (plans and runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mer.errors import ConfigError, DataError
from mer.evaluation.loso import plan_folds, run_loso
from mer.evaluation.run_folder import ID_COLUMNS, FoldResult
from tests.helpers import CLASSES, make_prepared, tiny_config, write_prepared_dir

SUBJECTS = {f"{d}/s{i}": "micro" for d in ("casme2", "samm") for i in range(2)}


def table(tmp_path: Path, subjects: dict[str, str] = SUBJECTS) -> pd.DataFrame:
    return make_prepared(tmp_path, {"ckplus/S001": "macro", **subjects}, per_class=2)


def with_splits(df: pd.DataFrame, splits: dict[str, str]) -> pd.DataFrame:
    """The rows of the subjects in `splits` as DFME rows with that split (the others keep their dataset)."""
    df = df.copy()
    df["split"] = df["subject"].map(splits)
    df.loc[df["subject"].isin(splits), "dataset"] = "dfme"
    return df


def test_plans(tmp_path: Path) -> None:
    df = table(tmp_path)
    composite = plan_folds(df)
    assert [f.name for f in composite] == sorted(SUBJECTS) and all(not f.pool for f in composite)
    per = plan_folds(df, protocol="per_dataset")
    assert [f.name for f in per] == sorted(SUBJECTS)
    assert {f.name: f.pool for f in per}["samm/s1"] == ("samm/s0", "samm/s1")
    lodo = plan_folds(df, protocol="lodo")
    assert [(f.name, f.held_out, f.pool) for f in lodo] == [
        ("casme2", ("casme2/s0", "casme2/s1"), ()),
        ("samm", ("samm/s0", "samm/s1"), ()),
    ]
    seen = lodo[0].restrict(df)
    assert seen.equals(df)  # lodo trains on every other dataset
    kept = per[0].restrict(df)
    assert set(kept.loc[kept.kind == "micro", "dataset"]) == {"casme2"} and (kept.kind == "macro").any()
    grouped = plan_folds(df, group_size=2, protocol="per_dataset")
    assert [f.name for f in grouped] == ["casme2/group00", "samm/group00"]


def test_dfme_plan_trains_on_train_and_tests_each_split(tmp_path: Path) -> None:
    subjects = {f"dfme/sub{i}": "micro" for i in range(5)}
    df = with_splits(table(tmp_path, subjects), {"dfme/sub0": "train", "dfme/sub1": "train", "dfme/sub2": "testA",
                                                 "dfme/sub3": "testB", "dfme/sub4": "testB"})  # fmt: skip
    folds = plan_folds(df, protocol="dfme")
    assert [(f.name, f.held_out) for f in folds] == [("dfme/testA", ("dfme/sub2",)),
                                                     ("dfme/testB", ("dfme/sub3", "dfme/sub4"))]  # fmt: skip
    seen = folds[0].restrict(df)
    assert set(seen.loc[seen.kind == "micro", "subject"]) == {"dfme/sub0", "dfme/sub1", "dfme/sub2"}  # testB unseen


@pytest.mark.parametrize(
    ("protocol", "splits", "message"),
    [
        ("lodo", None, "needs at least two micro datasets"),
        ("dfme", None, "needs DFME samples with their split"),
        ("dfme", {"casme2/s0": "testA", "casme2/s1": "testA"}, "no DFME training samples"),
    ],
)
def test_protocol_errors(tmp_path: Path, protocol: str, splits: dict | None, message: str) -> None:
    df = table(tmp_path, {"casme2/s0": "micro", "casme2/s1": "micro"})
    if splits:
        df = with_splits(df, splits)
    with pytest.raises(DataError, match=message):
        plan_folds(df, protocol=protocol)
    with pytest.raises(ConfigError, match="loso.protocol: 'loo' is not allowed"):
        tiny_config("loso.protocol=loo")


def cfg(prepared: Path, *extra: str):
    return tiny_config("train.finetune.val_subjects=0.3", "train.threads=1", f"data.prepared={prepared}", *extra)


def test_per_dataset_fold_trains_on_its_dataset_only(tmp_path: Path) -> None:
    prepared = write_prepared_dir(tmp_path / "p", make_prepared(tmp_path / "p", SUBJECTS, per_class=3))
    out = tmp_path / "run"
    run_loso(cfg(prepared, "loso.protocol=per_dataset", "loso.folds=[samm/s0]"), out, None)
    metrics = json.loads((out / "folds/samm/s0/metrics.json").read_text())
    assert metrics["n_train"] + metrics["n_val"] == 9  # samm/s1 only (3 classes × 3), not casme2's subjects
    assert set(metrics["val_subjects"]) <= {"samm/s1"}
    assert json.loads((out / "loso.json").read_text())["protocol"] == "per_dataset"


def test_lodo_writes_a_report_per_held_out_dataset(tmp_path: Path) -> None:
    prepared = write_prepared_dir(tmp_path / "p", make_prepared(tmp_path / "p", SUBJECTS, per_class=3))
    out = tmp_path / "run"
    run_loso(cfg(prepared, "loso.protocol=lodo", "loso.classifier=softmax"), out, None)
    for dataset in ("casme2", "samm"):
        metrics = json.loads((out / "folds" / dataset / "metrics.json").read_text())
        assert metrics["n_test"] == 18 and metrics["n_train"] + metrics["n_val"] == 18
        preds = pd.read_csv(out / "held_out" / dataset / "folds" / dataset / "predictions.csv")
        assert set(preds["dataset"]) == {dataset}
        report = (out / "held_out" / dataset / "report.md").read_text()
        assert "## Scores (pooled over all folds)" in report
    assert (out / "report.md").is_file()  # the pooled report over both held-out datasets


@pytest.mark.slow
def test_mer_loso_lodo_on_the_demo_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`mer loso --protocol lodo` on the demo corpus: its three micro look-alikes are three held-out datasets."""
    from mer.cli import main
    from mer.demo.corpus import generate_corpus
    from mer.demo.run import _roots

    def mer(args: list[str]) -> None:
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code in (0, None), args

    roots = _roots(generate_corpus(tmp_path / "corpus", seed=0, quick=True))
    quick = ["-c", "demo", "-c", "tiny", "train.threads=2", "logging.progress_bar=false", "loso.workers=1"]
    mer(["prepare", *quick, "--out", str(tmp_path / "prepared"), *roots])
    out = tmp_path / "lodo"
    mer(["loso", *quick, "--protocol", "lodo", "--prepared", str(tmp_path / "prepared"), "--out", str(out)])
    printed = capsys.readouterr().out
    micro = pd.read_csv(tmp_path / "prepared" / "prepared.csv").query("kind == 'micro'")
    assert sorted(micro["dataset"].unique()) == ["casme2", "samm", "smic"]
    for dataset in ("casme2", "samm", "smic"):
        report = out / "held_out" / dataset / "report.md"
        assert report.is_file() and f"held out {dataset}: report → {report}" in printed
        preds = pd.read_csv(out / "folds" / dataset / "predictions.csv")
        assert sorted(preds["sample_id"]) == sorted(micro.loc[micro["dataset"] == dataset, "sample_id"])
    scores = json.loads((out / "scores.json").read_text())["scores"]["svm"]
    assert {"composite", "casme2", "samm", "smic"} <= set(scores)  # pooled and per held-out dataset


def test_dfme_split_run_never_trains_on_a_test_split(tmp_path: Path) -> None:
    subjects = {f"dfme/sub{i}": "micro" for i in range(4)}
    splits = {"dfme/sub0": "train", "dfme/sub1": "train", "dfme/sub2": "testA", "dfme/sub3": "testB"}
    df = with_splits(make_prepared(tmp_path / "p", subjects, per_class=3), splits)
    prepared = write_prepared_dir(tmp_path / "p", df)
    out = tmp_path / "run"
    run_loso(cfg(prepared, "loso.protocol=dfme", "loso.folds=[dfme/testA]"), out, None)
    metrics = json.loads((out / "folds/dfme/testA/metrics.json").read_text())
    assert metrics["held_out"] == ["dfme/sub2"] and metrics["n_test"] == 9
    assert metrics["n_train"] + metrics["n_val"] == 18  # sub0 and sub1 (train); testB's sub3 is never seen
    assert set(pd.read_csv(out / "folds/dfme/testA/predictions.csv")["subject"]) == {"dfme/sub2"}


def test_a_fold_runner_sees_only_its_pool(tmp_path: Path) -> None:
    """Nested LOSO's fold runner (its inner study) gets the fold's own subjects only, under any protocol."""
    prepared = write_prepared_dir(tmp_path / "p", make_prepared(tmp_path / "p", SUBJECTS, per_class=2))
    seen: dict[str, set[str]] = {}

    def runner(fold, table, pretrained):  # noqa: ANN001, ANN202 - run_loso's fold_runner signature
        seen[fold.name] = set(table.loc[table["kind"] == "micro", "subject"])
        empty = pd.DataFrame(columns=list(ID_COLUMNS))
        return FoldResult.build(empty, CLASSES, svm_pred=None, probs=None, fold=fold.name, index=fold.index,
                                held_out=fold.held_out, seed=0, n_train=0)  # fmt: skip

    run_loso(cfg(prepared, "loso.protocol=per_dataset"), tmp_path / "run", None, fold_runner=runner)
    assert seen == {s: {t for t in SUBJECTS if t.split("/")[0] == s.split("/")[0]} for s in SUBJECTS}
