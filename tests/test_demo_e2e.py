"""End to end: `mer demo --quick` generates the corpus, prepares, pre-trains, runs every LOSO fold and reports."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mer.cli import main
from mer.demo import demo_config
from tests.helpers import SECTIONS


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--quick", "--out", str(out)])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    report = out / "loso" / "report.md"
    assert str(report) in printed
    text = report.read_text()
    for section in SECTIONS:
        assert section in text, section
    assert "PARTIAL" not in text and "LEAKY" not in text
    for name in ("report.html", "confusion_matrix.png", "per_fold_accuracy.png", "megc_log.txt", "scores.json"):
        assert (out / "loso" / name).stat().st_size > 0, name
    # every micro subject of the generated corpus was a fold, with predictions for exactly its own samples
    prepared = pd.read_csv(out / "prepared" / "prepared.csv")
    micro = prepared[prepared.kind == "micro"]
    planned = json.loads((out / "loso" / "loso.json").read_text())["planned_folds"]
    assert sorted(planned) == sorted(micro.subject.unique())
    preds = pd.concat(pd.read_csv(f) for f in (out / "loso" / "folds").rglob("predictions.csv"))
    assert sorted(preds.sample_id) == sorted(micro.sample_id)
    scores = json.loads((out / "loso" / "scores.json").read_text())
    assert scores  # machine-readable numbers exist
    assert (out / "pretrain" / "pretrained.pt").is_file() and (out / "prepared" / "preview.png").is_file()


def test_demo_config_quick_is_the_tiny_overlay(tmp_path):
    """`--quick` stacks conf/tiny.yaml on conf/demo.yaml; the run's own paths and explicit overrides still win."""
    full = demo_config(tmp_path, seed=3)
    quick = demo_config(tmp_path, quick=True, seed=3)
    assert (full.face.size, full.train.pretrain.epochs) == (112, 15)
    assert full.train.finetune.unfreeze == {0: "head", 2: "top1", 4: "all"}
    assert (quick.face.size, quick.data.image_size, quick.augment.max_shift) == (64, 64, 2)
    assert (quick.train.pretrain.epochs, quick.train.finetune.epochs) == (4, 3)
    assert quick.train.finetune.unfreeze == {0: "head", 1: "all"}  # replaced whole, not merged with demo's schedule
    assert (quick.svm.C, quick.svm.kernel) == ([1.0, 10.0], ["linear"])
    assert quick.model.backbone == full.model.backbone == "mobilevit_xxs"
    assert (quick.seed, quick.data.prepared, quick.out) == (3, str(tmp_path / "prepared"), str(tmp_path))
    assert quick.train.pretrain.lr == full.train.pretrain.lr == 0.01  # the rest is demo.yaml's
    assert demo_config(tmp_path, quick=True, overrides=["train.pretrain.epochs=2"]).train.pretrain.epochs == 2
