"""Reading a `mer loso` run folder: pooled predictions of its complete folds, fold metrics and provenance.

`load_run` reads what `mer loso` writes (`config.yaml`, `run_info.json`, optional `loso.json` notes and
`folds/<subject>/{predictions.csv, metrics.json}`), checks it, and tells complete folds from missing ones.
`load_seeds` reads a multi-seed folder (`seeds.json`, `seed<k>/` run folders), or one run as a single seed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mer import class_schemes
from mer.config import CLASSES
from mer.errors import MerError
from mer.evaluation.metrics import pooled_scores
from mer.evaluation.selection import leaky_reasons
from mer.files import natural_key

PREDICTION_COLUMNS = ("sample_id", "dataset", "subject", "label", "svm_pred", "softmax_pred")
CLASSIFIERS = {"svm": "svm_pred", "softmax": "softmax_pred"}
CLASSIFIER_NAMES = {"svm": "SVM", "softmax": "softmax"}
SEEDS_FILE = "seeds.json"  # written by `mer loso --seeds` at the top of a multi-seed folder
SEED_DIR = re.compile(r"seed(-?\d+)")


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
    def tested(self) -> dict[str, set[str]]:
        """Each complete fold's test subjects: its metrics.json `held_out` plus the subjects it predicted."""
        out = {str(f): set(g["subject"].astype(str)) for f, g in self.predictions.groupby("fold")}
        for _, row in self.folds.iterrows():
            held = row.get("held_out")
            out.setdefault(str(row["fold"]), set()).update(str(s) for s in held if isinstance(held, list))
        return out

    @property
    def leaky_reasons(self) -> list[str]:
        """Why a LOSO test subject took part in choosing the hyper-parameters (empty: none did); see selection.py."""
        rows = self.folds.to_dict("records") if "selection" in self.folds.columns else []
        fold_sel = {str(r["fold"]): r["selection"] for r in rows if isinstance(r["selection"], dict)}
        return leaky_reasons(self.notes.get("selection"), self.tested, fold_sel)

    @property
    def leaky(self) -> bool:
        """True when a subject this run tests helped choose its hyper-parameters (compared as subject sets)."""
        return bool(self.leaky_reasons)

    @property
    def classes(self) -> list[str]:
        """The run's classes in its config's order (data.classes: a scheme or a list), megc3's without a config."""
        return config_classes(self.config)

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

    @property
    def stamps(self) -> list[str]:
        """The report's warning stamps: LEAKY and/or PARTIAL, in that order."""
        return [s for s, on in (("LEAKY", self.leaky), ("PARTIAL", self.partial)) if on]

    def scores(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Pooled MEGC scores per classifier: {classifier: {"composite": ..., dataset: ...}}."""
        return {c: pooled_scores(self.predictions, CLASSIFIERS[c], self.classes) for c in self.classifiers}


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


def config_classes(config: dict[str, Any]) -> list[str]:
    """The classes of a run's config.yaml (as a dict): its data.classes scheme or list; megc3's when absent."""
    value = (config.get("data") or {}).get("classes") or list(CLASSES)
    try:
        return class_schemes.classes_of(value)
    except ValueError as err:
        raise MerError(f"config.yaml data.classes: {err}") from None


def _read_fold(folder: Path, rel: str, classes: Sequence[str] = CLASSES) -> tuple[pd.DataFrame, dict[str, Any]]:
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
        bad = sorted(set(df[col].dropna()) - set(classes))
        if bad:
            raise MerError(f"{pred_path}: column {col} has values {bad}; expected one of {', '.join(classes)}")
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
        df, metrics = _read_fold(folder, folder.relative_to(folds_dir).as_posix(), config_classes(config))
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


def seed_dir(out: str | Path, seed: int) -> Path:
    """The run folder of one seed in a multi-seed folder: `OUT/seed<k>`."""
    return Path(out) / f"seed{seed}"


def _seed_dirs(run_dir: Path) -> dict[int, Path]:
    found = {}
    for d in run_dir.iterdir() if run_dir.is_dir() else []:
        m = SEED_DIR.fullmatch(d.name)
        if m and d.is_dir():
            found[int(m.group(1))] = d
    return found


def is_multi_seed(run_dir: str | Path) -> bool:
    """A multi-seed folder: `seeds.json`, or no `folds/` of its own but `seed<k>/folds/` subfolders."""
    run_dir = Path(run_dir)
    if (run_dir / SEEDS_FILE).is_file():
        return True
    return not (run_dir / "folds").is_dir() and any((d / "folds").is_dir() for d in _seed_dirs(run_dir).values())


@dataclass
class SeedRuns:
    """One protocol run once per seed (`mer loso --seeds`), or a single run seen as one seed."""

    run_dir: Path
    name: str
    seeds: list[int]  # seeds with at least one complete fold, in planned order
    runs: list[RunResults]  # one per seed in `seeds`
    missing_seeds: list[int]  # planned seeds without any complete fold
    multi: bool  # a multi-seed folder (False: a plain run folder)
    config: dict[str, Any] = field(default_factory=dict)
    config_text: str | None = None
    run_info: dict[str, Any] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        """True when a planned seed has no result or a seed's run is partial."""
        return bool(self.missing_seeds) or any(r.partial for r in self.runs)

    @property
    def leaky(self) -> bool:
        """True when any seed's run is stamped LEAKY."""
        return any(r.leaky for r in self.runs)

    @property
    def stamps(self) -> list[str]:
        """LEAKY and/or PARTIAL, in that order."""
        return [s for s, on in (("LEAKY", self.leaky), ("PARTIAL", self.partial)) if on]

    @property
    def classifiers(self) -> list[str]:
        """Classifiers with predictions in every seed."""
        return [c for c in CLASSIFIERS if all(c in r.classifiers for r in self.runs)]

    @property
    def headline(self) -> str:
        """The headline classifier of the first seed (every seed shares the config)."""
        wanted = self.runs[0].headline
        return wanted if wanted in self.classifiers else self.classifiers[0]

    def frames(self) -> list[pd.DataFrame]:
        """Each seed's pooled predictions."""
        return [r.predictions for r in self.runs]


def load_seeds(run_dir: str | Path) -> SeedRuns:
    """Read a multi-seed folder (every `seed<k>/` run with a complete fold) or one run folder as a single seed."""
    run_dir = Path(run_dir)
    if not is_multi_seed(run_dir):
        run = load_run(run_dir)
        seed = run.run_info.get("seed", run.config.get("seed", 0))
        return SeedRuns(run_dir, run.name, [int(seed)], [run], [], False, run.config, run.config_text, run.run_info)
    problems: list[str] = []
    meta = _read_json(run_dir / SEEDS_FILE, problems) if (run_dir / SEEDS_FILE).is_file() else {}
    found = _seed_dirs(run_dir)
    planned = [int(s) for s in meta.get("seeds") or sorted(found)]
    planned += [s for s in sorted(found) if s not in planned]
    seeds, runs, missing = [], [], []
    for s in planned:
        d = found.get(s)
        if d is None or not (d / "folds").is_dir() or not any((d / "folds").rglob("metrics.json")):
            missing.append(s)
            continue
        try:
            runs.append(load_run(d))
        except MerError as exc:
            if "no complete fold" not in str(exc):
                raise
            missing.append(s)
            continue
        seeds.append(s)
    if not runs:
        raise MerError(f"{run_dir}: no seed folder (seed<k>/) has a complete fold; run or resume `mer loso` first")
    config_text = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").is_file() else None
    try:
        loaded = yaml.safe_load(config_text) if config_text else None
    except yaml.YAMLError:
        loaded = None
    config = loaded if isinstance(loaded, dict) else runs[0].config
    run_info = _read_json(run_dir / "run_info.json", problems) if (run_dir / "run_info.json").is_file() else {}
    name = str(meta.get("name") or config.get("name") or run_dir.resolve().name)
    return SeedRuns(run_dir, name, seeds, runs, missing, True, config, config_text, run_info)
