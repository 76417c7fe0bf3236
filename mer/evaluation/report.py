"""The LOSO report: pooled MEGC metrics of a run folder as `report.md` + `report.html`, plots, a MEGC log.

`load_run` reads what `mer loso` writes (`config.yaml`, `run_info.json`, optional `loso.json` notes and
`folds/<subject>/{predictions.csv, metrics.json}`), checks it, and tells complete folds from missing ones.
`write_report` turns one run into a report (stamped PARTIAL when folds are missing, LEAKY when model
selection touched the test folds); `compare_runs` puts several runs side by side (the shape of Table 2 in
Liu et al. 2022). Both write Markdown and a self-contained HTML page (images embedded as base64).
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mer.config import CLASSES
from mer.errors import MerError
from mer.evaluation.metrics import COMPOSITE, natural_key, per_fold_table, pooled_scores

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

PREDICTION_COLUMNS = ("sample_id", "dataset", "subject", "label", "svm_pred", "softmax_pred")
CLASSIFIERS = {"svm": "svm_pred", "softmax": "softmax_pred"}
CLASSIFIER_NAMES = {"svm": "SVM", "softmax": "softmax"}
MEGC_LOG_HEADER = "# mer MEGC per-fold log, format 1"

CONFUSION_PNG = "confusion_matrix.png"
PER_FOLD_PNG = "per_fold_accuracy.png"


# --------------------------------------------------------------------------------------------- loading


@dataclass
class RunResults:
    """What one LOSO run folder holds: pooled predictions of its complete folds, fold metrics and provenance."""

    run_dir: Path
    name: str
    predictions: pd.DataFrame  # predictions.csv rows of every complete fold, plus a `fold` column
    folds: pd.DataFrame  # one row per complete fold: fold, path, and the metrics.json fields
    missing: list[str]  # planned or started folds without both predictions.csv and metrics.json
    config: dict[str, Any] = field(default_factory=dict)
    config_text: str | None = None
    run_info: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)  # loso.json
    problems: list[str] = field(default_factory=list)  # non-fatal: files that are missing or unreadable

    @property
    def partial(self) -> bool:
        """True when some planned or started folds are not complete."""
        return bool(self.missing)

    @property
    def n_planned(self) -> int:
        """Complete plus missing folds."""
        return len(self.folds) + len(self.missing)

    @property
    def leaky(self) -> bool:
        """True when loso.json says model selection looked at the LOSO test folds."""
        objective = str(self.notes.get("objective", "") or "")
        return bool(self.notes.get("leaky")) or objective.startswith("leaky")

    @property
    def classifiers(self) -> list[str]:
        """Classifiers ('svm', 'softmax') whose prediction column is filled in."""
        return [c for c, col in CLASSIFIERS.items() if self.predictions[col].notna().any()]

    @property
    def headline(self) -> str:
        """The classifier the headline metrics use: config `loso.classifier` if it has predictions."""
        wanted = (self.config.get("loso") or {}).get("classifier", "svm")
        available = self.classifiers
        return wanted if wanted in available else available[0]

    def scores(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Pooled MEGC scores per classifier: {classifier: {"composite": ..., dataset: ...}}."""
        return {c: pooled_scores(self.predictions, CLASSIFIERS[c]) for c in self.classifiers}


def _read_json(path: Path, problems: list[str]) -> dict[str, Any]:
    if not path.is_file():
        problems.append(f"{path.name} is missing")
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        problems.append(f"{path.name} could not be read ({exc.__class__.__name__})")
        return {}
    return data if isinstance(data, dict) else {}


def _scan_folds(folds_dir: Path) -> tuple[list[Path], list[Path]]:
    """(complete fold folders, started-but-incomplete fold folders) under folds/, hidden folders ignored."""
    complete: list[Path] = []
    started: list[Path] = []
    dirs = [d for d in folds_dir.rglob("*") if d.is_dir()]
    dirs = [d for d in dirs if not any(part.startswith(".") for part in d.relative_to(folds_dir).parts)]
    for d in dirs:
        has_pred = (d / "predictions.csv").is_file()
        has_metrics = (d / "metrics.json").is_file()
        has_subdirs = any(c.is_dir() and not c.name.startswith(".") for c in d.iterdir())
        if has_pred and has_metrics:
            complete.append(d)
        elif has_pred or has_metrics or not has_subdirs:
            started.append(d)
    key = lambda p: natural_key(p.relative_to(folds_dir).as_posix())  # noqa: E731
    return sorted(complete, key=key), sorted(started, key=key)


def _read_fold(folder: Path, rel: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    pred_path, metrics_path = folder / "predictions.csv", folder / "metrics.json"
    try:
        metrics = json.loads(metrics_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MerError(f"{metrics_path}: not valid JSON ({exc}); delete the fold folder and rerun `mer loso`") from None
    if not isinstance(metrics, dict):
        raise MerError(f"{metrics_path}: expected a JSON object with the fold's metrics")
    try:
        df = pd.read_csv(pred_path, dtype={c: str for c in PREDICTION_COLUMNS})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise MerError(f"{pred_path}: not a readable CSV ({exc.__class__.__name__}); rerun that fold") from None
    missing = [c for c in PREDICTION_COLUMNS if c not in df.columns]
    if missing:
        raise MerError(f"{pred_path}: missing columns {missing}; expected at least {', '.join(PREDICTION_COLUMNS)}")
    for col in ("label", "svm_pred", "softmax_pred"):
        bad = sorted(set(df[col].dropna()) - set(CLASSES))
        if bad:
            raise MerError(f"{pred_path}: column {col} has values {bad}; expected one of {', '.join(CLASSES)}")
    for col in ("svm_pred", "softmax_pred"):
        n_empty = int(df[col].isna().sum())
        if 0 < n_empty < len(df):
            raise MerError(f"{pred_path}: column {col} is empty in {n_empty} of {len(df)} rows; rerun that fold")
    held_out = metrics.get("held_out")
    if isinstance(held_out, list) and held_out:
        stray = sorted(set(df["subject"]) - {str(s) for s in held_out})
        if stray:
            raise MerError(
                f"{pred_path}: predictions for subjects {stray} that are not held out in this fold "
                f"(metrics.json held_out = {held_out}); the fold is inconsistent, rerun it"
            )
    fold = str(metrics.get("fold") or rel)
    df.insert(0, "fold", fold)
    return df, {**metrics, "fold": fold, "path": rel}


def load_run(run_dir: str | Path) -> RunResults:
    """Read a `mer loso` run folder; raise MerError when it is missing or has no complete fold."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MerError(f"run folder not found: {run_dir} (give the --out folder of a `mer loso` run)")
    folds_dir = run_dir / "folds"
    if not folds_dir.is_dir():
        raise MerError(f"{run_dir}: no folds/ folder; is this a `mer loso` run folder? (expected folds/<subject>/)")
    problems: list[str] = []
    notes: dict[str, Any] = {}
    if (run_dir / "loso.json").exists():  # unreadable notes are fatal: they may carry the LEAKY stamp
        try:
            notes = json.loads((run_dir / "loso.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise MerError(f"{run_dir / 'loso.json'}: not valid JSON ({exc}); fix or delete it") from None
        if not isinstance(notes, dict):
            raise MerError(f"{run_dir / 'loso.json'}: expected a JSON object of run notes")
    run_info = _read_json(run_dir / "run_info.json", problems)
    config_text = None
    config: dict[str, Any] = {}
    if (run_dir / "config.yaml").is_file():
        config_text = (run_dir / "config.yaml").read_text()
        try:
            loaded = yaml.safe_load(config_text)
            config = loaded if isinstance(loaded, dict) else {}
        except yaml.YAMLError:
            problems.append("config.yaml is not valid YAML")
    else:
        problems.append("config.yaml is missing")

    complete, started = _scan_folds(folds_dir)
    if not complete:
        detail = f" ({len(started)} started, none has both predictions.csv and metrics.json)" if started else ""
        raise MerError(f"{folds_dir}: no complete fold{detail}; run or resume `mer loso` first")

    frames, rows = [], []
    for folder in complete:
        df, metrics = _read_fold(folder, folder.relative_to(folds_dir).as_posix())
        frames.append(df)
        rows.append(metrics)
    predictions = pd.concat(frames, ignore_index=True)
    folds = pd.DataFrame(rows)
    dup = predictions.duplicated(["dataset", "subject", "sample_id"], keep=False)
    if dup.any():
        first = predictions[dup].iloc[0]
        where = sorted(predictions.loc[dup & (predictions["sample_id"] == first["sample_id"]), "fold"].unique())
        raise MerError(
            f"{folds_dir}: sample {first['dataset']}/{first['subject']}/{first['sample_id']} is predicted in "
            f"more than one fold ({', '.join(where)}); each sample must be held out exactly once"
        )
    dup_folds = folds["fold"][folds["fold"].duplicated()].tolist()
    if dup_folds:
        raise MerError(f"{folds_dir}: fold names {dup_folds} appear in more than one folder's metrics.json")
    if predictions.empty:
        raise MerError(f"{folds_dir}: the {len(folds)} complete folds hold no predictions (empty predictions.csv)")
    if not any(predictions[col].notna().any() for col in CLASSIFIERS.values()):
        raise MerError(f"{folds_dir}: predictions.csv files hold neither svm_pred nor softmax_pred values")

    done = set(folds["fold"])
    planned = [str(f) for f in notes.get("planned_folds") or []]
    missing = {f for f in planned if f not in done}
    missing |= {p.relative_to(folds_dir).as_posix() for p in started} - done
    name = str(config.get("name") or run_dir.resolve().name)
    return RunResults(
        run_dir=run_dir,
        name=name,
        predictions=predictions,
        folds=folds,
        missing=sorted(missing, key=natural_key),
        config=config,
        config_text=config_text,
        run_info=run_info,
        notes=notes,
        problems=problems,
    )


# ------------------------------------------------------------------------------------------ rendering


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "—"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def _inline_html(text: str) -> str:
    """Escape, then render the little Markdown used in report prose: `code` and **bold**."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _md_table(df: pd.DataFrame) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f2f2f2}
td:first-child,th:first-child{text-align:left}
code,pre{background:#f6f8fa;border-radius:4px}
pre{padding:.8em;overflow-x:auto;font-size:.85em}
.banner{padding:.8em 1em;margin:1em 0;border-radius:6px;font-weight:600}
.leaky{background:#fde2e1;border:2px solid #c62828;color:#8e0000}
.partial{background:#fff4d6;border:2px solid #d19a00;color:#6b4e00}
img{max-width:100%;height:auto}
details summary{cursor:pointer;font-weight:600}
"""


class _Doc:
    """Builds the same document as Markdown and as HTML, block by block."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.md: list[str] = [f"# {title}"]
        self.html: list[str] = [f"<h1>{html.escape(title)}</h1>"]

    def heading(self, text: str, level: int = 2) -> None:
        self.md.append(f"{'#' * level} {text}")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def para(self, text: str) -> None:
        self.md.append(text)
        self.html.append(f"<p>{_inline_html(text)}</p>")

    def bullets(self, items: Sequence[str]) -> None:
        self.md.append("\n".join(f"- {item}" for item in items))
        self.html.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in items) + "</ul>")

    def banner(self, text: str, kind: str) -> None:
        self.md.append(f"> **{text}**")
        self.html.append(f'<div class="banner {kind}">{_inline_html(text)}</div>')

    def table(self, df: pd.DataFrame) -> None:
        shown = df.map(_fmt) if len(df) else df
        self.md.append(_md_table(shown))
        cells = shown.map(_inline_html) if len(shown) else shown
        cells.columns = [_inline_html(str(c)) for c in shown.columns]
        self.html.append(cells.to_html(index=False, border=0, escape=False))

    def image(self, filename: str, alt: str, png: bytes) -> None:
        self.md.append(f"![{alt}]({filename})")
        data = base64.b64encode(png).decode("ascii")
        self.html.append(f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>')

    def code(self, text: str, lang: str = "", summary: str | None = None) -> None:
        self.md.append(f"```{lang}\n{text.rstrip()}\n```")
        block = f"<pre><code>{html.escape(text)}</code></pre>"
        if summary:
            block = f"<details><summary>{html.escape(summary)}</summary>{block}</details>"
        self.html.append(block)

    def write(self, md_path: Path, html_path: Path) -> None:
        md_path.write_text("\n\n".join(self.md) + "\n")
        page = (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(self.html) + "\n</body></html>\n"
        )
        html_path.write_text(page)


# ------------------------------------------------------------------------------------------------ plots


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _confusion_png(scores: dict[str, dict[str, dict[str, Any]]]) -> bytes:
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state, no display needed
    from sklearn.metrics import ConfusionMatrixDisplay

    fig = Figure(figsize=(4.3 * len(scores), 4.0), layout="constrained")
    axes = fig.subplots(1, len(scores), squeeze=False)[0]
    for ax, (clf, pooled) in zip(axes, scores.items(), strict=True):
        comp = pooled[COMPOSITE]
        ConfusionMatrixDisplay(np.array(comp["confusion"]), display_labels=comp["classes"]).plot(
            ax=ax, cmap="Blues", colorbar=False, values_format="d"
        )
        ax.set_title(f"{CLASSIFIER_NAMES[clf]}: UF1 {comp['uf1']:.3f}, UAR {comp['uar']:.3f}", fontsize=10)
    return _png(fig)


def _per_fold_png(table: pd.DataFrame, run: RunResults, scores: dict[str, Any]) -> bytes:
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    n = len(table)
    fig = Figure(figsize=(max(6.0, 0.22 * n + 2.5), 4.0), layout="constrained")
    ax = fig.subplots()
    x = np.arange(n)
    datasets = table["dataset"].tolist()
    palette = {d: f"C{i}" for i, d in enumerate(dict.fromkeys(datasets))}
    clfs = run.classifiers
    width = 0.8 / len(clfs)
    for k, clf in enumerate(clfs):
        offset = (k - (len(clfs) - 1) / 2) * width
        colors = [palette[d] for d in datasets]
        ax.bar(
            x + offset,
            table[f"{clf}_acc"].fillna(0).to_numpy(),
            width,
            color=colors,
            alpha=1.0 if k == 0 else 0.45,
            hatch=None if k == 0 else "//",
            edgecolor="black",
            linewidth=0.3,
        )
        pooled = scores[clf][COMPOSITE]["accuracy"]
        ax.axhline(pooled, color="black", linestyle="-" if k == 0 else "--", linewidth=0.8)
        ax.text(
            n - 0.5,
            pooled,
            f" pooled {CLASSIFIER_NAMES[clf]} {pooled:.3f}",
            va="bottom",
            ha="right",
            fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1},
        )
    ax.set_xticks(x, table["fold"].tolist(), rotation=90, fontsize=7 if n > 20 else 9)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    styles = ", ".join(f"{CLASSIFIER_NAMES[c]} {'hatched' if i else 'solid'}" for i, c in enumerate(clfs))
    ax.set_title(f"Per-fold accuracy ({styles}); diagnostic only, the headline metrics are pooled", fontsize=10)
    ax.legend(
        handles=[Patch(color=c, label=d) for d, c in palette.items()],
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        title="dataset",
        title_fontsize=8,
    )
    return _png(fig)


# ---------------------------------------------------------------------------------------------- tables


def _scores_table(scores: dict[str, dict[str, dict[str, Any]]]) -> pd.DataFrame:
    first = next(iter(scores.values()))
    rows = []
    for scope in first:
        row: dict[str, Any] = {"set": scope, "n": first[scope]["n"]}
        for clf, pooled in scores.items():
            name = CLASSIFIER_NAMES[clf]
            row[f"{name} acc"] = pooled[scope]["accuracy"]
            row[f"{name} UAR"] = pooled[scope]["uar"]
            row[f"{name} UF1"] = pooled[scope]["uf1"]
        row["classes scored"] = ", ".join(first[scope]["classes_scored"])
        rows.append(row)
    return pd.DataFrame(rows)


def _per_class_table(scores: dict[str, dict[str, dict[str, Any]]]) -> pd.DataFrame:
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
    shown["seconds"] = shown["seconds"].map(lambda s: _fmt(s, 1))
    for col in ("best_epoch", "n_train"):
        shown[col] = shown[col].map(lambda v: "—" if v is None or pd.isna(v) else str(int(v)))
    return shown.rename(columns={"best_epoch": "best epoch", "svm_params": "SVM params"})


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _comparison_table(scores: dict[str, dict[str, dict[str, Any]]], run_label: str) -> pd.DataFrame:
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


# ------------------------------------------------------------------------------------------------ MEGC log


def write_megc_log(run: RunResults, path: str | Path, classifier: str | None = None) -> Path:
    """Write the MEGC per-fold log: one tab-separated line per fold, `<fold>` then `<sample_id>:pred=<p>:true=<t>`.

    Lines starting with `#` are comments (format version, run, classifier, classes). Folds in natural order,
    samples in their predictions.csv order. `read_megc_log` reads it back.
    """
    classifier = classifier or run.headline
    col = CLASSIFIERS[classifier]
    lines = [
        MEGC_LOG_HEADER,
        f"# run: {run.name}; classifier: {classifier}; classes: {','.join(CLASSES)}",
        "# one line per fold: <fold>\\t<sample_id>:pred=<predicted>:true=<ground truth>\\t... (tab-separated)",
    ]
    pred = run.predictions
    for fold in sorted(run.folds["fold"], key=natural_key):
        part = pred[pred["fold"] == fold]
        tokens = []
        for sid, p, t in zip(part["sample_id"], part[col], part["label"], strict=True):
            if re.search(r"[\t\r\n]", str(sid)):
                raise MerError(
                    f"sample_id {sid!r} in fold {fold} contains a tab or newline; the MEGC log cannot hold it"
                )
            tokens.append(f"{sid}:pred={p}:true={t}")
        lines.append("\t".join([str(fold), *tokens]))
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def read_megc_log(path: str | Path) -> pd.DataFrame:
    """Read a MEGC log written by `write_megc_log` into rows of (fold, sample_id, pred, label)."""
    path = Path(path)
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fold, *tokens = line.split("\t")
        for token in tokens:
            match = re.fullmatch(r"(.*):pred=([^:]*):true=([^:]*)", token)
            if not match:
                raise MerError(f"{path}:{number}: '{token}' is not <sample_id>:pred=<label>:true=<label>")
            rows.append({"fold": fold, "sample_id": match[1], "pred": match[2], "label": match[3]})
    return pd.DataFrame(rows, columns=["fold", "sample_id", "pred", "label"])


# ------------------------------------------------------------------------------------------------ report


def _stamps(run: RunResults) -> list[str]:
    stamps = []
    if run.leaky:
        stamps.append("LEAKY")
    if run.partial:
        stamps.append("PARTIAL")
    return stamps


def _add_banners(doc: _Doc, run: RunResults) -> None:
    if run.leaky:
        objective = run.notes.get("objective")
        doc.banner(
            "LEAKY: model selection touched the LOSO test folds"
            + (f" (objective: {objective})" if objective else "")
            + ". These numbers are optimistic, reproduce a leaky protocol only, and must not be reported as "
            "unbiased LOSO results.",
            "leaky",
        )
    if run.partial:
        shown = ", ".join(run.missing[:12]) + (f" … (+{len(run.missing) - 12} more)" if len(run.missing) > 12 else "")
        doc.banner(
            f"PARTIAL: {len(run.missing)} of {run.n_planned} folds are missing ({shown}). "
            f"Scores below pool the {len(run.folds)} complete folds only.",
            "partial",
        )


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write report.md, report.html, confusion_matrix.png, per_fold_accuracy.png, megc_log.txt and scores.json.

    `out` defaults to the run folder. Metrics pool the predictions of all complete folds (MEGC way); missing
    folds stamp the report PARTIAL and are listed; a leaky run (loso.json) is stamped LEAKY. Returns the
    report.md path.
    """
    run = load_run(run_dir)
    out = Path(out) if out is not None else Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    scores = run.scores()
    headline = run.headline
    comp = scores[headline][COMPOSITE]
    pred = run.predictions
    stamps = _stamps(run)

    doc = _Doc(f"LOSO report: {run.name}" + (f" [{' / '.join(stamps)}]" if stamps else ""))
    _add_banners(doc, run)
    n_subjects = pred[["dataset", "subject"]].drop_duplicates().shape[0]
    doc.bullets(
        [
            f"Run folder: `{run.run_dir}`",
            f"Folds: {len(run.folds)} complete of {run.n_planned}" + (" (PARTIAL)" if run.partial else ""),
            f"Samples: {len(pred)} from {n_subjects} subjects; datasets: "
            + ", ".join(f"{d} {k}" for d, k in pred.groupby("dataset").size().items()),
            f"Headline ({CLASSIFIER_NAMES[headline]}, pooled): accuracy {comp['accuracy']:.4f}, "
            f"UAR {comp['uar']:.4f}, UF1 {comp['uf1']:.4f}",
        ]
        + [f"Note: {p}" for p in run.problems]
    )

    doc.heading("Scores (pooled over all folds)")
    doc.para(
        "MEGC2019 protocol: the predictions of every fold are pooled, TP/FP/FN of each class are summed, then "
        "per-class recall and F1 are averaged without weights (UAR, UF1). Classes absent from a set's ground "
        "truth are left out of its means (`classes scored`). Per-fold numbers appear only in the per-fold table."
    )
    doc.table(_scores_table(scores))

    doc.heading("Per-class scores (composite)")
    doc.table(_per_class_table(scores))

    doc.heading("Confusion matrices (composite)")
    png = _confusion_png(scores)
    (out / CONFUSION_PNG).write_bytes(png)
    doc.image(CONFUSION_PNG, "confusion matrices", png)
    for clf, pooled in scores.items():
        doc.para(f"**{CLASSIFIER_NAMES[clf]}** (rows: true class, columns: predicted class)")
        doc.table(_confusion_table(pooled[COMPOSITE]))

    doc.heading("Comparison with published results")
    doc.para(
        f"Published composite UF1/UAR are LOSO on the MEGC2019 composite ({MEGC2019_SAMPLES} samples, "
        f"{MEGC2019_SUBJECTS} subjects); Liu et al. 2022 report composite accuracy only. This run pooled "
        f"{len(pred)} samples from {n_subjects} subjects"
        + (
            "."
            if (len(pred), n_subjects) == (MEGC2019_SAMPLES, MEGC2019_SUBJECTS)
            else ", so it is not the benchmark set and the rows are not directly comparable."
        )
    )
    doc.table(_comparison_table(scores, "this run" + (f" [{' / '.join(stamps)}]" if stamps else "")))

    doc.heading("Per-fold results")
    fold_table = _fold_table(run)
    png = _per_fold_png(fold_table, run, scores)
    (out / PER_FOLD_PNG).write_bytes(png)
    doc.image(PER_FOLD_PNG, "per-fold accuracy", png)
    doc.para("Per-fold accuracy is a diagnostic table; it is never averaged into the headline.")
    doc.table(_shown_fold_table(fold_table, run))

    doc.heading("Time per fold")
    secs = fold_table["seconds"].dropna()
    if len(secs):
        doc.table(
            pd.DataFrame(
                [
                    {
                        "folds timed": len(secs),
                        "mean s": _fmt(float(secs.mean()), 1),
                        "median s": _fmt(float(secs.median()), 1),
                        "max s": _fmt(float(secs.max()), 1),
                        "total s": _fmt(float(secs.sum()), 1),
                        "total h:mm:ss": _hms(float(secs.sum())),
                    }
                ]
            )
        )
    else:
        doc.para("No fold recorded its time (`seconds` in metrics.json).")

    if run.partial:
        doc.heading("Missing folds")
        doc.para(
            f"{len(run.missing)} of {run.n_planned} folds have no complete result (both predictions.csv and "
            "metrics.json); rerun the same `mer loso` command to resume them."
        )
        doc.bullets([f"`{f}`" for f in run.missing])

    doc.heading("MEGC log")
    log_path = write_megc_log(run, out / "megc_log.txt", headline)
    doc.para(
        f"`{log_path.name}` holds the {CLASSIFIER_NAMES[headline]} predictions, one tab-separated line per fold: "
        "the fold, then one `<sample_id>:pred=<predicted>:true=<ground truth>` token per held-out sample; "
        "lines starting with `#` are comments."
    )

    doc.heading("Provenance")
    info = run.run_info
    doc.bullets(
        [
            f"Seed: {info.get('seed', (run.config or {}).get('seed', '—'))}",
            f"Git commit: `{info.get('git_commit') or 'unknown'}`",
            f"Command: `{info.get('command') or 'unknown'}`",
        ]
        + [f"{k}: {v}" for k, v in run.notes.items() if k != "planned_folds"]
    )
    versions = info.get("versions") or {}
    if versions:
        doc.table(pd.DataFrame({"package": list(versions), "version": [str(v) for v in versions.values()]}))

    doc.heading("Resolved config")
    if run.config_text is not None:
        doc.code(run.config_text, "yaml", summary="config.yaml (click to expand)")
    else:
        doc.para("config.yaml is missing from the run folder.")

    md_path = out / "report.md"
    doc.write(md_path, out / "report.html")
    summary = {
        "name": run.name,
        "partial": run.partial,
        "leaky": run.leaky,
        "complete_folds": len(run.folds),
        "planned_folds": run.n_planned,
        "missing_folds": run.missing,
        "headline": headline,
        "scores": scores,
    }
    (out / "scores.json").write_text(json.dumps(summary, indent=2))
    return md_path


# ---------------------------------------------------------------------------------------------- compare


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
            "status": " / ".join(_stamps(run)) or "complete",
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
    table.to_csv(out / "compare.csv", index=False)
    doc = _Doc("LOSO run comparison")
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
    doc.table(_comparison_table({}, "")[["method", "UF1", "UAR", "accuracy", "source"]])
    doc.heading("Run folders")
    doc.bullets([f"{label}: `{run.run_dir}`" for label, run in zip(labels, runs, strict=True)])
    md_path = out / "compare.md"
    doc.write(md_path, out / "compare.html")
    return md_path
