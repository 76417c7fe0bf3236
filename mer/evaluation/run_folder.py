"""The run folder: the one module that knows where a LOSO run keeps what, and what a fold's result holds.

A run folder (`mer loso --out OUT`) holds:

* `config.yaml`, `run_info.json` (the last call's config and provenance, `mer.provenance.write_run_info`),
  `runs.jsonl` (one record per call, appended, never rewritten) and `loso.json` (the notes a resume must share);
* `folds/<fold>/predictions.csv` and `folds/<fold>/metrics.json` (a fold is complete when both exist: they are
  written atomically, metrics last), and `train/<fold>/` (the fold's training logs);
* once every fold is done, the report: `report.md`, `report.html`, `scores.json`, the figures and the MEGC log
  (a lodo / dfme run adds one run folder per held-out dataset or test split: `held_out/<fold>/`);
* a multi-seed study (`mer loso --seeds`) instead holds `seeds.json` and one run folder per seed, `seed<k>/`.

`FoldResult` is a fold's predictions frame and typed metrics (`FoldMetrics`, with the regime it ran under), written
and read only here. The prediction columns and the classifiers are listed here, once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer import constraints
from mer.config import CLASSES
from mer.errors import MerError
from mer.files import atomic_write_json, atomic_write_text, natural_key
from mer.provenance import CONFIG_FILE, RUN_INFO_FILE

ID_COLUMNS = ("sample_id", "dataset", "subject", "label")
# classifier (the allowed names are mer.constraints.CLASSIFIERS) → its prediction column and its name in reports
CLASSIFIERS = {name: f"{name}_pred" for name in constraints.CLASSIFIERS}
CLASSIFIER_NAMES = {name: {"svm": "SVM"}.get(name, name) for name in constraints.CLASSIFIERS}
BASE_COLUMNS = (*ID_COLUMNS, *CLASSIFIERS.values())

PREDICTIONS = "predictions.csv"
METRICS = "metrics.json"
CONFIG = CONFIG_FILE  # written by `mer.provenance.write_run_info`, as RUN_INFO
RUN_INFO = RUN_INFO_FILE
RUN_RECORDS = "runs.jsonl"
NOTES = "loso.json"
SEEDS_FILE = "seeds.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
SCORES = "scores.json"
CONFUSION_PNG = "confusion_matrix.png"
PER_FOLD_PNG = "per_fold_accuracy.png"
MEGC_LOG = "megc_log.txt"
HELD_OUT_DIR = "held_out"  # a lodo / dfme run's report per held-out dataset or test split: held_out/<fold>/
SEED_DIR = re.compile(r"seed(-?\d+)")


def prediction_columns(classes: Sequence[str]) -> list[str]:
    """Columns of a fold's predictions.csv: ids, label, both predictions, one `prob_<class>` per config class."""
    return [*BASE_COLUMNS, *(f"prob_{c}" for c in classes)]


@dataclass
class FoldMetrics:
    """A fold's metrics.json: what it held out and trained on, its accuracies, the SVM's choice, the network's best
    epoch, its time, the regime it ran under (`mer.provenance.regime`) and `extra` fields (a nested fold's
    `selection`). Fields absent from an older file read as None."""

    fold: str
    index: int | None = None
    held_out: list[str] = field(default_factory=list)
    seed: int | None = None
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    val_subjects: list[str] = field(default_factory=list)
    svm_accuracy: float | None = None
    softmax_accuracy: float | None = None
    svm_params: dict[str, Any] | None = None
    best_epoch: int | None = None
    best_val: float | None = None
    monitor: str | None = None
    epochs: int | None = None
    seconds: float | None = None
    provenance: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: every field, with `extra`'s keys at the top level."""
        out = asdict(self)
        return {**{k: v for k, v in out.items() if k != "extra"}, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any], default_fold: str) -> FoldMetrics:
        """The metrics of a metrics.json object; unknown keys go to `extra`."""
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        known["fold"] = str(known.get("fold") or default_fold)
        for key in ("held_out", "val_subjects"):
            if key in known and known[key] is None:
                known[key] = []
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})


@dataclass
class FoldResult:
    """One fold's predictions (`prediction_columns` of the run's classes) and metrics."""

    predictions: pd.DataFrame
    metrics: FoldMetrics

    @classmethod
    def build(
        cls,
        test: pd.DataFrame,
        classes: Sequence[str],
        *,
        svm_pred: Sequence[str] | np.ndarray | None,
        probs: np.ndarray | None,
        fold: str,
        index: int,
        held_out: Sequence[str],
        seed: int,
        n_train: int,
        n_val: int = 0,
        val_subjects: Sequence[str] = (),
        svm_params: dict[str, Any] | None = None,
        best_epoch: int | None = None,
        best_val: float | None = None,
        monitor: str | None = None,
        epochs: int = 0,
        seconds: float = 0.0,
        provenance: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> FoldResult:
        """A fold's result from its held-out rows (`test`), the SVM's predictions (None: no SVM was fitted, the column
        stays empty) and the network's class probabilities in `classes` order (None: no network, no softmax head)."""
        preds = test[list(ID_COLUMNS)].copy()
        n = len(preds)
        preds["svm_pred"] = (svm_pred if n else []) if svm_pred is not None else ""
        preds["softmax_pred"] = ([classes[i] for i in probs.argmax(1)] if n else []) if probs is not None else ""
        for i, c in enumerate(classes):  # the network's outputs are in data.classes order (the datamodule's label ids)
            preds[f"prob_{c}"] = (probs[:, i] if n else []) if probs is not None else np.nan
        preds = preds[prediction_columns(classes)]
        hit = lambda col: float((preds[col] == preds["label"]).mean())  # noqa: E731
        metrics = FoldMetrics(
            fold=fold,
            index=index,
            held_out=list(held_out),
            seed=seed,
            n_train=n_train,
            n_val=n_val,
            n_test=n,
            val_subjects=list(val_subjects),
            svm_accuracy=hit("svm_pred") if n and svm_pred is not None else None,
            softmax_accuracy=hit("softmax_pred") if n and probs is not None else None,
            svm_params=svm_params,
            best_epoch=best_epoch,
            best_val=best_val,
            monitor=monitor,
            epochs=epochs,
            seconds=round(seconds, 2),
            provenance=provenance,
            extra=dict(extra or {}),
        )
        return cls(preds, metrics)

    def write(self, fold_dir: Path) -> None:
        """predictions.csv, then metrics.json (the completeness marker), each atomically."""
        fold_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(fold_dir / PREDICTIONS, self.predictions.to_csv(index=False))
        atomic_write_json(fold_dir / METRICS, self.metrics.to_dict(), default=float)

    @classmethod
    def read(cls, fold_dir: Path, name: str, classes: Sequence[str] = CLASSES) -> FoldResult:
        """A complete fold's result, checked: readable files, the prediction columns, labels and predictions among
        the run's `classes`, filled prediction columns, and no predicted subject that the fold did not hold out.
        MerError naming the file."""
        metrics = FoldMetrics.from_dict(read_metrics(fold_dir), name)
        pred_path = fold_dir / PREDICTIONS
        try:
            df = pd.read_csv(pred_path, dtype={c: str for c in BASE_COLUMNS})
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise MerError(f"{pred_path}: not a readable CSV ({exc.__class__.__name__}); rerun that fold") from None
        missing = [c for c in BASE_COLUMNS if c not in df.columns]
        if missing:
            raise MerError(f"{pred_path}: missing columns {missing}; expected at least {', '.join(BASE_COLUMNS)}")
        for col in ("label", *CLASSIFIERS.values()):
            bad = sorted(set(df[col].dropna()) - set(classes))
            if bad:
                raise MerError(f"{pred_path}: column {col} has values {bad}; expected one of {', '.join(classes)}")
        for col in CLASSIFIERS.values():
            n_empty = int(df[col].isna().sum())
            if 0 < n_empty < len(df):
                raise MerError(f"{pred_path}: column {col} is empty in {n_empty} of {len(df)} rows; rerun that fold")
        if metrics.held_out:
            stray = sorted(set(df["subject"]) - {str(s) for s in metrics.held_out})
            if stray:
                raise MerError(
                    f"{pred_path}: predictions for subjects {stray} that are not held out in this fold "
                    f"(metrics.json held_out = {metrics.held_out}); the fold is inconsistent, rerun it"
                )
        return cls(df, metrics)


def read_metrics(fold_dir: Path) -> dict[str, Any]:
    """A fold's metrics.json as a dict; MerError naming the file when it is not a JSON object."""
    return _read_object(fold_dir / METRICS, "the fold's metrics", "delete the fold folder and rerun `mer loso`")


def _read_object(path: Path, what: str, fix: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MerError(f"{path}: not valid JSON ({exc}); {fix}") from None
    if not isinstance(data, dict):
        raise MerError(f"{path}: expected a JSON object of {what}")
    return data


class RunFolder:
    """A `mer loso` run folder (or a seed study's top folder): paths, fold completeness, notes and run records."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # ---------------------------------------------------------------------------------------- files
    @property
    def folds_dir(self) -> Path:
        """`folds/`: one folder per fold."""
        return self.path / "folds"

    def file(self, name: str) -> Path:
        """A top-level file of the folder (one of this module's names: CONFIG, NOTES, SCORES, REPORT_MD, ...)."""
        return self.path / name

    def fold_dir(self, fold: str) -> Path:
        """Folder of a fold's results (`folds/casme2/sub01`)."""
        return self.folds_dir / fold

    def train_dir(self, fold: str) -> Path:
        """Folder of a fold's (or `final`'s) training logs and checkpoints (`train/casme2/sub01`)."""
        return self.path / "train" / fold

    # ---------------------------------------------------------------------------------------- folds
    def fold_complete(self, fold: str) -> bool:
        """A fold is complete when both of its result files exist (they are written atomically, metrics last)."""
        d = self.fold_dir(fold)
        return (d / PREDICTIONS).is_file() and (d / METRICS).is_file()

    def has_folds(self) -> bool:
        """The folder holds at least one complete fold (only then is there anything a resume could mix with)."""
        return self.folds_dir.is_dir() and any(self.fold_complete(p.parent.relative_to(self.folds_dir).as_posix())
                                               for p in self.folds_dir.rglob(METRICS))  # fmt: skip

    def scan_folds(self) -> tuple[list[str], list[str]]:
        """(complete folds, started-but-incomplete folds) under folds/, as names relative to it, hidden folders
        ignored; a folder whose only content is sub-folders is a parent (`casme2/`), not a fold."""
        complete: list[str] = []
        started: list[str] = []
        if not self.folds_dir.is_dir():
            return complete, started
        for d in self.folds_dir.rglob("*"):
            rel = d.relative_to(self.folds_dir)
            if not d.is_dir() or any(part.startswith(".") for part in rel.parts):
                continue
            has_pred, has_metrics = (d / PREDICTIONS).is_file(), (d / METRICS).is_file()
            has_subdirs = any(c.is_dir() and not c.name.startswith(".") for c in d.iterdir())
            if has_pred and has_metrics:
                complete.append(rel.as_posix())
            elif has_pred or has_metrics or not has_subdirs:
                started.append(rel.as_posix())
        return sorted(complete, key=natural_key), sorted(started, key=natural_key)

    def start_fold(self, fold: str) -> None:
        """Create a fold's folder before it runs: a fold that dies now is listed as started (missing) by reports."""
        self.fold_dir(fold).mkdir(parents=True, exist_ok=True)

    def write_fold(self, fold: str, result: FoldResult) -> None:
        """Write a fold's result (predictions, then metrics: the fold is complete once this returns)."""
        result.write(self.fold_dir(fold))

    def read_fold(self, fold: str, classes: Sequence[str] = CLASSES) -> FoldResult:
        """A complete fold's checked result (`FoldResult.read`) for a run of `classes`."""
        return FoldResult.read(self.fold_dir(fold), fold, classes)

    def fold_metrics(self) -> dict[str, FoldMetrics]:
        """The metrics of every complete fold, by fold name."""
        return {f: FoldMetrics.from_dict(read_metrics(self.fold_dir(f)), f) for f in self.scan_folds()[0]}

    def fold_regimes(self) -> dict[str, dict[str, Any]]:
        """The regime each complete fold recorded (folds from before regimes were recorded are left out)."""
        return {f: m.provenance for f, m in self.fold_metrics().items() if isinstance(m.provenance, dict)}

    # ---------------------------------------------------------------------------------------- notes and records
    def read_notes(self) -> dict[str, Any]:
        """loso.json (what a resume must share: inputs, selection, planned folds); {} when there is none."""
        path = self.file(NOTES)
        return _read_object(path, "run notes", "fix or delete it") if path.exists() else {}

    def write_notes(self, notes: dict[str, Any]) -> None:
        """Write loso.json atomically."""
        atomic_write_json(self.file(NOTES), notes)

    def planned_folds(self) -> list[str]:
        """The folds loso.json plans (empty without notes)."""
        return [str(f) for f in self.read_notes().get("planned_folds") or []]

    def append_run_record(self, record: dict[str, Any]) -> None:
        """Append one call's record to runs.jsonl (one line, one write: concurrent array tasks do not interleave)."""
        self.path.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, default=str, sort_keys=False) + "\n"
        with open(self.file(RUN_RECORDS), "a", encoding="utf-8") as fh:
            fh.write(line)

    def run_records(self) -> list[dict[str, Any]]:
        """Every call's record from runs.jsonl, oldest first; unreadable lines are skipped."""
        path = self.file(RUN_RECORDS)
        if not path.is_file():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

    def read_config_text(self) -> str | None:
        """config.yaml's text, or None when missing."""
        path = self.file(CONFIG)
        return path.read_text() if path.is_file() else None

    def read_json(self, name: str, problems: list[str]) -> dict[str, Any]:
        """A top-level JSON file as a dict; a missing or unreadable one adds a line to `problems` and gives {}."""
        path = self.file(name)
        if not path.is_file():
            problems.append(f"{name} is missing")
            return {}
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            problems.append(f"{name} could not be read ({exc.__class__.__name__})")
            return {}
        return data if isinstance(data, dict) else {}

    def finished(self) -> bool:
        """Every fold planned in loso.json is complete and the report's scores.json exists."""
        if not self.file(NOTES).is_file() or not self.file(SCORES).is_file():
            return False
        planned = self.planned_folds()
        return bool(planned) and all(self.fold_complete(f) for f in planned)

    def held_out(self, fold: str) -> RunFolder:
        """The run folder of one held-out dataset's (or test split's) own report in a lodo / dfme run."""
        return RunFolder(self.path / HELD_OUT_DIR / fold)

    # ---------------------------------------------------------------------------------------- seed studies
    def seed(self, seed: int) -> RunFolder:
        """The run folder of one seed in a multi-seed folder: `seed<k>/`."""
        return RunFolder(self.path / f"seed{seed}")

    def seed_folders(self) -> dict[int, RunFolder]:
        """The `seed<k>/` sub-folders present, by seed."""
        found = {}
        for d in self.path.iterdir() if self.path.is_dir() else []:
            m = SEED_DIR.fullmatch(d.name)
            if m and d.is_dir():
                found[int(m.group(1))] = RunFolder(d)
        return found

    def is_multi_seed(self) -> bool:
        """A multi-seed folder: `seeds.json`, or no `folds/` of its own but `seed<k>/folds/` subfolders."""
        if self.file(SEEDS_FILE).is_file():
            return True
        return not self.folds_dir.is_dir() and any(f.folds_dir.is_dir() for f in self.seed_folders().values())

    def study_folders(self) -> list[RunFolder]:
        """The run folders that hold this folder's folds: itself, or each seed folder of a study."""
        return list(self.seed_folders().values()) if self.is_multi_seed() else [self]


def regimes_of(folders: Iterable[RunFolder], root: Path) -> dict[str, dict[str, Any]]:
    """The recorded regime of every complete fold in `folders`, keyed by its path under `root` without `folds/`
    (`casme2/sub01` in a run folder, `seed1/casme2/sub01` in a seed study)."""
    out: dict[str, dict[str, Any]] = {}
    for folder in folders:
        rel = folder.path.relative_to(root).as_posix() if folder.path != root else ""
        out.update({f"{rel}/{f}" if rel else f: r for f, r in folder.fold_regimes().items()})
    return out
