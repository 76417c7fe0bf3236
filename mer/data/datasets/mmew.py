"""MMEW reader: `MMEW_Micro_Exp.xlsx` + `MMEW_Final/Micro_Expression/<emotion>/S03-01-002/1.jpg`.

Sheet columns Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Action Units, Estimated Emotion, remarks;
clip folders are named `S{person}-{emotion}-{sample}` (the Filename) under an emotion folder, found by name
whatever the emotion folder is called. Frame numbers (1-based file names) become indices as for CASME II; rows
without an apex label follow `missing_apex`. Subjects are `mmew/S03` (from the Subject cell, or the Filename's
first part); sample ids the Filename. Clip folders that no sheet row names are reported.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mer.data.datasets._common import (
    NO_FOLDER,
    LabelFile,
    as_root,
    cell_text,
    check_missing_apex,
    coded_label_file,
    coded_sample,
    column_key,
    label_or_skip,
    layout_error,
    parse_aus,
    read_sheet,
    subdirs,
)
from mer.data.manifest import as_int, skip
from mer.errors import DataError

NAME = "mmew"
KIND = "micro"
MICRO_DIR = "Micro_Expression"
SHEET = "MMEW_Micro_Exp.xlsx"
EXPECTED = f"<root>/MMEW_Final/{MICRO_DIR}/happiness/S03-01-002/1.jpg and <root>/{SHEET}"
COLUMNS = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Estimated Emotion"]
_PERSON = re.compile(r"^s?0*(\d+)", re.IGNORECASE)

Rows = list[dict[str, Any]]


def micro_folder(root: Path) -> Path | None:
    """`Micro_Expression/` under the root, under `MMEW_Final/`, or the root itself."""
    for candidate in (root / "MMEW_Final" / MICRO_DIR, root / MICRO_DIR, root):
        if candidate.name == MICRO_DIR and candidate.is_dir():
            return candidate
    return None


def person(subject: Any, filename: str) -> str | None:
    """`S03` from a Subject cell (3, 'S03', 's3') or else from the Filename `S03-01-002`."""
    for text in (cell_text(subject), filename.split("-")[0]):
        match = _PERSON.match(text)
        if match:
            return f"S{int(match.group(1)):02d}"
    return None


def find_sheet(root: Path, micro: Path, coding: str | Path | None = None) -> Path:
    """The sheet: `coding`, or `MMEW_Micro_Exp.xlsx` in the root, `MMEW_Final/` or beside `Micro_Expression/`."""
    if coding:
        sheet: Path | None = Path(coding).expanduser()
    else:
        places = (root / SHEET, root / "MMEW_Final" / SHEET, micro.parent / SHEET)
        sheet = next((p for p in places if p.is_file()), None)
    if sheet is None or not sheet.is_file():
        raise DataError(f"MMEW sheet not found: {sheet or root / SHEET} (expected {EXPECTED})")
    return sheet


def label_file(root: str | Path, coding: str | Path | None = None) -> LabelFile:
    """The sheet `read` uses, its version and its data rows (for `mer datasets check`)."""
    root = as_root(root, NAME, EXPECTED)
    micro = micro_folder(root)
    if micro is None:
        raise layout_error(root, "MMEW", EXPECTED)
    return coded_label_file(
        find_sheet(root, micro, coding), COLUMNS, "MMEW", ((r"mmew", "MMEW micro sheet (300 rows)"),)
    )


def read(root: str | Path, coding: str | Path | None = None, missing_apex: str = "spot") -> tuple[Rows, Rows]:
    """Manifest rows and skipped rows of an MMEW root (`coding`: the sheet when it is not `MMEW_Micro_Exp.xlsx`
    in the root or `MMEW_Final/`; `missing_apex` spot | middle | skip)."""
    check_missing_apex(NAME, missing_apex)
    root = as_root(root, NAME, EXPECTED)
    micro = micro_folder(root)
    if micro is None:
        raise layout_error(root, "MMEW", EXPECTED)
    sheet = find_sheet(root, micro, coding)
    table = read_sheet(sheet, COLUMNS, "MMEW")
    keys = [column_key(c) for c in COLUMNS]
    clips = {clip.name.lower(): clip for emotion in subdirs(micro) for clip in subdirs(emotion)}
    used: set[Path] = set()
    rows: Rows = []
    skipped: Rows = []
    for line, cells in enumerate(table.to_dict("records"), start=1):
        filename = cell_text(cells.get(keys[1]))
        who = person(cells.get(keys[0]), filename)
        if who is None or not filename:
            reason = f"sheet row {line}: Subject {cell_text(cells.get(keys[0]))!r} / Filename {filename!r} unusable"
            skipped.append(skip(NAME, NAME, filename, sheet, reason))
            continue
        subject = f"{NAME}/{who}"
        folder = clips.get(filename.lower())
        base = skip(NAME, subject, filename, folder or micro, "")
        if folder is not None:
            used.add(folder)
        emotion = cell_text(cells.get(keys[5]))
        label = label_or_skip(NAME, emotion, base, skipped)
        if label is None:
            continue
        if folder is None:
            skipped.append({**base, "reason": f"{NO_FOLDER} {micro}/<emotion>/{filename}"})
            continue
        sample = coded_sample(NAME, subject, filename, emotion, label, folder, cells, keys, missing_apex, skipped)
        if sample is None:
            continue
        sample["aus"] = parse_aus(cells.get("actionunits"))
        rows.append(sample)
    for folder in clips.values():
        if folder not in used and as_int(folder.name.split("-")[-1]) is not None:
            who = person("", folder.name) or "?"
            skipped.append(skip(NAME, f"{NAME}/{who}", folder.name, folder, f"frame folder has no row in {sheet.name}"))
    return rows, skipped
