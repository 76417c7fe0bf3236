"""Seeds, subject-level bootstrap intervals and paired comparisons: on synthetic run folders (tests/helpers.py
make_run), plus one tiny two-seed LOSO that really trains and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mer.cli import app
from mer.errors import MerError
from mer.evaluation.bootstrap import bootstrap_intervals, paired_difference, resample_weights, seed_spread
from mer.evaluation.compare import compare_runs
from mer.evaluation.metrics import pooled_scores
from mer.evaluation.report import write_report
from mer.evaluation.runs import is_multi_seed, load_seeds
from tests.helpers import CLASSES, SUBJECTS, all_predictions, make_prepared, make_run, tiny_config, write_prepared_dir


def predictions(n_subjects: int, accuracy: float, seed: int = 0, per_subject: int = 6) -> pd.DataFrame:
    """A pooled predictions table: `n_subjects` per dataset (casme2, samm), each prediction right with `accuracy`."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in ("casme2", "samm"):
        for s in range(n_subjects):
            for k in range(per_subject):
                label = CLASSES[k % 3]
                pred = label if rng.random() < accuracy else CLASSES[(k + 1 + rng.integers(2)) % 3]
                rows.append((d, f"{d}/s{s}", f"{d}_s{s}_{k}", label, pred))
    return pd.DataFrame(rows, columns=["dataset", "subject", "sample_id", "label", "svm_pred"])


def test_interval_contains_the_pooled_score_and_is_deterministic() -> None:
    df = predictions(8, 0.6)
    point = pooled_scores(df, "svm_pred")
    ci = bootstrap_intervals(df, "svm_pred", n_resamples=500, seed=3)
    assert set(ci) == {"composite", "casme2", "samm"}
    for scope in ci:
        for m in ("accuracy", "uar", "uf1"):
            low, high = ci[scope][m]
            assert low < point[scope][m] < high, (scope, m)
    assert ci == bootstrap_intervals(df, "svm_pred", n_resamples=500, seed=3)
    assert ci != bootstrap_intervals(df, "svm_pred", n_resamples=500, seed=4)


def test_interval_shrinks_with_more_subjects() -> None:
    widths = []
    for n in (4, 16, 64):
        low, high = bootstrap_intervals(predictions(n, 0.6, seed=n), "svm_pred", n_resamples=400)["composite"]["uf1"]
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    assert widths[2] < widths[0] / 2.5  # ~1/sqrt(subjects): 4 → 64 subjects should shrink it about fourfold


def test_resamples_draw_subjects_within_each_dataset() -> None:
    w = resample_weights(["casme2"] * 3 + ["samm"] * 5, n_resamples=200, seed=0)
    assert w.shape == (200, 8)
    assert (w[:, :3].sum(axis=1) == 3).all() and (w[:, 3:].sum(axis=1) == 5).all()
    assert (w == 0).any() and (w > 1).any()  # with replacement: some subjects left out, some drawn twice


def test_paired_difference_of_a_run_with_itself_is_zero_and_not_significant() -> None:
    df = predictions(6, 0.6)
    d = paired_difference(df, df, n_resamples=300)
    assert d["applies"]
    for m in ("accuracy", "uar", "uf1"):
        assert d["composite"][m] == {"diff": 0.0, "low": 0.0, "high": 0.0, "significant": False}


def test_clearly_better_run_is_significant_and_a_small_gap_is_not() -> None:
    good, bad = predictions(10, 0.9, seed=1), predictions(10, 0.35, seed=2)
    d = paired_difference(good, bad, n_resamples=500)["composite"]["uf1"]
    point = pooled_scores(good)["composite"]["uf1"] - pooled_scores(bad)["composite"]["uf1"]
    assert d["diff"] == pytest.approx(point) and d["low"] > 0 and d["significant"]
    # flip three predictions of one subject: a real but tiny difference, within subject-to-subject spread
    near = good.copy()
    idx = near.index[near["subject"] == "casme2/s0"][:3]
    near.loc[idx, "svm_pred"] = [CLASSES[(CLASSES.index(lab) + 1) % 3] for lab in near.loc[idx, "label"]]
    small = paired_difference(good, near, n_resamples=500)["composite"]["uf1"]
    assert small["diff"] > 0 and small["low"] <= 0 <= small["high"] and not small["significant"]


def test_paired_difference_needs_the_same_samples() -> None:
    d = paired_difference(predictions(5, 0.6), predictions(6, 0.6))
    assert not d["applies"] and "different samples (60 and 72, 60 shared)" in d["reason"]


# ---------------------------------------------------------------- multi-seed folders


def make_study(root: Path, seeds: list[int], shift: float = 0.0, name: str = "study") -> Path:
    """A `mer loso --seeds` folder: seeds.json and seed<k>/ runs on the same samples (make_run seed 0), with each
    seed's predictions redrawn from its own generator (right with probability 0.6 + shift)."""
    root.mkdir(parents=True)
    (root / "seeds.json").write_text(json.dumps({"name": name, "seeds": seeds}))
    for s in seeds:
        run = make_run(root / f"seed{s}", seed=0, name=f"{name}-seed{s}")
        rng = np.random.default_rng(100 + s)
        for csv in sorted((run / "folds").rglob("predictions.csv")):
            df = pd.read_csv(csv)
            for col, p in (("svm_pred", 0.6 + shift), ("softmax_pred", 0.45)):
                df[col] = np.where(rng.random(len(df)) < p, df["label"], rng.choice(CLASSES, size=len(df)))
            df.to_csv(csv, index=False)
    return root


def test_multi_seed_report_rows_and_mean_sd_by_hand(tmp_path: Path) -> None:
    study = make_study(tmp_path / "study", [0, 1, 2])
    assert is_multi_seed(study) and not is_multi_seed(study / "seed0")
    md = write_report(study, resamples=200).read_text()
    per_seed = [pooled_scores(all_predictions(study / f"seed{s}"), "svm_pred") for s in (0, 1, 2)]
    uf1 = np.array([p["composite"]["uf1"] for p in per_seed])
    samm_uar = np.array([p["samm"]["uar"] for p in per_seed])
    saved = json.loads((study / "scores.json").read_text())
    assert saved["multi_seed"] and saved["seeds"] == [0, 1, 2] and not saved["partial"]
    assert [saved["per_seed"][str(s)]["svm"]["composite"]["uf1"] for s in (0, 1, 2)] == pytest.approx(uf1)
    assert saved["mean"]["svm"]["composite"]["uf1"] == pytest.approx(uf1.mean())
    assert saved["sd"]["svm"]["composite"]["uf1"] == pytest.approx(uf1.std(ddof=1))
    assert saved["sd"]["svm"]["samm"]["uar"] == pytest.approx(samm_uar.std(ddof=1))
    low, high = saved["intervals"]["svm"]["composite"]["uf1"]
    assert low < uf1.mean() < high
    assert md.splitlines()[0] == "# LOSO report: study (3 seeds)"
    for s in (0, 1, 2):  # one row per seed with its own pooled composite UF1
        row = next(ln for ln in md.splitlines() if ln.startswith(f"| {s} | complete |"))
        assert f"{uf1[s]:.4f}" in row
    mean_row = next(ln for ln in md.splitlines() if ln.startswith("| **mean** |"))
    sd_row = next(ln for ln in md.splitlines() if ln.startswith("| **sd** |"))
    assert f"{uf1.mean():.4f}" in mean_row and f"{uf1.std(ddof=1):.4f}" in sd_row
    composite = next(ln for ln in md.splitlines() if ln.startswith("| composite |"))
    assert f"{uf1.mean():.4f} ± {uf1.std(ddof=1):.4f} [{low:.4f}, {high:.4f}]" in composite
    assert "**SVM − softmax**" in md and "## Per-seed reports" in md
    assert (study / "seed1" / "report.md").is_file() and (study / "report.html").is_file()


def test_missing_seed_stamps_partial_and_cli_reports_the_folder(tmp_path: Path) -> None:
    study = make_study(tmp_path / "study", [0, 1])
    (study / "seeds.json").write_text(json.dumps({"name": "study", "seeds": [0, 1, 2]}))
    loaded = load_seeds(study)
    assert loaded.seeds == [0, 1] and loaded.missing_seeds == [2] and loaded.partial
    result = CliRunner().invoke(app, ["report", str(study), "--resamples", "100"])
    assert result.exit_code == 0, result.output
    md = (study / "report.md").read_text()
    assert "[PARTIAL]" in md.splitlines()[0] and "seed(s) 2 not run yet" in md


def test_compare_seed_studies_paired_and_unpaired(tmp_path: Path) -> None:
    a = make_study(tmp_path / "a", [0, 1, 2], shift=0.3, name="strong")
    b = make_study(tmp_path / "b", [0, 1, 2], shift=-0.3, name="weak")
    single = make_run(tmp_path / "single", seed=5, name="other")  # other samples: no paired test
    md = compare_runs([a, b, a, single], tmp_path / "cmp", resamples=300).read_text()
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    spread = [seed_spread([load_seeds(a).runs[s].scores() for s in range(3)])]
    assert table.loc[0, "SVM UF1"] == pytest.approx(spread[0][0]["svm"]["composite"]["uf1"])
    assert table.loc[0, "SVM UF1 sd"] == pytest.approx(spread[0][1]["svm"]["composite"]["uf1"])
    assert table["seeds"].tolist() == [3, 3, 3, 1] and np.isnan(table.loc[3, "SVM UF1 sd"])
    pairs = json.loads((tmp_path / "cmp" / "compare.json").read_text())["paired"]
    by = {(p["A"], p["B"]): p for p in pairs}
    strong, weak = "strong (a)", "weak"
    assert by[(strong, weak)]["d_uf1"] > 0 and by[(strong, weak)]["uf1_significant"]
    itself = by[(strong, f"strong ({a})")]  # the same folder twice: a difference of exactly 0
    assert itself["d_uf1"] == 0.0 and not itself["uf1_significant"]
    assert not by[(strong, "other")]["applies"] and "paired test does not apply" in by[(strong, "other")]["note"]
    assert "## Paired differences (bootstrap over subjects)" in md and "not significant" in md
    assert " ± " in md


# ---------------------------------------------------------------- mer loso --seeds


def test_seeds_flag_becomes_loso_seeds_and_calls_run_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    import mer.evaluation.loso as loso
    import mer.evaluation.seeds as seeds

    calls: dict[str, tuple] = {}
    for module, name in ((seeds, "run_seeds"), (loso, "run_loso")):
        monkeypatch.setattr(module, name, lambda *a, _n=name, **k: calls.setdefault(_n, (a, k)))
    result = CliRunner().invoke(app, ["loso", "--seeds", "0,1,2", "--fold-index", "4", "loso.seeds=[9]"])
    assert result.exit_code == 0, result.output
    (cfg, out, pretrained), kwargs = calls.pop("run_seeds")
    assert cfg.loso.seeds == [0, 1, 2]  # the flag wins
    assert kwargs == {"fold_index": 4, "folds": None, "allow_mixed": False}
    assert not calls
    CliRunner().invoke(app, ["loso", "--fold-index", "1"])
    assert "run_loso" in calls and "run_seeds" not in calls  # no seeds: the plain run, as before


def test_seeds_flag_and_fold_index_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["loso", "--seeds", "0,x"])
    assert result.exit_code != 0 and "--seeds '0,x': give comma-separated integers" in str(result.exception)
    root = tmp_path / "prepared"
    prepared = write_prepared_dir(root, make_prepared(root, {s: "micro" for s in SUBJECTS[:3]}, per_class=1, size=32))
    from mer.evaluation.seeds import run_seeds, seed_config, study_seeds

    cfg = tiny_config(f"data.prepared={prepared}", "loso.seeds=[3, 4, 3]", "name=st")
    assert study_seeds(cfg) == [3, 4] and study_seeds(tiny_config("seed=7")) == [7]
    one = seed_config(cfg, 4)
    assert (one.seed, one.name, one.loso.seeds, one.logging.wandb_group) == (4, "st-seed4", [], "st")
    with pytest.raises(MerError, match=r"2 seeds × 3 folds are tasks 0..5 \(task = seed index · 3 \+ fold index\)"):
        run_seeds(cfg, tmp_path / "out", fold_index=6)
    make_run(tmp_path / "plain")
    with pytest.raises(MerError, match="holds a single-seed LOSO run"):
        run_seeds(cfg, tmp_path / "plain")


@pytest.mark.slow
def test_two_seed_loso_runs_reports_and_resumes_only_what_is_missing(tmp_path: Path) -> None:
    from mer.evaluation.seeds import run_seeds

    subjects = {f"{d}/s{i}": "micro" for d in ("casme2", "samm") for i in range(2)}
    root = tmp_path / "prepared"
    prepared = write_prepared_dir(root, make_prepared(root, subjects, per_class=2, size=32))
    cfg = tiny_config(f"data.prepared={prepared}", "loso.seeds=[0, 1]", "name=two", "data.image_size=32",
                      "face.size=32", "train.threads=1", "train.finetune.epochs=1", "train.finetune.val_subjects=0.0",
                      "train.finetune.unfreeze={0: all}", "svm.C=[1.0]")  # fmt: skip
    out = tmp_path / "out"
    run_seeds(cfg, out)
    saved = json.loads((out / "scores.json").read_text())
    assert saved["seeds"] == [0, 1] and not saved["partial"]
    folds = json.loads((out / "seed1" / "loso.json").read_text())["planned_folds"]
    assert folds == sorted(subjects)
    metrics = [json.loads((out / f"seed{s}" / "folds" / "casme2" / "s0" / "metrics.json").read_text()) for s in (0, 1)]
    assert metrics[1]["seed"] - metrics[0]["seed"] == 1  # each seed folder runs with cfg.seed = k
    first = {s: all_predictions(out / f"seed{s}") for s in (0, 1)}
    stamp = {p: p.stat().st_mtime_ns for p in (out / "seed0").rglob("*") if p.is_file()}
    for name in ("predictions.csv", "metrics.json"):
        (out / "seed1" / "folds" / "samm" / "s1" / name).unlink()  # seed 1 killed in its last fold
    (out / "scores.json").unlink()
    run_seeds(cfg, out)
    assert {p: p.stat().st_mtime_ns for p in (out / "seed0").rglob("*") if p.is_file() and p in stamp} == stamp
    pd.testing.assert_frame_equal(all_predictions(out / "seed1"), first[1])  # the rerun fold is the same
    assert json.loads((out / "scores.json").read_text())["mean"] == saved["mean"]
