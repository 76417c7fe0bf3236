"""The spotting run folder (`mer spot --data ... --out OUT`): the one module that knows where a spotting run keeps
what, so a killed run resumes fold by fold and never mixes the folds of other inputs.

OUT holds:

* `spot_run.json`: the run record, what every fold depends on (the settings, each dataset's videos with a stamp of
  their frames, the `--recognise` config and its `--pretrained` checkpoint's hash, the mer commit and package
  versions; not the seeds, which only pick folds). A call whose record differs is refused, naming the first
  difference (`check_record`);
* `folds/<dataset>/<spotter>/seed<k>/<subject>.json`: one finished fold (`FoldRun`: what the spotter chose, its
  intervals of the held-out subject's videos, and with STR their labels and what the recogniser was trained on),
  written atomically once the fold is done, so a fold file is complete or absent;
* `str/<dataset>/`: a network recogniser's working files (`STR_DIR`: the training intervals' apex crops, and its
  training logs while a fold trains);
* `features/`: the region features of each video (`FEATURES_DIR`, stamped, `mer.spotting.datasets.video_features`);
* the report, rebuilt from the fold files by every call: `spot_report.md`, `spot_scores.json`, `reader_report.csv`
  and `predictions_<dataset>_<spotter>.csv`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mer.data.intervals import Interval
from mer.errors import MerError
from mer.files import atomic_write_json
from mer.provenance import git_state, versions
from mer.spotting.evaluate import FoldRun

RUN_RECORD = "spot_run.json"
FOLDS_DIR = "folds"
FEATURES_DIR = "features"
STR_DIR = "str"
REPORT_MD = "spot_report.md"
SCORES_JSON = "spot_scores.json"
READER_REPORT = "reader_report.csv"


def predictions_file(dataset: str, spotter: str) -> str:
    """The name of a dataset's and spotter's pooled predictions CSV."""
    return f"predictions_{dataset}_{spotter}.csv"


def code_record() -> dict[str, Any]:
    """The code a fold ran with: mer commit, whether the checkout had changes, Python and package versions."""
    commit, dirty = git_state()
    return {"mer_commit": commit, "dirty": dirty, "versions": {k: v for k, v in versions().items() if k != "platform"}}


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as {'a.b.c': leaf}, in insertion order (lists and other leaves kept whole)."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def first_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """`key: old → new` for the first field (in the new record's order, then the old's) that differs, else None."""
    a, b = _flat(json.loads(json.dumps(old, default=str))), _flat(json.loads(json.dumps(new, default=str)))
    for key in [*b, *(k for k in a if k not in b)]:
        if a.get(key) != b.get(key):
            return f"{key}: {_short(a.get(key))} → {_short(b.get(key))}"
    return None


def _interval(record: Mapping[str, Any]) -> Interval:
    return Interval(**record)


def _intervals_out(by_video: Mapping[Any, list[Interval]]) -> list[dict[str, Any]]:
    return [{"video": list(key), "intervals": [dataclasses.asdict(i) for i in ivs]} for key, ivs in by_video.items()]


def _intervals_in(rows: list[dict[str, Any]]) -> dict[Any, list[Interval]]:
    return {tuple(r["video"]): [_interval(i) for i in r["intervals"]] for r in rows}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


class FoldFiles:
    """The fold files of one dataset and spotter (a `mer.spotting.evaluate.FoldStore`); counts what it reused."""

    def __init__(self, root: Path):
        self.root = root
        self.reused = 0
        self.computed = 0

    def path(self, seed: int, subject: str) -> Path:
        """The file of one fold."""
        return self.root / f"seed{seed}" / f"{_safe(subject)}.json"

    def load(self, seed: int, subject: str) -> FoldRun | None:
        """The finished fold, or None when it was not run (or its file is not one of this fold: run it again)."""
        path = self.path(seed, subject)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            if data.get("subject") != subject or data.get("seed") != seed:
                return None
            fold = FoldRun(subject, seed, data["chosen"], _intervals_in(data["predictions"]),
                           _intervals_in(data["labelled"]) if data.get("labelled") is not None else None,
                           data.get("recogniser"))  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        self.reused += 1
        return fold

    def save(self, fold: FoldRun) -> FoldRun:
        """Write a fold atomically and give back what a later call will read."""
        data = {
            "subject": fold.subject,
            "seed": fold.seed,
            "chosen": fold.chosen,
            "predictions": _intervals_out(fold.predictions),
            "labelled": None if fold.labelled is None else _intervals_out(fold.labelled),
            "recogniser": fold.recogniser,
        }
        path = atomic_write_json(self.path(fold.seed, fold.subject), data, indent=1, default=str)
        saved = json.loads(path.read_text())
        self.computed += 1
        return FoldRun(fold.subject, fold.seed, saved["chosen"], _intervals_in(saved["predictions"]),
                       None if saved["labelled"] is None else _intervals_in(saved["labelled"]),
                       saved["recogniser"])  # fmt: skip


class SpotRunFolder:
    """A spotting run folder: its record, its fold files and the paths of its report."""

    def __init__(self, out: str | Path):
        self.out = Path(out)

    @property
    def features(self) -> Path:
        """The feature cache."""
        return self.out / FEATURES_DIR

    def str_work(self, dataset: str) -> Path:
        """The working folder of a dataset's network recogniser."""
        return self.out / STR_DIR / _safe(dataset)

    def folds(self, dataset: str, spotter: str) -> FoldFiles:
        """The fold files of one dataset and spotter."""
        return FoldFiles(self.out / FOLDS_DIR / _safe(dataset) / _safe(spotter))

    def check_record(self, record: Mapping[str, Any]) -> None:
        """Write the run record, or, when OUT already has one, refuse (MerError, one line) unless it is the same."""
        path = self.out / RUN_RECORD
        if path.is_file():
            try:
                old = json.loads(path.read_text())
            except ValueError:
                raise MerError(f"{path}: not valid JSON; give a new --out") from None
            diff = first_difference(old, record)
            if diff is not None:
                raise MerError(f"mer spot: {self.out} holds a run of other inputs ({diff}); rerun with the same "
                               "inputs to resume it, or give a new --out")  # fmt: skip
            return
        atomic_write_json(path, dict(record), indent=1, default=str)
