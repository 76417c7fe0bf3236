"""End to end: `mer demo --quick` generates the corpus, prepares, pre-trains, runs every LOSO fold and reports."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mer.cli import main
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
