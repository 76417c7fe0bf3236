"""Comparison: published MEGC2019 results beside a run, and several runs side by side (`mer report --compare`).

`compare_runs` has the shape of Table 2 in Liu et al. 2022: rows are runs, columns composite accuracy/UAR/UF1 per
classifier (mean ± sd over a run's seeds), then UF1/UAR per dataset, and the paired difference of every two runs
on the same samples with its bootstrap interval over subjects: compare.md, compare.html, compare.csv, compare.json.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from mer import class_schemes
from mer.errors import MerError
from mer.evaluation.bootstrap import KEY, RESAMPLES, SEED, bootstrap_intervals, paired_difference, seed_spread
from mer.evaluation.metrics import COMPOSITE
from mer.evaluation.render import Document
from mer.evaluation.run_folder import CLASSIFIER_NAMES, CLASSIFIERS
from mer.evaluation.runs import RunResults, SeedRuns, load_seeds
from mer.evaluation.selection import describe
from mer.files import atomic_write_json, atomic_write_text, natural_key

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
# model.backbone → (method, its published MEGC2019 composite figure); timm backbones are the paper's recipe.
PUBLISHED_BY_BACKBONE: dict[str, tuple[str, str]] = {
    "lbptop": ("LBP-TOP + SVM (MEGC2019 baseline)", "UF1 0.5882 / UAR 0.5785"),
    "ststnet": ("STSTNet (Liong et al. 2019)", "UF1 0.7353 / UAR 0.7605"),
    "off_apexnet": ("OFF-ApexNet (Gan et al. 2019)", "UF1 0.7196 / UAR 0.7096"),
}
FIGURE_BY_BACKBONE = {"lbptop": "LBP-TOP", "ststnet": "STSTNet", "off_apexnet": "OFF-ApexNet"}  # → PUBLISHED_FIGURES
PAPER_FIGURE = "Liu et al. 2022"
PAPER_METHOD = ("Liu et al. 2022 recipe", f"accuracy {PAPER_ACCURACY:.4f} (no composite UF1 / UAR published)")
MEGC2019_SAMPLES = 442
MEGC2019_SUBJECTS = 68


class SampleSet(NamedTuple):
    """The samples a published figure was measured on: datasets, class scheme, sample and subject counts."""

    name: str
    datasets: frozenset[str]
    classes: str
    samples: int
    subjects: int


class Published(NamedTuple):
    """A published figure with the protocol and sample set it belongs to (shown only beside a comparable run)."""

    method: str
    uf1: float | None
    uar: float | None
    accuracy: float | None
    protocol: str
    sample_set: SampleSet
    source: str


MEGC2019_SET = SampleSet(
    "MEGC2019 composite", frozenset({"casme2", "samm", "smic"}), "megc3", MEGC2019_SAMPLES, MEGC2019_SUBJECTS
)
PUBLISHED_FIGURES: tuple[Published, ...] = (
    *(Published(m, uf1, uar, None, "composite", MEGC2019_SET, "MEGC2019 composite") for m, uf1, uar in PUBLISHED),
    Published("Liu et al. 2022", None, None, PAPER_ACCURACY, "composite", MEGC2019_SET, "paper"),
)


def not_comparable(
    figure: Published, protocol: str, classes: str, datasets: set[str], samples: int, subjects: int
) -> list[str]:
    """Why a run (its protocol, class scheme, datasets and pooled sample / subject counts) cannot stand beside a
    published figure; [] when it can."""
    want = figure.sample_set
    reasons = []
    if protocol != figure.protocol:
        reasons.append(f"protocol {protocol}, not {figure.protocol}")
    if classes != want.classes:
        reasons.append(f"classes {classes}, not {want.classes}")
    if set(datasets) != set(want.datasets):
        reasons.append(f"datasets {', '.join(sorted(datasets))}, not {', '.join(sorted(want.datasets))}")
    if (samples, subjects) != (want.samples, want.subjects):
        reasons.append(f"{samples} samples of {subjects} subjects, not {want.samples} of {want.subjects}")
    return reasons


def sample_set(predictions: pd.DataFrame) -> tuple[int, int]:
    """(samples, subjects) one run pooled."""
    return len(predictions), predictions[["dataset", "subject"]].drop_duplicates().shape[0]


def run_facts(run: RunResults) -> tuple[str, str, set[str], int, int]:
    """(protocol, class scheme, datasets, samples, subjects) of a run: what `not_comparable` holds against a figure."""
    protocol = str(run.notes.get("protocol") or (run.config.get("loso") or {}).get("protocol") or "composite")
    try:
        scheme = class_schemes.scheme_of((run.config.get("data") or {}).get("classes") or class_schemes.DEFAULT)
    except ValueError:
        scheme = "?"
    return protocol, scheme, set(run.predictions["dataset"].astype(str)), *sample_set(run.predictions)


def sample_set_names(runs: list[SeedRuns]) -> list[str]:
    """A letter per run naming its sample set (the (dataset, subject, sample_id) keys of its first seed): runs with
    the same letter were scored on the same samples, runs with different letters were not."""
    sets: list[frozenset] = []
    names = []
    for run in runs:
        keys = frozenset(map(tuple, run.runs[0].predictions[KEY].astype(str).to_numpy().tolist()))
        if keys not in sets:
            sets.append(keys)
        names.append(chr(ord("A") + sets.index(keys)) if len(sets) <= 26 else str(sets.index(keys) + 1))
    return names


def comparison_table(
    scores: dict[str, dict[str, dict[str, Any]]], run_label: str, figures: tuple[Published, ...] = PUBLISHED_FIGURES
) -> pd.DataFrame:
    """The published `figures` (default: all), then one bold row per classifier of `scores` (composite UF1, UAR,
    accuracy)."""
    rows: list[dict[str, Any]] = [
        {"method": f.method, "UF1": f.uf1, "UAR": f.uar, "accuracy": f.accuracy, "source": f.source} for f in figures
    ]
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


def _labels(runs: list[SeedRuns]) -> list[str]:
    """Run names, told apart by folder when two runs share one."""
    names = [r.name for r in runs]
    labels: list[str] = []
    for r in runs:
        label = r.name
        if names.count(r.name) > 1:
            label = f"{r.name} ({r.run_dir.name})"
        if label in labels:
            label = f"{r.name} ({r.run_dir})"
        labels.append(label)
    return labels


def _spread_text(mean: float | None, sd: float | None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.4f}" + (f" ± {sd:.4f}" if sd is not None else "")


def paired_rows(
    runs: list[SeedRuns], labels: list[str], resamples: int = RESAMPLES, seed: int = SEED
) -> list[dict[str, Any]]:
    """Every pair of runs (i < j): composite ΔUF1 and ΔUAR (A − B, headline classifiers, seed means) with their
    paired bootstrap interval over subjects and the verdict; pairs on different samples say the test does not apply.
    """
    rows = []
    for i, j in combinations(range(len(runs)), 2):
        a, b = runs[i], runs[j]
        diff = paired_difference(a.frames(), b.frames(), CLASSIFIERS[a.headline], CLASSIFIERS[b.headline],
                                 resamples, seed, classes=a.runs[0].classes)  # fmt: skip
        row: dict[str, Any] = {"A": labels[i], "B": labels[j], "classifiers":
                               f"{CLASSIFIER_NAMES[a.headline]} vs {CLASSIFIER_NAMES[b.headline]}"}  # fmt: skip
        if not diff["applies"]:
            row.update({"applies": False, "note": f"paired test does not apply: {diff['reason']}"})
        else:
            row["applies"] = True
            for m in ("uf1", "uar", "accuracy"):
                d = diff[COMPOSITE][m]
                row.update({f"d_{m}": d["diff"], f"d_{m}_low": d["low"], f"d_{m}_high": d["high"],
                            f"{m}_significant": d["significant"]})  # fmt: skip
            row["note"] = ""
        rows.append(row)
    return rows


def _paired_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    shown = []
    for r in rows:
        entry = {"A − B": f"{r['A']} − {r['B']}", "classifiers": r["classifiers"]}
        if not r["applies"]:
            entry.update({"ΔUF1 [95 % CI]": r["note"], "UF1 verdict": "—", "ΔUAR [95 % CI]": "—", "UAR verdict": "—"})
        else:
            for label, m in (("UF1", "uf1"), ("UAR", "uar")):
                entry[f"Δ{label} [95 % CI]"] = f"{r[f'd_{m}']:+.4f} [{r[f'd_{m}_low']:.4f}, {r[f'd_{m}_high']:.4f}]"
                entry[f"{label} verdict"] = "significant" if r[f"{m}_significant"] else "not significant"
        shown.append(entry)
    return pd.DataFrame(shown)


def method_rows(
    runs: list[SeedRuns], labels: list[str], resamples: int = RESAMPLES, seed: int = SEED
) -> list[dict[str, Any]]:
    """One row per run: method (backbone), input, its sample set (a letter shared by runs on the same samples, the
    samples and subjects), headline UF1 / UAR mean ± sd over seeds with the bootstrap interval over subjects (of the
    seed mean), how its hyper-parameters were chosen, and the method's published figure, with why it is not
    comparable when the run's protocol or sample set differs (`not_comparable`, as the single-run report checks)."""
    rows = []
    for label, run, set_name in zip(labels, runs, sample_set_names(runs), strict=True):
        model, data = run.config.get("model") or {}, run.config.get("data") or {}
        backbone = str(model.get("backbone", "?"))
        method, published = PUBLISHED_BY_BACKBONE.get(backbone, (f"{PAPER_METHOD[0]} ({backbone})", PAPER_METHOD[1]))
        mode = str(data.get("input", "apex"))
        if backbone == "lbptop":
            mode = "onset..offset clip (LBP-TOP)"
        elif mode in ("flow", "flow_strain"):
            mode = f"{mode} ({data.get('flow_method', 'farneback')})"
        mean, sd = seed_spread([r.scores() for r in run.runs])
        clf = run.headline
        ci = bootstrap_intervals(run.frames(), CLASSIFIERS[clf], resamples, seed, classes=run.runs[0].classes)
        n, subjects = sample_set(run.runs[0].predictions)
        row: dict[str, Any] = {"run": label, "method": method, "input": mode, "classifier": CLASSIFIER_NAMES[clf],
                               "seeds": len(run.seeds)}  # fmt: skip
        row["sample set"] = f"{set_name}: {n} samples, {subjects} subjects"
        for name, m in (("UF1", "uf1"), ("UAR", "uar")):
            mu, sigma = mean[clf][COMPOSITE][m], sd[clf][COMPOSITE][m]
            low, high = ci[COMPOSITE][m]
            row[name] = _spread_text(mu, sigma)
            row[f"{name} 95 % CI"] = "—" if low is None else f"[{low:.4f}, {high:.4f}]"
        notes = run.runs[0].notes
        row["hyper-parameters"] = describe(notes.get("selection"))
        if (notes.get("pretrained_selection") or {}).get("method") not in (None, "fixed"):
            row["hyper-parameters"] += f"; pre-trained weights: {describe(notes['pretrained_selection'])}"
        figure = next(f for f in PUBLISHED_FIGURES if f.method == FIGURE_BY_BACKBONE.get(backbone, PAPER_FIGURE))
        why = not_comparable(figure, *run_facts(run.runs[0]))  # the single-run report's check
        row["published (MEGC2019 composite)"] = published + (f" (not comparable: {'; '.join(why)})" if why else "")
        rows.append(row)
    return rows


def compare_runs(run_dirs: list[Path], out: Path, *, resamples: int = RESAMPLES, seed: int = SEED) -> Path:
    """Side-by-side table of several runs (rows = runs, columns = composite acc/UAR/UF1 for SVM and softmax as
    mean ± sd over each run's seeds, then UF1/UAR per dataset for each run's headline classifier), then the paired
    difference of every two runs on the same samples with its bootstrap interval over subjects: compare.md,
    compare.html, compare.csv (means and sds) and compare.json (the differences). Returns the compare.md path.
    """
    if not run_dirs:
        raise MerError("give at least one run folder to compare (mer report --compare DIR1 --compare DIR2)")
    runs = [load_seeds(d) for d in run_dirs]
    labels = _labels(runs)

    rows, shown_rows = [], []
    datasets: list[str] = []
    for label, run in zip(labels, runs, strict=True):
        mean, sd = seed_spread([r.scores() for r in run.runs])
        row: dict[str, Any] = {
            "run": label,
            "status": " / ".join(run.stamps) or "complete",
            "seeds": len(run.seeds),
            "folds": f"{sum(len(r.folds) for r in run.runs)}/{sum(r.n_planned for r in run.runs)}",
            "n": len(run.runs[0].predictions),
            "classifier": CLASSIFIER_NAMES[run.headline],
        }
        shown = dict(row)
        for clf, name in CLASSIFIER_NAMES.items():
            for label_m, m in (("acc", "accuracy"), ("UAR", "uar"), ("UF1", "uf1")):
                mu = mean.get(clf, {}).get(COMPOSITE, {}).get(m)
                sigma = sd.get(clf, {}).get(COMPOSITE, {}).get(m)
                row[f"{name} {label_m}"], row[f"{name} {label_m} sd"] = mu, sigma
                shown[f"{name} {label_m}"] = _spread_text(mu, sigma)
        for scope, s in mean[run.headline].items():
            if scope == COMPOSITE:
                continue
            if scope not in datasets:
                datasets.append(scope)
            for label_m, m in (("UF1", "uf1"), ("UAR", "uar")):
                row[f"{scope} {label_m}"], row[f"{scope} {label_m} sd"] = s[m], sd[run.headline][scope][m]
                shown[f"{scope} {label_m}"] = _spread_text(s[m], sd[run.headline][scope][m])
        rows.append(row)
        shown_rows.append(shown)
    columns = ["run", "status", "seeds", "folds", "n", "classifier"]
    metric_cols = [f"{name} {m}" for name in CLASSIFIER_NAMES.values() for m in ("acc", "UAR", "UF1")]
    for d in sorted(datasets, key=natural_key):
        metric_cols += [f"{d} UF1", f"{d} UAR"]
    table = pd.DataFrame(rows).reindex(columns=columns + [c for m in metric_cols for c in (m, f"{m} sd")])
    shown_table = pd.DataFrame(shown_rows).reindex(columns=columns + metric_cols).fillna("—")
    pairs = paired_rows(runs, labels, resamples, seed) if resamples > 0 else []
    methods = method_rows(runs, labels, resamples, seed) if resamples > 0 else []

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "compare.csv", table.to_csv(index=False))
    atomic_write_json(out / "compare.json", {"runs": rows, "methods": methods, "paired": pairs,
                                             "resamples": resamples, "seed": seed})  # fmt: skip
    doc = Document("LOSO run comparison")
    for label, run in zip(labels, runs, strict=True):
        if run.leaky:
            doc.banner(f"LEAKY: run '{label}' selected its model on the LOSO test folds; its numbers are optimistic.",
                       "leaky")  # fmt: skip
        if run.mixed:
            doc.banner(f"MIXED: run '{label}' pools folds made under {len(run.regime_groups)} regimes (code, package "
                       "versions or numerics); see its report's Provenance.", "partial")  # fmt: skip
        if run.partial:
            missing = sum(len(r.missing) for r in run.runs)
            doc.banner(f"PARTIAL: run '{label}' has {missing} fold(s) and {len(run.missing_seeds)} seed(s) missing.",
                       "partial")  # fmt: skip
    doc.para(
        "Composite and per-dataset scores pool the predictions of all complete folds (MEGC2019 protocol), per seed; "
        "a run of several seeds shows mean ± sd over its seeds (sample sd). Per-dataset columns use each run's "
        "headline classifier (`classifier`)."
    )
    doc.heading("Methods")
    sets = sample_set_names(runs)
    if len(set(sets)) > 1:
        shown_sets = ", ".join(f"'{label}' {name} ({sample_set(run.runs[0].predictions)[0]} samples)"
                               for label, run, name in zip(labels, runs, sets, strict=True))  # fmt: skip
        doc.banner(f"UNEQUAL SAMPLES: these runs were scored on {len(set(sets))} different sample sets ({shown_sets}); "
                   "rows with different letters in `sample set` are not directly comparable and are not paired "
                   "below.", "partial")  # fmt: skip
    if methods:
        doc.para(
            "One row per run: its method and input, the headline classifier's composite UF1 and UAR (mean ± sd over "
            "seeds), the 95 % bootstrap interval over subjects of the seed mean, how the hyper-parameters were "
            "chosen, and the method's published MEGC2019 composite figure (442 samples, 68 subjects: comparable "
            "only on that sample set)."
        )
        doc.table(pd.DataFrame(methods))
    else:
        doc.para("Not computed (`--resamples 0`).")
    doc.heading("Runs")
    doc.table(shown_table)
    doc.heading("Paired differences (bootstrap over subjects)")
    if pairs:
        doc.para(
            f"A − B on the same samples: each of {resamples} resamples (seed {seed}) draws the test subjects with "
            "replacement within each dataset and scores both runs (their seed means) on them; the interval is the "
            "95 % percentile interval of the difference. An interval that contains 0 is **not significant**: the "
            "difference is within what the choice of test subjects alone can produce. Runs on different samples "
            "cannot be paired."
        )
        doc.table(_paired_table(pairs))
    else:
        doc.para("Nothing to pair (one run, or `--resamples 0`).")
    doc.heading("Published (MEGC2019 composite)")
    doc.table(comparison_table({}, "")[["method", "UF1", "UAR", "accuracy", "source"]])
    doc.heading("Run folders")
    doc.bullets([f"{label}: `{run.run_dir}`" for label, run in zip(labels, runs, strict=True)])
    md_path = out / "compare.md"
    doc.write(md_path, out / "compare.html")
    return md_path
