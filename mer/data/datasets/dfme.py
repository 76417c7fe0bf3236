"""DFME reader (the CCAC challenge files): three sheets, one per official split, and `<split>/<Filename>/{N}.png`.

`training_full_with_AU.xlsx`, `testA_full_with_AU.xlsx`, `testB_full_with_AU.xlsx`, columns Subject, Filename,
OnsetFrame, ApexFrame, OffsetFrame, Emotion, EmotionId, Fps, AU. Frames are numbered from 0 (`0.png`), and the
sheet's frame numbers are those file numbers, so onset 0 is the first frame. Each clip has its own frame rate
(500, 300 or 200 fps), kept in the manifest's `fps` column, and its split (train | testA | testB) in `split`, which
`loso.protocol=dfme` uses as the official train → test split. Subjects are `dfme/sub0003`, sample ids the Filename.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mer.data.datasets._common import (
    LabelFile,
    as_root,
    cell_text,
    check_missing_apex,
    coded_sample,
    column_key,
    label_or_skip,
    layout_error,
    parse_aus,
    read_sheet,
    sheet_rows,
    subdirs,
)
from mer.data.manifest import as_int, skip
from mer.errors import DataError

NAME = "dfme"
KIND = "micro"
SPLITS = ("train", "testA", "testB")
# split → (sheet-name prefix, frame-folder names it may have), compared case-blind
SPLIT_FILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "train": ("training", ("train", "training")),
    "testA": ("testa", ("testa", "test_a", "testA")),
    "testB": ("testb", ("testb", "test_b", "testB")),
}
EXPECTED = (
    "<root>/training_full_with_AU.xlsx, testA_full_with_AU.xlsx, testB_full_with_AU.xlsx and "
    "<root>/train/<Filename>/0.png"
)
COLUMNS = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Emotion"]
# EmotionId → Emotion, for rows whose Emotion cell is blank
EMOTION_IDS = ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")

Rows = list[dict[str, Any]]


def _sheet(root: Path, prefix: str) -> Path | None:
    hits = sorted(p for p in root.iterdir() if p.name.lower().startswith(prefix) and p.suffix.lower() == ".xlsx")
    return hits[0] if hits else None


def _frames_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    wanted = {n.lower() for n in names}
    return next((d for d in subdirs(root) if d.name.lower() in wanted), None)


def read(root: str | Path, splits: list[str] | None = None, missing_apex: str = "spot") -> tuple[Rows, Rows]:
    """Manifest rows and skipped rows of a DFME root; `splits` picks some of train, testA, testB (default: the sheets
    present); `missing_apex` (spot | middle | skip) handles rows without an apex label."""
    check_missing_apex(NAME, missing_apex)
    root = as_root(root, NAME, EXPECTED)
    unknown = [s for s in splits or [] if s not in SPLITS]
    if unknown:
        raise DataError(f"dfme splits {unknown} unknown; use some of: {', '.join(SPLITS)}")
    sheets = {s: _sheet(root, SPLIT_FILES[s][0]) for s in (splits or SPLITS)}
    if splits:
        missing = [s for s, p in sheets.items() if p is None]
        if missing:
            raise layout_error(root, f"DFME (no sheet for {', '.join(missing)})", EXPECTED)
    sheets = {s: p for s, p in sheets.items() if p is not None}
    if not sheets:
        raise layout_error(root, "DFME", EXPECTED)
    keys = [column_key(c) for c in COLUMNS]
    rows: Rows = []
    skipped: Rows = []
    for split, sheet in sheets.items():
        frames_root = _frames_dir(root, SPLIT_FILES[split][1])
        table = read_sheet(sheet, COLUMNS, "DFME")
        for line, cells in enumerate(table.to_dict("records"), start=1):
            subject_cell, filename = cell_text(cells.get(keys[0])), cell_text(cells.get(keys[1]))
            subject = f"{NAME}/{subject_cell}"
            if not subject_cell or not filename:
                reason = f"{sheet.name} row {line}: Subject {subject_cell!r} / Filename {filename!r} unusable"
                skipped.append(skip(NAME, subject, filename, sheet, reason))
                continue
            folder = (frames_root / filename) if frames_root else root / split / filename
            base = skip(NAME, subject, filename, folder, "")
            emotion = cell_text(cells.get(keys[5]))
            code = as_int(cells.get("emotionid"))
            if not emotion and code is not None and 0 <= code < len(EMOTION_IDS):
                emotion = EMOTION_IDS[code]
            label = label_or_skip(NAME, emotion, base, skipped)
            if label is None:
                continue
            sample = coded_sample(NAME, subject, filename, emotion, label, folder, cells, keys, missing_apex, skipped)
            if sample is None:
                continue
            sample.update(fps=as_int(cells.get("fps")), split=split, aus=parse_aus(cells.get("au")))
            rows.append(sample)
    return rows, skipped


def label_file(root: str | Path) -> LabelFile:
    """The three challenge sheets (for `mer datasets check`): the root as path, rows summed over the splits."""
    root = as_root(root, NAME, EXPECTED)
    counts = {}
    for split in SPLITS:
        sheet = _sheet(root, SPLIT_FILES[split][0])
        if sheet is not None:
            counts[split] = sheet_rows(read_sheet(sheet, COLUMNS, "DFME"), column_key(COLUMNS[0]))
    if not counts:
        raise layout_error(root, "DFME", EXPECTED)
    version = "CCAC challenge sheets: " + ", ".join(f"{s} {n} rows" for s, n in counts.items())
    return LabelFile(root, version, sum(counts.values()))
