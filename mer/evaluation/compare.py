"""Comparison: published MEGC2019 results beside a run, and several runs side by side (`mer report --compare`).

`compare_runs` has the shape of Table 2 in Liu et al. 2022: rows are runs, columns composite accuracy/UAR/UF1 per
classifier, then UF1/UAR per dataset, written as compare.md, compare.html and compare.csv.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mer.errors import MerError
from mer.evaluation.metrics import COMPOSITE
from mer.evaluation.render import Document
from mer.evaluation.runs import CLASSIFIER_NAMES, load_run
from mer.files import atomic_write_text, natural_key

# MEGC2019 composite (CASME II + SAMM + SMIC-HS, 442 samples, 68 subjects), LOSO: (method, UF1, UAR).
PUBLISHED: tuple[tuple[str, float, float], ...] = (
    ("LBP-TOP", 0.5882, 0.5785),
    ("Bi-WOOF", 0.6296, 0.6227),
    ("OFF-ApexNet", 0.7196, 0.7096),
    ("STSTNet", 0.7353, 0.7605),
    ("RCN", 0.7432, 0.7190),
    ("FeatRef", 0.7838, 0.7832),
)
PAPER_ACCURACY = 0.8427  # Liu et al. 2022, Front. Neurorobot. 16:922761 (composite accuracy)
MEGC2019_SAMPLES = 442
MEGC2019_SUBJECTS = 68


def comparison_table(scores: dict[str, dict[str, dict[str, Any]]], run_label: str) -> pd.DataFrame:
    """Published rows, then one bold row per classifier of `scores` (composite UF1, UAR, accuracy)."""
    rows: list[dict[str, Any]] = [
        {"method": m, "UF1": uf1, "UAR": uar, "accuracy": None, "source": "MEGC2019 composite"}
        for m, uf1, uar in PUBLISHED
    ]
    rows.append({"method": "Liu et al. 2022", "UF1": None, "UAR": None, "accuracy": PAPER_ACCURACY, "source": "paper"})
    for clf, pooled in scores.items():
        comp = pooled[COMPOSITE]
        rows.append(
            {
                "method": f"**{run_label} ({CLASSIFIER_NAMES[clf]})**",
                "UF1": comp["uf1"],
                "UAR": comp["uar"],
                "accuracy": comp["accuracy"],
                "source": "this run",
            }
        )
    return pd.DataFrame(rows)


def compare_runs(run_dirs: list[Path], out: Path) -> Path:
    """Side-by-side table of several runs (rows = runs, columns = composite acc/UAR/UF1 for SVM and softmax,
    then UF1/UAR per dataset for each run's headline classifier): compare.md, compare.html, compare.csv.
    Returns the compare.md path.
    """
    if not run_dirs:
        raise MerError("give at least one run folder to compare (mer report --compare DIR1 --compare DIR2)")
    runs = [load_run(d) for d in run_dirs]
    names = [r.name for r in runs]
    labels = []
    for r in runs:
        label = r.name
        if names.count(r.name) > 1:
            label = f"{r.name} ({r.run_dir.name})"
        if label in labels:
            label = f"{r.name} ({r.run_dir})"
        labels.append(label)

    rows = []
    datasets: list[str] = []
    for label, run in zip(labels, runs, strict=True):
        scores = run.scores()
        row: dict[str, Any] = {
            "run": label,
            "status": " / ".join(run.stamps) or "complete",
            "folds": f"{len(run.folds)}/{run.n_planned}",
            "n": len(run.predictions),
            "classifier": CLASSIFIER_NAMES[run.headline],
        }
        for clf, name in CLASSIFIER_NAMES.items():
            comp = scores[clf][COMPOSITE] if clf in scores else {}
            row[f"{name} acc"] = comp.get("accuracy")
            row[f"{name} UAR"] = comp.get("uar")
            row[f"{name} UF1"] = comp.get("uf1")
        for scope, s in scores[run.headline].items():
            if scope == COMPOSITE:
                continue
            if scope not in datasets:
                datasets.append(scope)
            row[f"{scope} UF1"] = s["uf1"]
            row[f"{scope} UAR"] = s["uar"]
        rows.append(row)
    columns = ["run", "status", "folds", "n", "classifier"]
    columns += [f"{name} {m}" for name in CLASSIFIER_NAMES.values() for m in ("acc", "UAR", "UF1")]
    for d in sorted(datasets, key=natural_key):
        columns += [f"{d} UF1", f"{d} UAR"]
    table = pd.DataFrame(rows).reindex(columns=columns)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "compare.csv", table.to_csv(index=False))
    doc = Document("LOSO run comparison")
    for label, run in zip(labels, runs, strict=True):
        if run.leaky:
            doc.banner(f"LEAKY: run '{label}' selected its model on the LOSO test folds; its numbers are optimistic.",
                       "leaky")  # fmt: skip
        if run.partial:
            doc.banner(f"PARTIAL: run '{label}' has {len(run.missing)} of {run.n_planned} folds missing.", "partial")
    doc.para(
        "Composite and per-dataset scores pool the predictions of all complete folds (MEGC2019 protocol). "
        "Per-dataset columns use each run's headline classifier (`classifier`)."
    )
    doc.heading("Runs")
    doc.table(table)
    doc.heading("Published (MEGC2019 composite)")
    doc.table(comparison_table({}, "")[["method", "UF1", "UAR", "accuracy", "source"]])
    doc.heading("Run folders")
    doc.bullets([f"{label}: `{run.run_dir}`" for label, run in zip(labels, runs, strict=True)])
    md_path = out / "compare.md"
    doc.write(md_path, out / "compare.html")
    return md_path
