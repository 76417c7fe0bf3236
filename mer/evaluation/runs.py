"""Reading a `mer loso` run folder: pooled predictions of its complete folds, fold metrics and provenance.

`load_run` reads what `mer loso` writes (the layout is `mer.evaluation.run_folder`'s), checks it, and tells complete
folds from missing ones; `load_seeds` reads a multi-seed folder (`seeds.json`, `seed<k>/` run folders), or one run
as a single seed. A run is stamped LEAKY (its test subjects chose its hyper-parameters), MIXED (its folds ran under
different regimes: code, package versions or numerics) and/or PARTIAL (folds are missing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mer import class_schemes
from mer.config import CLASSES
from mer.errors import MerError
from mer.evaluation.metrics import pooled_scores
from mer.evaluation.run_folder import CLASSIFIERS, CONFIG, RUN_INFO, SEEDS_FILE, RunFolder
from mer.evaluation.selection import leaky_reasons
from mer.files import natural_key
from mer.provenance import regime_key


def mixed_regimes(regimes: dict[str, dict[str, Any]]) -> list[tuple[dict[str, Any], list[str]]]:
    """The distinct regimes among `regimes` (fold → regime), each with its folds in natural order, most folds first;
    more than one means the folds are MIXED."""
    groups: dict[Any, tuple[dict[str, Any], list[str]]] = {}
    for fold in sorted(regimes, key=natural_key):
        groups.setdefault(regime_key(regimes[fold]), (regimes[fold], []))[1].append(fold)
    return sorted(groups.values(), key=lambda g: -len(g[1]))


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
    regimes: dict[str, dict[str, Any]] = field(default_factory=dict)  # complete fold → the regime it recorded
    run_records: list[dict[str, Any]] = field(default_factory=list)  # runs.jsonl: one record per call

    @property
    def partial(self) -> bool:
        """True when some planned or started folds are not complete."""
        return bool(self.missing)

    @property
    def regime_groups(self) -> list[tuple[dict[str, Any], list[str]]]:
        """The distinct regimes of the complete folds, each with its folds (`mixed_regimes`)."""
        return mixed_regimes(self.regimes)

    @property
    def mixed(self) -> bool:
        """True when the complete folds recorded more than one regime (code, versions or resolved numerics)."""
        return len(self.regime_groups) > 1

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
        return leaky_reasons(self.notes.get("selection"), self.tested, fold_sel, self.notes.get("pretrained_selection"))

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
        """The report's warning stamps: LEAKY, MIXED and/or PARTIAL, in that order."""
        return [s for s, on in (("LEAKY", self.leaky), ("MIXED", self.mixed), ("PARTIAL", self.partial)) if on]

    def scores(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Pooled MEGC scores per classifier: {classifier: {"composite": ..., dataset: ...}}."""
        return {c: pooled_scores(self.predictions, CLASSIFIERS[c], self.classes) for c in self.classifiers}


def config_classes(config: dict[str, Any]) -> list[str]:
    """The classes of a run's config.yaml (as a dict): its data.classes scheme or list; megc3's when absent."""
    value = (config.get("data") or {}).get("classes") or list(CLASSES)
    try:
        return class_schemes.classes_of(value)
    except ValueError as err:
        raise MerError(f"config.yaml data.classes: {err}") from None


def load_run(run_dir: str | Path) -> RunResults:
    """Read a `mer loso` run folder; raise MerError when it is missing or has no complete fold."""
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    if not run_dir.is_dir():
        raise MerError(f"run folder not found: {run_dir} (give the --out folder of a `mer loso` run)")
    folds_dir = folder.folds_dir
    if not folds_dir.is_dir():
        raise MerError(f"{run_dir}: no folds/ folder; is this a `mer loso` run folder? (expected folds/<subject>/)")
    problems: list[str] = []
    notes = folder.read_notes()  # unreadable notes are fatal: they may carry the LEAKY stamp
    run_info = folder.read_json(RUN_INFO, problems)
    config_text = folder.read_config_text()
    config: dict[str, Any] = {}
    if config_text is not None:
        try:
            loaded = yaml.safe_load(config_text)
            config = loaded if isinstance(loaded, dict) else {}
        except yaml.YAMLError:
            problems.append(f"{CONFIG} is not valid YAML")
    else:
        problems.append(f"{CONFIG} is missing")

    complete, started = folder.scan_folds()
    if not complete:
        detail = f" ({len(started)} started, none has both predictions.csv and metrics.json)" if started else ""
        raise MerError(f"{folds_dir}: no complete fold{detail}; run or resume `mer loso` first")

    frames, rows, regimes = [], [], {}
    for rel in complete:
        result = folder.read_fold(rel, config_classes(config))
        df, metrics = result.predictions, result.metrics
        df.insert(0, "fold", metrics.fold)
        frames.append(df)
        rows.append({**metrics.to_dict(), "path": rel})
        if isinstance(metrics.provenance, dict):
            regimes[metrics.fold] = metrics.provenance
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
    missing |= set(started) - done
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
        regimes=regimes,
        run_records=folder.run_records(),
    )


def is_multi_seed(run_dir: str | Path) -> bool:
    """A multi-seed folder: `seeds.json`, or no `folds/` of its own but `seed<k>/folds/` subfolders."""
    return RunFolder(run_dir).is_multi_seed()


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
    def regime_groups(self) -> list[tuple[dict[str, Any], list[str]]]:
        """The distinct regimes over every seed's complete folds (`seed<k>/<fold>` in a study)."""
        if not self.multi:
            return self.runs[0].regime_groups
        pairs = zip(self.seeds, self.runs, strict=True)
        return mixed_regimes({f"seed{s}/{f}": r for s, run in pairs for f, r in run.regimes.items()})

    @property
    def mixed(self) -> bool:
        """True when the folds of the study (any seed) ran under more than one regime."""
        return len(self.regime_groups) > 1

    @property
    def stamps(self) -> list[str]:
        """LEAKY, MIXED and/or PARTIAL, in that order."""
        return [s for s, on in (("LEAKY", self.leaky), ("MIXED", self.mixed), ("PARTIAL", self.partial)) if on]

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
    folder = RunFolder(run_dir)
    if not folder.is_multi_seed():
        run = load_run(run_dir)
        seed = run.run_info.get("seed", run.config.get("seed", 0))
        return SeedRuns(run_dir, run.name, [int(seed)], [run], [], False, run.config, run.config_text, run.run_info)
    problems: list[str] = []
    meta = folder.read_json(SEEDS_FILE, problems) if folder.file(SEEDS_FILE).is_file() else {}
    found = folder.seed_folders()
    planned = [int(s) for s in meta.get("seeds") or sorted(found)]
    planned += [s for s in sorted(found) if s not in planned]
    seeds, runs, missing = [], [], []
    for s in planned:
        d = found.get(s)
        if d is None or not d.has_folds():
            missing.append(s)
            continue
        runs.append(load_run(d.path))
        seeds.append(s)
    if not runs:
        raise MerError(f"{run_dir}: no seed folder (seed<k>/) has a complete fold; run or resume `mer loso` first")
    config_text = folder.read_config_text()
    try:
        loaded = yaml.safe_load(config_text) if config_text else None
    except yaml.YAMLError:
        loaded = None
    config = loaded if isinstance(loaded, dict) else runs[0].config
    run_info = folder.read_json(RUN_INFO, problems) if folder.file(RUN_INFO).is_file() else {}
    name = str(meta.get("name") or config.get("name") or run_dir.resolve().name)
    return SeedRuns(run_dir, name, seeds, runs, missing, True, config, config_text, run_info)
