"""The LOSO report of one run folder: pooled MEGC metrics as `report.md` + `report.html`, plots, a MEGC log.

`write_run_report` reads the run (`mer.evaluation.runs.load_run`), then adds one section after another to a
`Document` (rendered to Markdown and to a self-contained HTML page). A report is stamped PARTIAL when folds are
missing, LEAKY when model selection touched the test folds and MIXED when its folds ran under different regimes
(code, package versions, resolved numerics; each regime is listed with its folds). Every headline number carries a
95 % bootstrap interval over subjects (`mer.evaluation.bootstrap`). Multi-seed folders: `mer.evaluation.report`;
the pieces both reports use (intervals, the Uncertainty and regimes sections) are in `mer.evaluation.report_parts`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer.evaluation.bootstrap import RESAMPLES, SEED
from mer.evaluation.compare import PUBLISHED_FIGURES, comparison_table, not_comparable, run_facts
from mer.evaluation.megc_log import write_megc_log
from mer.evaluation.metrics import COMPOSITE, per_fold_table
from mer.evaluation.plots import confusion_png, per_fold_png
from mer.evaluation.render import Document, fmt
from mer.evaluation.report_parts import (
    Intervals,
    Scores,
    bootstrap_meta,
    ci_of,
    classifier_difference,
    mixed_banner,
    regime_records,
    regimes_section,
    score_intervals,
    uncertainty_section,
    with_ci,
)
from mer.evaluation.run_folder import (
    CLASSIFIER_NAMES,
    CLASSIFIERS,
    CONFUSION_PNG,
    MEGC_LOG,
    PER_FOLD_PNG,
    REPORT_HTML,
    REPORT_MD,
    SCORES,
    RunFolder,
)
from mer.evaluation.runs import RunResults, load_run
from mer.evaluation.selection import describe as describe_selection
from mer.files import atomic_write_bytes, atomic_write_json, natural_key


def write_run_report(run_dir: Path, out: Path | None = None, *, resamples: int = RESAMPLES, seed: int = SEED) -> Path:
    """Write report.md, report.html, confusion_matrix.png, per_fold_accuracy.png, megc_log.txt and scores.json.

    `out` defaults to the run folder. Metrics pool the predictions of all complete folds (MEGC way); missing
    folds stamp the report PARTIAL and are listed; a leaky run (loso.json) is stamped LEAKY. `resamples`
    subject-bootstrap draws (0: none) with `seed` give the 95 % intervals. Returns the report.md path.
    """
    run = load_run(run_dir)
    out = Path(out) if out is not None else Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    scores = run.scores()
    intervals = score_intervals([run.predictions], run.classifiers, resamples, seed, run.classes)
    versus = classifier_difference([run.predictions], run.classifiers, resamples, seed, run.classes)
    fold_table = _fold_table(run)

    doc = Document(f"LOSO report: {run.name}{_stamp_suffix(run)}")
    _overview(doc, run, scores, intervals)
    _scores_section(doc, scores, intervals)
    uncertainty_section(doc, _n_subjects(run), resamples, seed, versus)
    _per_class_section(doc, scores)
    _confusion_section(doc, scores, out)
    _published_section(doc, run, scores)
    _per_fold_section(doc, run, scores, fold_table, out)
    _time_section(doc, fold_table)
    _nested_section(doc, run)
    _missing_section(doc, run)
    _megc_log_section(doc, run, out)
    _provenance_section(doc, run)
    _config_section(doc, run)

    target = RunFolder(out)
    md_path = target.file(REPORT_MD)
    doc.write(md_path, target.file(REPORT_HTML))
    _write_scores(run, scores, target.file(SCORES), intervals, bootstrap_meta(resamples, seed), versus)
    return md_path


# ---------------------------------------------------------------------------------------------- sections


def _stamp_suffix(run: RunResults) -> str:
    return f" [{' / '.join(run.stamps)}]" if run.stamps else ""


def _n_subjects(run: RunResults) -> int:
    return run.predictions[["dataset", "subject"]].drop_duplicates().shape[0]


def _overview(doc: Document, run: RunResults, scores: Scores, intervals: Intervals) -> None:
    """LEAKY / PARTIAL banners, then folds, samples, the headline numbers and any problems reading the run."""
    reasons = run.leaky_reasons
    if reasons:
        doc.banner(
            f"LEAKY: model selection touched the LOSO test folds ({'; '.join(reasons)}). These numbers are "
            "optimistic, reproduce a leaky protocol only, and must not be reported as unbiased LOSO results.",
            "leaky",
        )
    if run.mixed:
        doc.banner(mixed_banner(run.regime_groups), "partial")
    if run.partial:
        shown = ", ".join(run.missing[:12]) + (f" … (+{len(run.missing) - 12} more)" if len(run.missing) > 12 else "")
        doc.banner(
            f"PARTIAL: {len(run.missing)} of {run.n_planned} folds are missing ({shown}). "
            f"Scores below pool the {len(run.folds)} complete folds only.",
            "partial",
        )
    pred = run.predictions
    comp = scores[run.headline][COMPOSITE]
    doc.bullets(
        [
            f"Run folder: `{run.run_dir}`",
            f"Folds: {len(run.folds)} complete of {run.n_planned}" + (" (PARTIAL)" if run.partial else ""),
            f"Samples: {len(pred)} from {_n_subjects(run)} subjects; datasets: "
            + ", ".join(f"{d} {k}" for d, k in pred.groupby("dataset").size().items()),
            f"Headline ({CLASSIFIER_NAMES[run.headline]}, pooled; 95 % bootstrap interval over subjects): "
            + ", ".join(
                f"{label} {with_ci(comp[m], ci_of(intervals, run.headline, COMPOSITE, m))}"
                for label, m in (("accuracy", "accuracy"), ("UAR", "uar"), ("UF1", "uf1"))
            ),
        ]
        + [f"Note: {p}" for p in run.problems]
    )


def _scores_section(doc: Document, scores: Scores, intervals: Intervals) -> None:
    """Pooled accuracy, UAR and UF1 per set (composite, then each dataset) and classifier."""
    doc.heading("Scores (pooled over all folds)")
    doc.para(
        "MEGC2019 protocol: the predictions of every fold are pooled, TP/FP/FN of each class are summed, then "
        "per-class recall and F1 are averaged without weights (UAR, UF1). Classes absent from a set's ground "
        "truth are left out of its means (`classes scored`). Per-fold numbers appear only in the per-fold table. "
        "Brackets: 95 % bootstrap interval over subjects (below)."
    )
    doc.table(_scores_table(scores, intervals))


def _per_class_section(doc: Document, scores: Scores) -> None:
    """Support, TP/FP/FN, recall and F1 of each class (composite)."""
    doc.heading("Per-class scores (composite)")
    doc.table(_per_class_table(scores))


def _confusion_section(doc: Document, scores: Scores, out: Path) -> None:
    """The confusion matrices as a figure (written to `out`) and as one table per classifier."""
    doc.heading("Confusion matrices (composite)")
    png = confusion_png(scores)
    atomic_write_bytes(RunFolder(out).file(CONFUSION_PNG), png)
    doc.image(CONFUSION_PNG, "confusion matrices", png)
    for clf, pooled in scores.items():
        doc.para(f"**{CLASSIFIER_NAMES[clf]}** (rows: true class, columns: predicted class)")
        doc.table(_confusion_table(pooled[COMPOSITE]))


def _published_section(doc: Document, run: RunResults, scores: Scores) -> None:
    """Published results beside this run: only the figures whose protocol and sample set this run shares."""
    protocol, scheme, datasets, n, n_subjects = run_facts(run)
    doc.heading("Comparison with published results")
    this = (f"This run: protocol {protocol}, classes {scheme}, {n} samples of {n_subjects} subjects from "
            f"{', '.join(sorted(datasets))}.")  # fmt: skip
    why = {f: not_comparable(f, protocol, scheme, datasets, n, n_subjects) for f in PUBLISHED_FIGURES}
    shown = tuple(f for f in PUBLISHED_FIGURES if not why[f])
    if not shown:
        sets = sorted({(f.protocol, f.sample_set) for f in PUBLISHED_FIGURES}, key=str)
        lines = [
            f"{s.name} ({protocol_} LOSO, {s.samples} samples of {s.subjects} subjects, classes {s.classes}): "
            + "; ".join(next(why[f] for f in PUBLISHED_FIGURES if (f.protocol, f.sample_set) == (protocol_, s)))
            for protocol_, s in sets
        ]
        doc.para(f"{this} No published figure belongs to this protocol and sample set, so none is shown:")
        doc.bullets(lines)
        return
    doc.para(f"{this} The published figures below were measured the same way (Liu et al. 2022 report accuracy only).")
    doc.table(comparison_table(scores, f"this run{_stamp_suffix(run)}", shown))


def _per_fold_section(doc: Document, run: RunResults, scores: Scores, fold_table: pd.DataFrame, out: Path) -> None:
    """Per-fold accuracy as a figure (written to `out`) and a table: diagnostic, never averaged."""
    doc.heading("Per-fold results")
    png = per_fold_png(fold_table, run.classifiers, scores)
    atomic_write_bytes(RunFolder(out).file(PER_FOLD_PNG), png)
    doc.image(PER_FOLD_PNG, "per-fold accuracy", png)
    doc.para("Per-fold accuracy is a diagnostic table; it is never averaged into the headline.")
    doc.table(_shown_fold_table(fold_table, run))


def _time_section(doc: Document, fold_table: pd.DataFrame) -> None:
    """Mean, median, max and total seconds of the folds that recorded their time."""
    doc.heading("Time per fold")
    secs = fold_table["seconds"].dropna()
    if not len(secs):
        doc.para("No fold recorded its time (`seconds` in metrics.json).")
        return
    doc.table(
        pd.DataFrame(
            [
                {
                    "folds timed": len(secs),
                    "mean s": fmt(float(secs.mean()), 1),
                    "median s": fmt(float(secs.median()), 1),
                    "max s": fmt(float(secs.max()), 1),
                    "total s": fmt(float(secs.sum()), 1),
                    "total h:mm:ss": _hms(float(secs.sum())),
                }
            ]
        )
    )


def _nested_section(doc: Document, run: RunResults) -> None:
    """Nested runs: each fold's parameters chosen by its own inner study, and how often each value won."""
    if "selection" not in run.folds.columns:
        return
    rows = [(str(r["fold"]), r["selection"]) for _, r in run.folds.iterrows() if isinstance(r["selection"], dict)]
    if not rows:
        return
    doc.heading("Hyper-parameters chosen per fold (nested)")
    doc.para("Each fold's inner study searched over that fold's training subjects only; its best trial's values "
             "trained the fold. `wins` counts the folds that chose each value.")  # fmt: skip
    keys = sorted({k for _, sel in rows for k in sel.get("params") or {}})
    shown = lambda v: f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
    doc.table(pd.DataFrame([{"fold": f, **{k: shown((sel.get("params") or {}).get(k)) for k in keys},
                             "inner value": fmt(sel.get("value"))} for f, sel in rows]))  # fmt: skip
    chosen = [(k, shown((sel.get("params") or {}).get(k))) for k in keys for _, sel in rows]
    wins = pd.Series(chosen).value_counts(sort=False)
    doc.table(pd.DataFrame([{"key": k, "value": v, "wins": int(n)} for (k, v), n in sorted(wins.items())]))


def _missing_section(doc: Document, run: RunResults) -> None:
    """The folds without a complete result (only in a PARTIAL report)."""
    if not run.partial:
        return
    doc.heading("Missing folds")
    doc.para(
        f"{len(run.missing)} of {run.n_planned} folds have no complete result (both predictions.csv and "
        "metrics.json); rerun the same `mer loso` command to resume them."
    )
    doc.bullets([f"`{f}`" for f in run.missing])


def _megc_log_section(doc: Document, run: RunResults, out: Path) -> None:
    """Write the MEGC log of the headline classifier to `out` and say what it holds."""
    headline = run.headline
    log_path = write_megc_log(
        run.predictions,
        RunFolder(out).file(MEGC_LOG),
        pred_col=CLASSIFIERS[headline],
        run_name=run.name,
        classifier=headline,
        folds=run.folds["fold"].tolist(),
        classes=run.classes,
    )
    doc.heading("MEGC log")
    doc.para(
        f"`{log_path.name}` holds the {CLASSIFIER_NAMES[headline]} predictions, one tab-separated line per fold: "
        "the fold, then one `<sample_id>:pred=<predicted>:true=<ground truth>` token per held-out sample; "
        "lines starting with `#` are comments."
    )


def _provenance_section(doc: Document, run: RunResults) -> None:
    """Seed, git commit, command, run notes, package versions, the regimes per fold and the calls."""
    doc.heading("Provenance")
    info = run.run_info
    doc.bullets(
        [
            f"Seed: {info.get('seed', (run.config or {}).get('seed', '—'))}",
            f"Git commit: `{info.get('git_commit') or 'unknown'}`",
            f"Command: `{info.get('command') or 'unknown'}`",
        ]
        + [f"Hyper-parameters: {describe_selection(run.notes.get('selection'))}"]
        + _pretrained_line(run)
        + [f"{k}: {v}" for k, v in run.notes.items() if k not in ("planned_folds", "selection", "pretrained_selection")]
    )
    versions = info.get("versions") or {}
    if versions:
        doc.table(pd.DataFrame({"package": list(versions), "version": [str(v) for v in versions.values()]}))
    regimes_section(doc, run.regime_groups, run.run_records)


def _pretrained_line(run: RunResults) -> list[str]:
    """How the `--pretrained` checkpoint's own hyper-parameters were chosen (its pretrained.pt's record); none
    without a checkpoint."""
    if not run.notes.get("pretrained"):
        return []
    missing = "not recorded in the checkpoint (written before selection records, or not by mer)"
    return [
        f"Pre-trained weights' hyper-parameters: {describe_selection(run.notes.get('pretrained_selection'), missing)}"
    ]


def _config_section(doc: Document, run: RunResults) -> None:
    """The run's config.yaml, folded in the HTML page."""
    doc.heading("Resolved config")
    if run.config_text is not None:
        doc.code(run.config_text, "yaml", summary="config.yaml (click to expand)")
    else:
        doc.para("config.yaml is missing from the run folder.")


def _write_scores(
    run: RunResults,
    scores: Scores,
    path: Path,
    intervals: Intervals,
    bootstrap: dict[str, Any],
    versus: dict[str, Any] | None,
) -> None:
    """scores.json: the stamps, fold counts, every pooled score and its bootstrap interval, for scripts."""
    summary = {
        "name": run.name,
        "partial": run.partial,
        "leaky": run.leaky,
        "mixed": run.mixed,
        "leaky_reasons": run.leaky_reasons,
        "regimes": regime_records(run.regime_groups),
        "selection": run.notes.get("selection"),
        "pretrained_selection": run.notes.get("pretrained_selection"),
        "complete_folds": len(run.folds),
        "planned_folds": run.n_planned,
        "missing_folds": run.missing,
        "headline": run.headline,
        "scores": scores,
        "intervals": intervals,
        "bootstrap": bootstrap,
        "svm_minus_softmax": versus,
    }
    atomic_write_json(path, summary)


# ------------------------------------------------------------------------------------------------ tables


def _scores_table(scores: Scores, intervals: Intervals) -> pd.DataFrame:
    first = next(iter(scores.values()))
    rows = []
    for scope in first:
        row: dict[str, Any] = {"set": scope, "n": first[scope]["n"]}
        for clf, pooled in scores.items():
            name = CLASSIFIER_NAMES[clf]
            for label, m in (("acc", "accuracy"), ("UAR", "uar"), ("UF1", "uf1")):
                row[f"{name} {label}"] = with_ci(pooled[scope][m], ci_of(intervals, clf, scope, m))
        row["classes scored"] = ", ".join(first[scope]["classes_scored"])
        rows.append(row)
    return pd.DataFrame(rows)


def _per_class_table(scores: Scores) -> pd.DataFrame:
    rows = []
    for clf, pooled in scores.items():
        for cls, s in pooled[COMPOSITE]["per_class"].items():
            rows.append(
                {
                    "classifier": CLASSIFIER_NAMES[clf],
                    "class": cls,
                    "support": s["support"],
                    "TP": s["tp"],
                    "FP": s["fp"],
                    "FN": s["fn"],
                    "recall": s["recall"],
                    "F1": s["f1"],
                }
            )
    return pd.DataFrame(rows)


def _confusion_table(comp: dict[str, Any]) -> pd.DataFrame:
    df = pd.DataFrame(comp["confusion"], columns=[f"pred {c}" for c in comp["classes"]])
    df.insert(0, "true \\ predicted", comp["classes"])
    return df


def _svm_text(params: Any) -> str:
    if not isinstance(params, dict) or not params:
        return "—"
    parts = []
    if params.get("C") is not None:
        parts.append(f"C={float(params['C']):g}")
    if params.get("kernel"):
        parts.append(str(params["kernel"]))
    if params.get("gamma") not in (None, ""):
        parts.append(f"gamma={params['gamma']}")
    if params.get("inner_cv_f1") is not None:
        parts.append(f"inner F1 {float(params['inner_cv_f1']):.3f}")
    if params.get("fallback"):
        parts.append("fallback: first grid point")
    return ", ".join(parts) if parts else json.dumps(params, sort_keys=True)


def _fold_table(run: RunResults) -> pd.DataFrame:
    """One row per complete fold: fold, dataset, n, n_train, per-classifier accuracy, seconds, epoch, SVM params."""
    base = run.folds.copy()
    pred = run.predictions
    ds = pred.groupby("fold")["dataset"].agg(lambda s: ", ".join(sorted(set(s))))
    table = pd.DataFrame({"fold": base["fold"]})
    table["dataset"] = table["fold"].map(ds).fillna("—")
    table["n"] = table["fold"].map(pred.groupby("fold").size()).fillna(0).astype(int)
    table["n_train"] = base.get("n_train", pd.Series([None] * len(base)))
    for clf in run.classifiers:
        acc = per_fold_table(pred, CLASSIFIERS[clf]).set_index("fold")["accuracy"]
        table[f"{clf}_acc"] = table["fold"].map(acc)
    table["seconds"] = pd.to_numeric(base.get("seconds", pd.Series([np.nan] * len(base))), errors="coerce")
    table["best_epoch"] = base.get("best_epoch", pd.Series([None] * len(base)))
    table["svm_params"] = [_svm_text(p) for p in base.get("svm_params", pd.Series([None] * len(base)))]
    order = sorted(range(len(table)), key=lambda i: natural_key(table["fold"].iloc[i]))
    return table.iloc[order].reset_index(drop=True)


def _shown_fold_table(table: pd.DataFrame, run: RunResults) -> pd.DataFrame:
    shown = table.rename(columns={f"{c}_acc": f"{CLASSIFIER_NAMES[c]} acc" for c in run.classifiers})
    shown["seconds"] = shown["seconds"].map(lambda s: fmt(s, 1))
    for col in ("best_epoch", "n_train"):
        shown[col] = shown[col].map(lambda v: "—" if v is None or pd.isna(v) else str(int(v)))
    return shown.rename(columns={"best_epoch": "best epoch", "svm_params": "SVM params"})


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
