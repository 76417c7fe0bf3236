"""`mer spot --data`: both spotters on the demo's long videos, subject-wise; the command's user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mer.cli import main
from mer.demo import generate_corpus
from mer.spotting.datasets import report_text
from mer.spotting.evaluate import PUBLISHED, LearnedConfig


def _spot(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["spot", *args])
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give a VIDEO (or a frames folder), or --data NAME=ROOT"),
        (["--data", "casme_sq"], "--data 'casme_sq': use NAME=ROOT"),
        (["video.mp4", "--data", "casme_sq=/x"], "give a VIDEO or --data NAME=ROOT, not both"),
        (["--data", "casme2=/x"], "unknown long-video dataset 'casme2'"),
        (["--data", "casme_sq=/x", "--pretrained", "w.pt"], "give --recognise too"),
        (["video.mp4", "--recognise", "method/lbptop"], "--recognise is for dataset mode"),
    ],
)
def test_dataset_mode_user_errors_are_one_line(capsys, tmp_path: Path, args: list[str], message: str) -> None:
    code, _, err = _spot(capsys, *args, "--out", str(tmp_path / "o"))
    assert code == 2 and message in err and err.count("\n") == 1


@pytest.mark.slow
def test_both_spotters_on_the_demo_long_videos(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = generate_corpus(tmp_path / "data", seed=0, quick=True)
    import mer.spotting.datasets as datasets

    original = datasets.run_spot_datasets

    def short(*args, **kwargs):  # a short training keeps the test in budget
        return original(*args, **{**kwargs, "learned": LearnedConfig(epochs=10), "n_resamples": 100})

    monkeypatch.setattr(datasets, "run_spot_datasets", short)
    out = tmp_path / "spot"
    args = ["--data", f"casme_sq={corpus.long_roots['casme_sq']}", "--data", f"samm_lv={corpus.long_roots['samm_lv']}"]
    code, stdout, _ = _spot(capsys, *args, "--out", str(out), "--seeds", "2", "--recognise", "method/lbptop")
    assert code == 0
    text = (out / "spot_report.md").read_text()
    assert "Synthetic data" in text and "context only" not in text  # demo numbers are never put beside published ones
    # STR: CAS(ME)^2's sheet has classes, SAMM-LV's has none
    assert "## Spot-then-recognize (STR)" in text and "| casme_sq | learned | lbptop | 2 | ME |" in text
    assert "| samm_lv | – | – | – | – | no interval of the sheet has an emotion class" in text
    scores = json.loads((out / "spot_scores.json").read_text())
    assert set(scores) == {"casme_sq", "samm_lv"}
    assert scores["casme_sq"]["learned"]["seeds"] == [0, 1] and scores["casme_sq"]["baseline"]["seeds"] == [0]
    for name in scores:
        for spotter in ("baseline", "learned"):
            s = scores[name][spotter]["summary"]["overall"]
            low, high = scores[name][spotter]["bootstrap"]["overall"]
            assert 0.0 <= low <= high <= 1.0 and 0.0 <= s["f1"] <= 1.0
            predictions = pd.read_csv(out / f"predictions_{name}_{spotter}.csv")
            assert set(predictions["kind"]) <= {"ME", "MaE"} and "label" in predictions
    for spotter in ("baseline", "learned"):
        run = scores["casme_sq"][spotter]["str"]
        for seed in run["seeds"]:  # every fold's recogniser was trained on the other subjects only
            folds = run["recognisers"][str(seed)]
            assert len(folds) == scores["casme_sq"]["subjects"]
            assert all(held_out not in info["subjects"] and info["subjects"] for held_out, info in folds.items())
        me = run["scores"]["ME"]
        assert 0.0 <= me["bootstrap"]["strs"][0] <= me["bootstrap"]["strs"][1] <= 1.0
        for row in me["per_seed"]:
            assert row["strs"] == pytest.approx(row["f1_spot"] * row["f1_analysis"])
    assert "str" not in scores["samm_lv"]["learned"]
    assert set(pd.read_csv(out / "predictions_casme_sq_learned.csv")["label"].dropna()) <= {
        "negative", "positive", "surprise"}  # fmt: skip
    # a rerun reuses the cached features (no second extraction)
    cached = sorted((out / "features").glob("*.pkl"))
    assert len(cached) == 4
    stamps = [p.stat().st_mtime_ns for p in cached]
    code, stdout, _ = _spot(capsys, *args, "--out", str(out), "--seeds", "1", "--recognise", "method/lbptop")
    assert code == 0 and "folds already complete" in stdout  # and the folds of seed 0 too (mer/spotting/run_folder.py)
    assert [p.stat().st_mtime_ns for p in cached] == stamps
    code, _, err = _spot(capsys, *args, "--out", str(out), "--seeds", "1")  # without STR: other inputs, refused
    assert code == 2 and "settings.recognise" in err and err.count("\n") == 1


def test_report_puts_published_baselines_beside_real_data_only() -> None:
    run = {"seeds": [0], "summary": {k: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "f1_sd": None}
                                     for k in ("ME", "MaE", "overall")},
           "bootstrap": {k: [0.4, 0.6] for k in ("ME", "MaE", "overall")}, "chosen": {0: {"s1": 0.3}}}  # fmt: skip
    learned = {**run, "chosen": {0: {"s1": {"thresholds": {"ME": 0.5, "MaE": 0.4}}}}}
    results = {"casme_sq": {"videos": 1, "subjects": 1, "truth": {"ME": 1, "MaE": 1}, "baseline": run,
                            "learned": learned}}  # fmt: skip
    real = report_text(results)
    assert "MEGC2020 baseline, published (context only)" in real
    assert f"{PUBLISHED['casme_sq']['overall']:.4f}" in real
    assert "context only" not in report_text(results, synthetic=True)
