"""Selection by the official MEGC2019 list (`combined_3class_gt.csv`): the 442 composite samples of 68 subjects.

The list has rows `dataset, subject, filename, label` (no header in the official file; a header row is
tolerated) with label 0 negative / 1 positive / 2 surprise, e.g. `casme2,sub01,EP02_01f,1`, `samm,006,006_1_2,0`
or `smic,s1,s1_ne_01,0`. Subjects are compared after normalization (CASME II 1 / 01 / sub01 → sub01, SAMM
6 / 006 → 006, SMIC 1 / s01 / s1 → s1) and samples by their frame-folder name, so spelling variants of the
list match the readers' rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from mer.config import CLASSES
from mer.data.manifest import as_int, make_report, skip
from mer.data.names import dataset_key, normalize_subject
from mer.errors import DataError

MEGC_DATASETS = ("casme2", "samm", "smic")
LIST_COLUMNS = ["dataset", "subject", "filename", "label"]
_FORMAT = "rows 'dataset,subject,filename,label' with label 0 negative / 1 positive / 2 surprise"


def _parse_label(value: object) -> str | None:
    text = str(value).strip().lower()
    number = as_int(text)
    if number is not None:
        return CLASSES[number] if 0 <= number < len(CLASSES) else None
    return text if text in CLASSES else None


def read_megc_list(path: str | Path) -> pd.DataFrame:
    """The list as a table: dataset (casme2|samm|smic), subject (normalized), filename, label (class name)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"MEGC2019 list not found: {path} (expected combined_3class_gt.csv: {_FORMAT})")
    try:
        raw = pd.read_csv(path, header=None, dtype=str, skipinitialspace=True, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read MEGC2019 list {path}: {err} (expected {_FORMAT})") from None
    if raw.shape[1] < 4:
        raise DataError(f"{path}: {raw.shape[1]} column(s); expected {_FORMAT}")
    raw = raw.iloc[:, :4]
    raw.columns = LIST_COLUMNS
    if len(raw) and _parse_label(raw.iloc[0]["label"]) is None:
        raw = raw.iloc[1:]  # a header row
    out = []
    for line, cells in enumerate(raw.to_dict("records"), start=1):
        if not any(str(v).strip() for v in cells.values()):
            continue
        dataset = dataset_key(cells["dataset"])
        label = _parse_label(cells["label"])
        if dataset not in MEGC_DATASETS or label is None:
            raise DataError(f"{path}: row {line} {list(cells.values())} is not a MEGC2019 entry (expected {_FORMAT})")
        subject = normalize_subject(dataset, cells["subject"])
        out.append({"dataset": dataset, "subject": subject, "filename": str(cells["filename"]).strip(), "label": label})
    table = pd.DataFrame(out, columns=LIST_COLUMNS).drop_duplicates(["dataset", "subject", "filename"])
    return table.reset_index(drop=True)


def sample_key(dataset: str, subject: str, frames: list[str]) -> tuple[str, str, str]:
    """(dataset, normalized subject, frame-folder name in lower case) of a row: how list entries are matched."""
    folder = Path(frames[0]).parent.name if len(frames) else ""
    return dataset, normalize_subject(dataset, subject), folder.lower()


def select_megc(
    manifest: pd.DataFrame, list_path: str | Path, datasets: Iterable[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the CASME II / SAMM / SMIC rows the MEGC2019 list names (other datasets' rows pass through).

    Report (report columns): manifest rows of those datasets not in the list ("not in the MEGC2019 list"),
    list entries with no manifest row (for the datasets read: `datasets`, default those in the manifest), and
    label disagreements (the row is kept with the list's label, so results compare with published ones).
    """
    listed = read_megc_list(list_path)
    wanted = {(r.dataset, r.subject, r.filename.lower()): r.label for r in listed.itertuples()}
    spelled = {(r.dataset, r.subject, r.filename.lower()): r.filename for r in listed.itertuples()}
    present = set(datasets) if datasets is not None else set(manifest["dataset"])
    keep: list[bool] = []
    labels: list[str] = []
    found: set[tuple[str, str, str]] = set()
    report = []
    for r in manifest.itertuples(index=False):
        if r.dataset not in MEGC_DATASETS:
            keep.append(True)
            labels.append(r.label)
            continue
        key = sample_key(r.dataset, r.subject, list(r.frames))
        path = str(Path(r.frames[0]).parent) if len(r.frames) else ""
        if key not in wanted:
            keep.append(False)
            labels.append(r.label)
            report.append(skip(r.dataset, r.subject, r.sample_id, path, "not in the MEGC2019 list"))
            continue
        found.add(key)
        keep.append(True)
        labels.append(wanted[key])
        if wanted[key] != r.label:
            reason = (
                f"label differs: MEGC2019 list says {wanted[key]}, emotion '{r.emotion}' maps to {r.label}; "
                "kept with the list's label"
            )
            report.append(skip(r.dataset, r.subject, r.sample_id, path, reason))
    for key, label in wanted.items():
        dataset, subject, _ = key
        if key not in found and dataset in present:
            reason = f"in the MEGC2019 list ({label}) but not in the manifest: missing from the root or skipped above"
            report.append(skip(dataset, f"{dataset}/{subject}", spelled[key], str(list_path), reason))
    selected = manifest.copy()
    selected["label"] = labels
    selected = selected[pd.Series(keep, index=selected.index, dtype=bool)].reset_index(drop=True)
    return selected, make_report(report)
