"""LOSO reports: `write_report` writes the report of a run folder, or of a multi-seed folder (`mer loso --seeds`):
per-seed rows and mean ± sd over seeds, with bootstrap intervals of the seed mean. One run's sections live in
`mer.evaluation.run_report`; several runs side by side in `mer.evaluation.compare`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mer.evaluation.bootstrap import RESAMPLES, SEED, seed_spread
from mer.evaluation.metrics import COMPOSITE
from mer.evaluation.render import Document
from mer.evaluation.report_parts import (
    Intervals,
    Scores,
    bootstrap_meta,
    ci_of,
    classifier_difference,
    compact_scores,
    mixed_banner,
    regime_records,
    regimes_section,
    score_intervals,
    uncertainty_section,
    with_ci,
)
from mer.evaluation.run_folder import CLASSIFIER_NAMES, REPORT_HTML, REPORT_MD, SCORES, RunFolder
from mer.evaluation.run_report import write_run_report
from mer.evaluation.runs import SeedRuns, is_multi_seed, load_seeds
from mer.files import atomic_write_json

__all__ = ["write_report", "write_run_report", "write_seeds_report"]


def write_report(run_dir: Path, out: Path | None = None, *, resamples: int = RESAMPLES, seed: int = SEED) -> Path:
    """The report of a LOSO run folder (`write_run_report`) or of a multi-seed folder (`write_seeds_report`);
    returns the report.md path."""
    if is_multi_seed(run_dir):
        return write_seeds_report(run_dir, out, resamples=resamples, seed=seed)
    return write_run_report(run_dir, out, resamples=resamples, seed=seed)


def write_seeds_report(
    run_dir: Path,
    out: Path | None = None,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    refresh_seeds: bool = True,
) -> Path:
    """The report of a multi-seed folder: per-seed rows, mean ± sd over seeds with the bootstrap interval of the
    seed mean, SVM − softmax paired over subjects; report.md, report.html and scores.json. Each seed's own report
    is rewritten in its folder (`out/seed<k>` with `out`); `refresh_seeds=False` only writes missing ones.
    Returns the report.md path."""
    study = load_seeds(run_dir)
    out = Path(out) if out is not None else Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    for s, run in zip(study.seeds, study.runs, strict=True):
        target = RunFolder(out).seed(s).path
        if refresh_seeds or not RunFolder(target).file(REPORT_MD).is_file():
            write_report(run.run_dir, target if out != Path(run_dir) else None, resamples=resamples, seed=seed)
    per_seed = [r.scores() for r in study.runs]
    classifiers = study.classifiers
    mean, sd = seed_spread([{c: p[c] for c in classifiers} for p in per_seed])
    frames = study.frames()
    same = len({frozenset(map(tuple, f[["dataset", "subject", "sample_id"]].astype(str).to_numpy().tolist()))
                for f in frames}) == 1  # fmt: skip
    intervals = score_intervals(frames, classifiers, resamples, seed, study.runs[0].classes) if same else {}
    versus = classifier_difference(frames, classifiers, resamples, seed, study.runs[0].classes) if same else None
    n_subjects = study.runs[0].predictions[["dataset", "subject"]].drop_duplicates().shape[0]
    headline = study.headline

    stamp = f" [{' / '.join(study.stamps)}]" if study.stamps else ""
    doc = Document(f"LOSO report: {study.name} ({len(study.seeds)} seeds){stamp}")
    leaky = [s for s, r in zip(study.seeds, study.runs, strict=True) if r.leaky]
    if leaky:
        doc.banner(
            f"LEAKY: model selection touched the LOSO test folds in seed(s) {', '.join(map(str, leaky))}. "
            "These numbers are optimistic and must not be reported as unbiased LOSO results.",
            "leaky",
        )
    if study.mixed:
        doc.banner(mixed_banner(study.regime_groups), "partial")
    partial = [s for s, r in zip(study.seeds, study.runs, strict=True) if r.partial]
    if study.partial:
        parts = [f"seed(s) {', '.join(map(str, study.missing_seeds))} not run yet"] if study.missing_seeds else []
        parts += [f"seed(s) {', '.join(map(str, partial))} have missing folds"] if partial else []
        doc.banner(f"PARTIAL: {'; '.join(parts)}. Rerun the same `mer loso --seeds` command to finish.", "partial")
    comp, comp_sd = mean[headline][COMPOSITE], sd[headline][COMPOSITE]
    doc.bullets(
        [
            f"Run folder: `{study.run_dir}`",
            f"Seeds: {', '.join(map(str, study.seeds))} ({len(study.seeds)} of "
            f"{len(study.seeds) + len(study.missing_seeds)} planned)",
            f"Samples per seed: {len(frames[0])} from {n_subjects} subjects"
            + ("" if same else " (the seeds hold different samples: no bootstrap interval)"),
            f"Headline ({CLASSIFIER_NAMES[headline]}, pooled per seed; mean ± sd over seeds, 95 % bootstrap interval "
            "over subjects): "
            + ", ".join(
                f"{label} {with_ci(comp[m], ci_of(intervals, headline, COMPOSITE, m), comp_sd[m])}"
                for label, m in (("accuracy", "accuracy"), ("UAR", "uar"), ("UF1", "uf1"))
            ),
        ]
    )
    doc.heading("Seeds")
    doc.para(
        "One row per seed: that seed's pooled scores (composite, then UF1/UAR per dataset of the headline "
        "classifier); then the mean and the sample standard deviation (n − 1) over seeds."
    )
    doc.table(_seed_rows(study, per_seed, mean, sd, classifiers))
    doc.heading("Scores over seeds (mean ± sd [95 % interval])")
    doc.table(_seed_scores_table(mean, sd, intervals, per_seed[0]))
    uncertainty_section(doc, n_subjects, resamples if same else 0, seed, versus, seeds=len(study.seeds))
    doc.heading("Per-seed reports")
    doc.bullets([f"seed {s}: `seed{s}/report.md`" for s in study.seeds])
    doc.heading("Provenance")
    info = study.run_info
    doc.bullets(
        [f"Git commit: `{info.get('git_commit') or 'unknown'}`", f"Command: `{info.get('command') or 'unknown'}`"]
    )
    regimes_section(doc, study.regime_groups, RunFolder(study.run_dir).run_records())
    doc.heading("Resolved config")
    if study.config_text is not None:
        doc.code(study.config_text, "yaml", summary="config.yaml (click to expand)")
    else:
        doc.para("config.yaml is missing from the folder; see each seed's report.")
    target = RunFolder(out)
    md_path = target.file(REPORT_MD)
    doc.write(md_path, target.file(REPORT_HTML))
    summary = {
        "name": study.name,
        "multi_seed": True,
        "seeds": study.seeds,
        "missing_seeds": study.missing_seeds,
        "partial": study.partial,
        "leaky": study.leaky,
        "mixed": study.mixed,
        "regimes": regime_records(study.regime_groups),
        "headline": headline,
        "per_seed": {str(s): compact_scores(p) for s, p in zip(study.seeds, per_seed, strict=True)},
        "mean": mean,
        "sd": sd,
        "intervals": intervals,
        "bootstrap": bootstrap_meta(resamples if same else 0, seed),
        "svm_minus_softmax": versus,
    }
    atomic_write_json(target.file(SCORES), summary)
    return md_path


def _seed_rows(study: SeedRuns, per_seed: list[Scores], mean: dict, sd: dict, classifiers: list[str]) -> pd.DataFrame:
    headline = study.headline
    datasets = [s for s in per_seed[0][headline] if s != COMPOSITE]
    rows = []

    def values(get: Any) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for clf in classifiers:
            for label, m in (("acc", "accuracy"), ("UAR", "uar"), ("UF1", "uf1")):
                row[f"{CLASSIFIER_NAMES[clf]} {label}"] = get(clf, COMPOSITE, m)
        for d in datasets:
            row[f"{d} UF1"] = get(headline, d, "uf1")
            row[f"{d} UAR"] = get(headline, d, "uar")
        return row

    for s, run, scores in zip(study.seeds, study.runs, per_seed, strict=True):
        base = {"seed": str(s), "status": " / ".join(run.stamps) or "complete", "folds": f"{len(run.folds)}/"
                f"{run.n_planned}", "n": str(len(run.predictions))}  # fmt: skip
        rows.append({**base, **values(lambda c, sc, m, p=scores: p[c][sc][m])})
    rows.append({"seed": "**mean**", "status": "", "folds": "", "n": "",
                 **values(lambda c, sc, m: mean[c].get(sc, {}).get(m))})  # fmt: skip
    rows.append({"seed": "**sd**", "status": "", "folds": "", "n": "",
                 **values(lambda c, sc, m: sd[c].get(sc, {}).get(m))})  # fmt: skip
    return pd.DataFrame(rows)


def _seed_scores_table(mean: dict, sd: dict, intervals: Intervals, first: Scores) -> pd.DataFrame:
    rows = []
    for scope in next(iter(mean.values())):
        row: dict[str, Any] = {"set": scope}
        for clf in mean:
            for label, m in (("acc", "accuracy"), ("UAR", "uar"), ("UF1", "uf1")):
                row[f"{CLASSIFIER_NAMES[clf]} {label}"] = with_ci(
                    mean[clf][scope][m], ci_of(intervals, clf, scope, m), sd[clf][scope][m]
                )
        row["classes scored"] = ", ".join(first[next(iter(mean))][scope]["classes_scored"])
        rows.append(row)
    return pd.DataFrame(rows)
