"""Class schemes (`data.classes`): label tables per dataset, refusal at config load, and a 4-class LOSO run."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from mer.config import class_names, load_config
from mer.data.datasets import build_manifest
from mer.data.labels import resolve
from mer.errors import ConfigError, DataError
from mer.evaluation.loso import run_loso
from tests.helpers import make_prepared, tiny_config, write_prepared_dir
from tests.layouts import make_smic
from tests.layouts_current import casme3a_rows, make_casme3a, make_dfme


def test_schemes_name_their_classes_and_size_the_head() -> None:
    assert class_names(load_config().data) == ["negative", "positive", "surprise"]
    cfg = load_config(None, ["data.classes=cas3_4"])
    assert class_names(cfg.data) == ["negative", "positive", "surprise", "others"] and cfg.model.num_classes == 4
    assert load_config(None, ["data.classes=seven"]).model.num_classes == 7
    assert load_config(["default", "paper"], ["data.classes=casme2_5"]).model.num_classes == 5
    legacy = load_config(None, ["data.classes=[positive,surprise]", "model.num_classes=2"])
    assert class_names(legacy.data) == ["positive", "surprise"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.classes=nine"], "'nine' is not a class scheme; choose one of: megc3, cas3_4, seven, casme2_5"),
        (["data.classes=seven", "data.roots={smic: x}"], "the labels of dataset 'smic' cannot express these classes"),
        (["data.classes=casme2_5", "data.roots={samm: x}"], "schemes 'samm' can use: megc3, cas3_4, seven"),
        (["data.classes=cas3_4", "data.megc_list=x.csv"], "needs data.classes=megc3"),
        (["data.classes=cas3_4", "model.num_classes=3", "model.backbone=resnet18"], None),
    ],
)
def test_a_scheme_the_datasets_cannot_express_is_refused_at_load(overrides, message) -> None:
    if message is None:  # num_classes left at 3 follows the scheme (it is the default, not a choice)
        assert load_config(None, overrides).model.num_classes == 4
        return
    with pytest.raises(ConfigError, match=message.replace("(", "\\(")):
        load_config(None, overrides)


def test_per_dataset_tables() -> None:
    assert resolve("casme3a", "Others", "cas3_4").label == "others"
    assert resolve("casme3a", "sad", "seven").label == "sadness"
    assert resolve("casme2", "repression", "casme2_5").label == "repression"
    assert resolve("casme2", "fear", "casme2_5").reason == "emotion 'fear' is not in the casme2_5 class scheme"
    assert resolve("ckplus", "3.0000000e+00", "seven").label == "disgust"  # codes decode before the lookup
    assert resolve("jaffe", "HA", "cas3_4").label == "positive"
    assert resolve("samm", "Other", "cas3_4").label == "others"
    assert resolve("casme2", "others").reason == "emotion 'others' is not in the MEGC2019 3-class protocol"
    with pytest.raises(DataError, match="cannot express"):
        resolve("smic", "negative", "seven")


def test_readers_label_by_the_scheme(tmp_path: Path) -> None:
    rows = [r for r in casme3a_rows()[:60]]
    root = make_casme3a(tmp_path / "c3", rows)
    want = Counter(r["cells"][-1].lower().replace("sad", "negative").replace("happy", "positive") for r in rows)
    three, report3 = build_manifest({"casme3a": root})
    four, report4 = build_manifest({"casme3a": root}, classes="cas3_4")
    assert "others" not in set(three["label"]) and len(four) == len(three) + want["others"] > len(three)
    assert Counter(four["label"])["others"] == want["others"]
    seven, _ = build_manifest({"dfme": make_dfme(tmp_path / "dfme")}, classes="seven")
    assert seven["label"].tolist() == ["happiness"]
    with pytest.raises(ConfigError, match="'smic' cannot express"):
        build_manifest({"smic": make_smic(tmp_path / "smic")}, classes="seven")
    with pytest.raises(ConfigError, match="needs data.classes=megc3"):
        build_manifest({"casme3a": root}, megc_list=tmp_path / "list.csv", classes="cas3_4")


CAS4 = ("negative", "positive", "surprise", "others")


def test_cas3_4_trains_and_reports_four_classes(tmp_path: Path) -> None:
    subjects = {f"{d}/s{i}": "micro" for d in ("casme3a", "samm") for i in range(2)}
    prepared = write_prepared_dir(tmp_path / "prep", make_prepared(tmp_path / "prep", subjects, 3, classes=CAS4))
    cfg = tiny_config(
        "train.finetune.val_subjects=0.3",
        "train.threads=1",
        f"data.prepared={prepared}",
        "data.classes=cas3_4",
        "loso.folds=[casme3a/s0]",
    )
    assert cfg.model.num_classes == 4
    out = tmp_path / "run"
    run_loso(cfg, out, None)
    preds = pd.read_csv(out / "folds/casme3a/s0/predictions.csv")
    assert [c for c in preds.columns if c.startswith("prob_")] == [f"prob_{c}" for c in CAS4]
    assert set(preds.label) == set(CAS4) and set(preds.svm_pred) <= set(CAS4)
    scores = json.loads((out / "scores.json").read_text())["scores"]["svm"]["composite"]
    assert scores["classes"] == list(CAS4) and len(scores["confusion"]) == 4
    md = (out / "report.md").read_text()
    assert "pred others" in md
    # the same folder read as megc3 data is refused: it was not prepared with that scheme
    (prepared / "config.yaml").write_text("data:\n  classes: megc3\n")
    with pytest.raises(DataError, match="prepared with data.classes=megc3, this run uses cas3_4"):
        run_loso(cfg, tmp_path / "again", None)


def test_pretrain_refuses_a_prepared_folder_of_another_scheme(tmp_path: Path) -> None:
    from mer.train import run_pretrain

    prepared = write_prepared_dir(tmp_path / "p", make_prepared(tmp_path / "p", {"ckplus/S001": "macro"}, 2))
    (prepared / "config.yaml").write_text("data:\n  classes: [negative, positive, surprise]\n")  # before schemes
    with pytest.raises(DataError, match="prepared with data.classes=megc3, this run uses seven"):
        run_pretrain(tiny_config(f"data.prepared={prepared}", "data.classes=seven"), tmp_path / "pre")
