"""End to end: `mer demo --quick` generates the corpus, prepares, pre-trains, runs every LOSO fold and reports."""

from __future__ import annotations

import json
from pathlib import Path

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
    run = out / "loso" / "seed0"  # --quick: one seed
    report = run / "report.md"
    assert str(report) in printed
    text = report.read_text()
    for section in SECTIONS:
        assert section in text, section
    assert "PARTIAL" not in text and "LEAKY" not in text
    for name in ("report.html", "confusion_matrix.png", "per_fold_accuracy.png", "megc_log.txt", "scores.json"):
        assert (run / name).stat().st_size > 0, name
    # every micro subject of the generated corpus was a fold, with predictions for exactly its own samples
    prepared = pd.read_csv(out / "prepared" / "prepared.csv")
    micro = prepared[prepared.kind == "micro"]
    planned = json.loads((run / "loso.json").read_text())["planned_folds"]
    assert sorted(planned) == sorted(micro.subject.unique())
    preds = pd.concat(pd.read_csv(f) for f in (run / "folds").rglob("predictions.csv"))
    assert sorted(preds.sample_id) == sorted(micro.sample_id)
    scores = json.loads((run / "scores.json").read_text())
    assert scores  # machine-readable numbers exist
    assert (out / "pretrain" / "pretrained.pt").is_file() and (out / "prepared" / "preview.png").is_file()
    # stage times, the seed table and the synthetic-data warning
    timings = json.loads((out / "demo_timings.json").read_text())
    assert {"corpus", "prepare", "pretrain", "loso 1 seed(s)", "final bundle"} <= set(timings["stages"])
    summary = (out / "demo_summary.md").read_text()
    assert "not comparable with published" in summary and "| mean |" in summary
    # ready to use: one test video per class of a held-out identity, each with what `mer predict` says beside the
    # truth (whatever it says), then a predict command that runs
    lines = [line for line in printed.splitlines() if line.strip()]
    command = lines[-1].split()
    assert command[:2] == ["mer", "predict"] and command[3] == "--model" and len(command) == 5
    video, bundle = command[2], command[4]
    assert video.endswith(".mp4") and Path(video).is_file() and (Path(bundle) / "bundle.json").is_file()
    marker = json.loads((out / "data" / "demo_corpus.json").read_text())
    held = [p["ident"] for p in marker["identities"] if p["role"] == "held_out"]
    heading = next(i for i, line in enumerate(lines) if line.startswith("test videos of held-out identity"))
    assert len(held) == 1 and f"identity {held[0]} " in lines[heading]
    rows = {}
    for line in lines[heading + 3 : heading + 6]:  # the table under its heading and separator
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[1]] = cells
    assert sorted(rows) == ["negative", "positive", "surprise"]
    for shows, cells in rows.items():
        assert cells[0].endswith(f"test_videos/{shows}.mp4") and Path(cells[0]).is_file()
        assert cells[2] in ("negative", "positive", "surprise") and cells[4] == ("yes" if cells[2] == shows else "no")
    right = sum(cells[2] == shows for shows, cells in rows.items())
    assert lines[heading + 6].startswith(f"{right} of 3 test videos predicted as the class they show")
    assert "| shows | predicted |" in summary
    assert held[0] not in {s["identity"] for s in marker["samples"]}  # the video's person is in no dataset
    result_file = tmp_path / "predict.json"
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", video, "--model", bundle, "--json", str(result_file)])
    assert exit_info.value.code in (0, None)
    result = json.loads(result_file.read_text())
    assert result["label"] in ("negative", "positive", "surprise") and result["frames_with_face"] > 30


def test_demo_config_quick_is_the_tiny_overlay(tmp_path):
    """`--quick` stacks conf/tiny.yaml on conf/demo.yaml; the run's own paths and explicit overrides still win."""
    full = demo_config(tmp_path, seed=3)
    quick = demo_config(tmp_path, quick=True, seed=3)
    assert (full.face.size, full.train.pretrain.epochs) == (64, 15)
    assert full.train.finetune.unfreeze == {0: "head", 1: "top1", 2: "all"}
    assert (quick.face.size, quick.data.image_size, quick.augment.max_shift) == (64, 64, 2)
    assert (quick.train.pretrain.epochs, quick.train.finetune.epochs) == (4, 3)
    assert quick.train.finetune.unfreeze == {0: "head", 1: "all"}  # replaced whole, not merged with demo's schedule
    assert (quick.svm.C, quick.svm.kernel) == ([1.0, 10.0], ["linear"])
    assert quick.model.backbone == full.model.backbone == "mobilevit_xxs"
    assert (quick.seed, quick.data.prepared, quick.out) == (3, str(tmp_path / "prepared"), str(tmp_path))
    assert quick.train.pretrain.lr == full.train.pretrain.lr == 0.002  # the rest is demo.yaml's
    assert demo_config(tmp_path, quick=True, overrides=["train.pretrain.epochs=2"]).train.pretrain.epochs == 2
