"""Report and comparison on synthetic LOSO run folders written the way `mer loso` writes them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mer.cli import app
from mer.errors import MerError
from mer.evaluation.compare import compare_runs
from mer.evaluation.megc_log import read_megc_log
from mer.evaluation.metrics import pooled_scores
from mer.evaluation.report import write_report
from mer.evaluation.runs import load_run
from tests.helpers import SECTIONS, SUBJECTS, make_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("run") / "demo_run")


@pytest.fixture(scope="module")
def report(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(run_dir, tmp_path_factory.mktemp("report"))


def test_report_has_every_section_and_file(report: Path) -> None:
    out = report.parent
    for name in ("report.md", "report.html", "confusion_matrix.png", "per_fold_accuracy.png", "megc_log.txt"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = report.read_text()
    assert md.startswith("# LOSO report: synthetic\n")
    for heading in SECTIONS:
        assert heading in md, heading
    assert "PARTIAL" not in md and "LEAKY" not in md
    # a synthetic run is not the MEGC2019 composite: its published figures are not shown, and the report says why
    assert "No published figure belongs to this protocol and sample set" in md and "FeatRef" not in md
    assert "MEGC2019 composite (composite LOSO, 442 samples of 68 subjects, classes megc3): " in md
    assert "![confusion matrices](confusion_matrix.png)" in md
    assert "seed: 0" in md and "backbone: mobilevit_xxs" in md  # the resolved config
    assert "Seed: 0" in md and "Git commit:" in md and "scikit-learn" in md  # provenance
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 2
    assert "<details><summary>config.yaml" in html
    for heading in SECTIONS:
        assert f"<h2>{heading[3:]}</h2>" in html


def test_report_numbers_are_the_pooled_ones(run_dir: Path, report: Path) -> None:
    run = load_run(run_dir)
    assert len(run.folds) == 6 and not run.partial and not run.leaky
    svm = pooled_scores(run.predictions, "svm_pred")
    soft = pooled_scores(run.predictions, "softmax_pred")
    saved = json.loads((report.parent / "scores.json").read_text())
    assert saved["scores"]["svm"]["composite"]["uf1"] == pytest.approx(svm["composite"]["uf1"])
    assert set(saved["scores"]["svm"]) == {"composite", "casme2", "samm", "smic"}
    md = report.read_text()
    for scope in ("composite", "casme2", "samm", "smic"):
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| {scope} |"))
        for value in (svm[scope]["accuracy"], svm[scope]["uar"], svm[scope]["uf1"], soft[scope]["uf1"]):
            assert f"{value:.4f}" in line
    # per-fold table: one row per fold with its seconds and SVM params
    for i, subject in enumerate(SUBJECTS):
        row = next(ln for ln in md.splitlines() if ln.startswith(f"| {subject} |"))
        assert f"{10.0 + i:.1f}" in row and "C=1, rbf, gamma=scale" in row
    assert "| 6 | 12.5 | 12.5 | 15.0 | 75.0 | 0:01:15 |" in md  # time per fold: count, mean, median, max, total


def test_megc_log_round_trips(run_dir: Path, report: Path) -> None:
    log = report.parent / "megc_log.txt"
    lines = [ln for ln in log.read_text().splitlines() if not ln.startswith("#")]
    assert [ln.split("\t")[0] for ln in lines] == SUBJECTS  # one line per fold, natural order
    assert lines[0].split("\t")[1].startswith("EP00_00:pred=")
    back = read_megc_log(log)
    preds = load_run(run_dir).predictions
    pd.testing.assert_frame_equal(
        back.reset_index(drop=True),
        preds[["fold", "sample_id", "svm_pred", "label"]].rename(columns={"svm_pred": "pred"}).reset_index(drop=True),
    )


def test_partial_run_is_stamped_and_names_missing_folds(tmp_path: Path) -> None:
    run = make_run(tmp_path / "partial", notes={"planned_folds": [*SUBJECTS, "smic/s3"]})
    (run / "folds" / "samm" / "007" / "metrics.json").unlink()  # killed while writing
    md = write_report(run).read_text()
    assert "[PARTIAL]" in md.splitlines()[0]
    assert "PARTIAL: 2 of 7 folds are missing (samm/007, smic/s3)" in md
    assert "## Missing folds" in md and "`smic/s3`" in md
    assert "Folds: 5 complete of 7 (PARTIAL)" in md
    saved = json.loads((run / "scores.json").read_text())
    assert saved["partial"] and saved["missing_folds"] == ["samm/007", "smic/s3"]
    assert saved["scores"]["svm"]["composite"]["n"] == len(load_run(run).predictions)


def test_started_fold_without_plan_counts_as_missing(tmp_path: Path) -> None:
    run = make_run(tmp_path / "started", subjects=SUBJECTS[:3])
    (run / "folds" / "smic" / "s1").mkdir(parents=True)  # fold folder created, nothing written yet
    loaded = load_run(run)
    assert loaded.missing == ["smic/s1"] and loaded.n_planned == 4


LEAKY_STUDY = {"method": "from-study", "study": "s", "objective": "leaky_loso", "inner_subjects": SUBJECTS}


def test_leaky_run_is_stamped_loudly(tmp_path: Path) -> None:
    run = make_run(tmp_path / "leaky", notes={"selection": LEAKY_STUDY})
    md = write_report(run).read_text()
    assert "[LEAKY]" in md.splitlines()[0]
    assert "> **LEAKY: model selection touched the LOSO test folds (study 's' scored its trials on plain LOSO" in md
    assert '<div class="banner leaky">' in (run / "report.html").read_text()
    run2 = make_run(tmp_path / "leaky2", notes={"leaky": True})
    assert not load_run(run2).leaky  # a flag is not a fact: only the selection record's subject sets count
    run2 = make_run(tmp_path / "leaky3", notes={"selection": {**LEAKY_STUDY, "objective": "inner_loso"}})
    assert load_run(run2).leaky  # its inner subjects include subjects this run tests
    (run2 / "loso.json").write_text('{"leaky": tru')  # a broken notes file must not lose the stamp silently
    with pytest.raises(MerError, match="loso.json: not valid JSON"):
        load_run(run2)


def test_softmax_only_run(tmp_path: Path) -> None:
    run = make_run(tmp_path / "softmax_only")
    for csv in (run / "folds").rglob("predictions.csv"):
        df = pd.read_csv(csv)
        df["svm_pred"] = None
        df.to_csv(csv, index=False)
    loaded = load_run(run)
    assert loaded.classifiers == ["softmax"] and loaded.headline == "softmax"
    md = write_report(run).read_text()
    assert "softmax UF1" in md and "SVM UF1" not in md


def test_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(MerError, match="run folder not found"):
        write_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MerError, match="no folds/ folder"):
        write_report(tmp_path / "empty")
    (tmp_path / "empty" / "folds" / "casme2" / "sub01").mkdir(parents=True)
    with pytest.raises(MerError, match="no complete fold .1 started"):
        write_report(tmp_path / "empty")
    run = make_run(tmp_path / "bad", subjects=SUBJECTS[:2])
    csv = run / "folds" / "casme2" / "sub02" / "predictions.csv"
    df = pd.read_csv(csv)
    df.drop(columns=["softmax_pred"]).to_csv(csv, index=False)
    with pytest.raises(MerError, match=r"sub02/predictions.csv: missing columns \['softmax_pred'\]"):
        write_report(run)
    df.assign(subject="casme2/sub01").to_csv(csv, index=False)
    with pytest.raises(MerError, match="not held out in this fold"):
        write_report(run)
    df.assign(label="neutral").to_csv(csv, index=False)
    with pytest.raises(MerError, match="column label has values \\['neutral'\\]"):
        write_report(run)


def test_duplicate_sample_across_folds_is_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path / "dup", subjects=SUBJECTS[:2])
    src = run / "folds" / "casme2" / "sub01"
    shutil.copytree(src, run / "folds" / "casme2" / "sub01_copy")
    meta = json.loads((src / "metrics.json").read_text())
    (run / "folds" / "casme2" / "sub01_copy" / "metrics.json").write_text(json.dumps({**meta, "fold": "copy"}))
    with pytest.raises(MerError, match="predicted in more than one fold"):
        load_run(run)


def test_compare_two_runs(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", seed=1, name="paper")
    b = make_run(tmp_path / "b", seed=2, name="resnet18", notes={"selection": LEAKY_STUDY})
    md_path = compare_runs([a, b], tmp_path / "cmp")
    md = md_path.read_text()
    assert md_path.name == "compare.md" and (tmp_path / "cmp" / "compare.html").is_file()
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert table["run"].tolist() == ["paper", "resnet18"]
    assert table["status"].tolist() == ["complete", "LEAKY"]
    for col in ("SVM acc", "SVM UAR", "SVM UF1", "softmax acc", "softmax UAR", "softmax UF1", "casme2 UF1", "smic UF1"):
        assert col in table.columns
    expected = pooled_scores(load_run(b).predictions, "svm_pred")
    assert table.loc[1, "SVM UF1"] == pytest.approx(expected["composite"]["uf1"])
    assert table.loc[1, "samm UF1"] == pytest.approx(expected["samm"]["uf1"])
    assert "LEAKY: run 'resnet18'" in md and "| paper |" in md
    assert table["seeds"].tolist() == [1, 1] and table["SVM UF1 sd"].isna().all()  # one seed each: no spread
    assert "paired test does not apply: different samples" in md  # make_run seeds 1 and 2 draw other samples
    # same config name twice: rows told apart by folder
    names = pd.read_csv(Path(compare_runs([a, a], tmp_path / "cmp2")).with_suffix(".csv"))["run"].tolist()
    assert len(set(names)) == 2


def test_methods_table_says_when_runs_are_on_unequal_sample_sets(tmp_path: Path) -> None:
    """Runs on different samples (146 vs 147 in the demo) are not set side by side silently."""
    a = make_run(tmp_path / "a", seed=1, name="paper")
    b = make_run(tmp_path / "b", seed=2, name="resnet18")
    compare_runs([a, b], tmp_path / "cmp", resamples=20)
    methods = json.loads((tmp_path / "cmp" / "compare.json").read_text())["methods"]
    n_a, n_b = len(load_run(a).predictions), len(load_run(b).predictions)
    assert [m["sample set"].split(":")[0] for m in methods] == ["A", "B"]
    assert methods[0]["sample set"].startswith(f"A: {n_a} samples") and methods[1]["sample set"].startswith(f"B: {n_b}")
    for m in methods:  # neither is the MEGC2019 composite, so the published figure is not comparable either
        assert "(not comparable: " in m["published (MEGC2019 composite)"]
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "UNEQUAL SAMPLES: these runs were scored on 2 different sample sets" in md
    compare_runs([a, a], tmp_path / "same", resamples=20)
    same = json.loads((tmp_path / "same" / "compare.json").read_text())["methods"]
    assert [m["sample set"][0] for m in same] == ["A", "A"]
    assert "UNEQUAL SAMPLES" not in (tmp_path / "same" / "compare.md").read_text()


def test_cli_report_and_compare(run_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(run_dir), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "report.md").is_file()
    result = runner.invoke(
        app, ["report", "--compare", str(run_dir), "--compare", str(run_dir), "--out", str(tmp_path / "c")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c" / "compare.md").is_file()


def test_every_headline_number_has_its_bootstrap_interval(run_dir: Path, report: Path) -> None:
    from mer.evaluation.bootstrap import bootstrap_intervals

    saved = json.loads((report.parent / "scores.json").read_text())
    preds = load_run(run_dir).predictions
    assert saved["bootstrap"] == {"resamples": 1000, "seed": 0, "level": 0.95, "unit": "subject",
                                  "stratified_by": "dataset", "interval": "percentile"}  # fmt: skip
    for clf, col in (("svm", "svm_pred"), ("softmax", "softmax_pred")):
        assert saved["intervals"][clf] == bootstrap_intervals(preds, col, 1000, 0)
    md = report.read_text()
    svm = saved["scores"]["svm"]["composite"]
    low, high = saved["intervals"]["svm"]["composite"]["uf1"]
    assert low <= svm["uf1"] <= high
    headline = next(ln for ln in md.splitlines() if ln.startswith("- Headline (SVM"))
    assert f"UF1 {svm['uf1']:.4f} [{low:.4f}, {high:.4f}]" in headline
    for scope in ("composite", "casme2", "samm", "smic"):
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| {scope} |"))
        lo, hi = saved["intervals"]["softmax"][scope]["uar"]
        assert f"{saved['scores']['softmax'][scope]['uar']:.4f} [{lo:.4f}, {hi:.4f}]" in line
    assert "## Uncertainty (bootstrap over subjects)" in md and "**SVM − softmax**" in md
    d = saved["svm_minus_softmax"]["composite"]["uf1"]
    assert d["diff"] == pytest.approx(svm["uf1"] - saved["scores"]["softmax"]["composite"]["uf1"])
    assert f"ΔUF1 {d['diff']:+.4f} [{d['low']:.4f}, {d['high']:.4f}]" in md


def test_report_without_resamples_has_no_intervals(run_dir: Path, tmp_path: Path) -> None:
    md = write_report(run_dir, tmp_path, resamples=0).read_text()
    saved = json.loads((tmp_path / "scores.json").read_text())
    assert saved["intervals"] == {} and saved["svm_minus_softmax"] is None
    assert "No bootstrap was run" in md and " [0." not in md.split("## Uncertainty")[0].split("## Scores")[1]


def _benchmark_sized(root: Path) -> Path:
    """A synthetic run over 68 subjects of CASME II / SAMM / SMIC with exactly 442 pooled samples."""
    subjects = [f"casme2/sub{i:02d}" for i in range(24)] + [f"samm/{i:03d}" for i in range(28)]
    subjects += [f"smic/s{i}" for i in range(16)]
    run = make_run(root, subjects=subjects)
    last = run / "folds" / subjects[-1] / "predictions.csv"
    total = sum(len(pd.read_csv(p)) for p in (run / "folds").rglob("predictions.csv"))
    frame = pd.read_csv(last)
    need = 442 - (total - len(frame))
    rows = [frame.iloc[k % len(frame)].to_dict() | {"sample_id": f"extra_{k:03d}"} for k in range(need)]
    pd.DataFrame(rows).to_csv(last, index=False)
    return run


def test_published_figures_only_beside_a_comparable_run(tmp_path: Path) -> None:
    from mer.evaluation.compare import MEGC2019_SET, PUBLISHED_FIGURES, not_comparable

    run = _benchmark_sized(tmp_path / "bench")
    md = write_report(run).read_text()
    for method in ("LBP-TOP", "Bi-WOOF", "OFF-ApexNet", "STSTNet", "RCN", "FeatRef", "0.7838", "0.8427"):
        assert method in md
    assert "protocol composite, classes megc3, 442 samples of 68 subjects" in md
    # the same predictions under another protocol (leave one dataset out) stand beside no published figure
    notes = json.loads((run / "loso.json").read_text()) if (run / "loso.json").is_file() else {}
    (run / "loso.json").write_text(json.dumps({**notes, "protocol": "lodo"}))
    md = write_report(run).read_text()
    assert "FeatRef" not in md and "protocol lodo, not composite" in md
    figure = PUBLISHED_FIGURES[0]
    assert not_comparable(figure, "composite", "megc3", set(MEGC2019_SET.datasets), 442, 68) == []
    assert not_comparable(figure, "composite", "cas3_4", {"casme2", "samm", "smic", "casme3a"}, 442, 68) == [
        "classes cas3_4, not megc3",
        "datasets casme2, casme3a, samm, smic, not casme2, samm, smic",
    ]
