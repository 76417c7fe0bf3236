"""CAS(ME)^2 long-video reader: `CAS(ME)^2code_final.xlsx` + `rawpic/s15/15_0101disgustingteeth/img001.jpg`.

The code sheet's first worksheet has **no header**: subject, video, onset, apex, offset, AUs, emotion, type,
self-report. Its subject is mapped to the subject folder by the worksheet `naming rule1` (sheet subject in the third
column → folder code such as 15 or s15 in the second: folder `s15`), its video (`disgust1_1`: the name before the
first `_`) to the video code by `naming rule2` (code 0101 in the first column, name `disgust1` in the second): the
video folder is the one in `rawpic/s15/` whose name starts with `15_0101`. Type `macro-expression` → MaE,
`micro-expression` → ME. Frame numbers are those of the file names (1-based) and become positions once
(`mer.data.longvideo.coded_interval`: offset 0 → the apex ends the interval, apex 0 → no apex, and the other errata
rules), each fix reported. Videos in `rawpic` without a row are kept (no intervals) and reported; rows without a
video folder are reported and skipped. 30 fps.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from mer.data.datasets._common import as_root, cell_text, column_key, find_one, layout_error, subdirs
from mer.data.datasets._long import assemble, frame_index, interval_type
from mer.data.intervals import Interval
from mer.data.labels import resolve
from mer.data.longvideo import FIXED, FrameIndex, LongVideo, check_onset_zero, coded_interval
from mer.data.manifest import skip
from mer.errors import DataError

NAME = "casme_sq"
FPS = 30.0
FRAMES_DIR = "rawpic"
CODING_GLOBS = ["CAS(ME)^2code_final*.xlsx", "CAS(ME)2code_final*.xlsx", "code_final*.xlsx"]
EXPECTED = f"<root>/{FRAMES_DIR}/s15/15_0101disgustingteeth/img001.jpg and <root>/CAS(ME)^2code_final.xlsx"
COLUMNS = ["subject", "video", "onset", "apex", "offset", "au", "emotion", "type", "self_report"]
RULE1, RULE2 = "namingrule1", "namingrule2"  # column_key of the naming-rule worksheets
_DIGITS = re.compile(r"\d+")


def _number_of(value: Any) -> int | None:
    """The number in a cell ('s15', 15, 'S15' → 15), or None."""
    digits = _DIGITS.findall(cell_text(value))
    return int(digits[0]) if digits else None


def _rules(book: dict[str, pd.DataFrame], sheet: Path) -> tuple[dict[str, int], dict[str, str]]:
    """(sheet subject → folder number, video name → 4-digit video code) from the naming-rule worksheets."""
    named = {column_key(k): v for k, v in book.items()}
    missing = [n for n, k in (("naming rule1", RULE1), ("naming rule2", RULE2)) if k not in named]
    if missing:
        raise DataError(f"{sheet}: no worksheet {' or '.join(repr(m) for m in missing)} (CAS(ME)^2's code sheet "
                        "maps subjects and videos to folders with them; sheets: " + ", ".join(book) + ")")  # fmt: skip
    subjects: dict[str, int] = {}
    for cells in named[RULE1].itertuples(index=False):
        cells = [c for c in cells]
        key, value = (cells[2], cells[1]) if len(cells) >= 3 and cell_text(cells[2]) else (cells[0], cells[1])
        number = _number_of(value)
        if cell_text(key) and number is not None:
            subjects[cell_text(key)] = number
    videos: dict[str, str] = {}
    for cells in named[RULE2].itertuples(index=False):
        code, name = cell_text(cells[0]), cell_text(cells[1]) if len(cells) > 1 else ""
        if code.isdigit() and name:
            videos[name.lower()] = f"{int(code):04d}"
    return subjects, videos


def read(
    root: str | Path, coding: str | Path | None = None, frames_dir: str = FRAMES_DIR, onset_zero: str = "first"
) -> tuple[list[LongVideo], list[dict[str, Any]]]:
    """The long videos of a CAS(ME)^2 root and the report (skipped rows, fixed rows, videos without annotation).

    `coding` names the code sheet when the root holds several; `frames_dir` picks the frame folder (`rawpic`, or
    e.g. `cropped`); `onset_zero` (first | skip) handles onset cells of 0.
    """
    check_onset_zero(NAME, onset_zero)
    root = as_root(root, NAME, EXPECTED)
    frames_root = root / frames_dir
    expected = EXPECTED.replace(f"<root>/{FRAMES_DIR}/", f"<root>/{frames_dir}/")
    if not frames_root.is_dir():
        raise layout_error(root, "CAS(ME)^2", expected)
    sheet = Path(coding).expanduser() if coding else find_one(root, CODING_GLOBS, "code sheet", "CAS(ME)^2", expected)
    try:
        book = pd.read_excel(sheet, sheet_name=None, header=None, dtype=object, engine="openpyxl")
    except Exception as err:  # openpyxl/zipfile raise many types for a corrupt or non-xlsx file
        raise DataError(f"cannot read the CAS(ME)^2 code sheet {sheet}: {type(err).__name__}: {err}") from None
    subjects, codes = _rules(book, sheet)
    main = next(iter(book.values())).dropna(how="all")
    report: list[dict[str, Any]] = []
    folders: dict[Path, list[Interval]] = {}
    indexes: dict[Path, tuple[list[str], FrameIndex]] = {}
    for line, cells in enumerate(main.itertuples(index=False), start=1):
        values = dict(zip(COLUMNS, list(cells) + [None] * (len(COLUMNS) - len(cells)), strict=False))
        if line == 1 and "onset" in cell_text(values["onset"]).lower():  # a copy with a header row
            continue
        subject_cell, video_cell = cell_text(values["subject"]), cell_text(values["video"])
        where = f"{sheet.name} row {line} ({subject_cell} / {video_cell})"
        number = subjects.get(subject_cell)
        subject = f"{NAME}/s{number}" if number is not None else f"{NAME}/{subject_cell}"
        base = skip(NAME, subject, video_cell, sheet, "")
        if number is None:
            report.append({**base, "reason": f"{where}: subject {subject_cell!r} not in 'naming rule1'"})
            continue
        name = video_cell.split("_")[0].lower()
        code = codes.get(name)
        if code is None:
            report.append({**base, "reason": f"{where}: video {name!r} not in 'naming rule2'"})
            continue
        sub_dir = frames_root / f"s{number}"
        matches = [d for d in subdirs(sub_dir) if d.name.startswith(f"{number}_{code}")]
        if len(matches) != 1:
            found = "no" if not matches else f"{len(matches)}"
            report.append({**base, "reason": f"{where}: {found} frame folder {sub_dir}/{number}_{code}*"})
            continue
        folder = matches[0]
        base = skip(NAME, subject, folder.name, folder, "")
        kind = interval_type(values["type"])
        if kind is None:
            report.append({**base, "reason": f"{where}: type {cell_text(values['type'])!r} is neither micro nor macro"})
            continue
        frames, index = frame_index(folder, indexes)
        if not frames:
            report.append({**base, "reason": f"{where}: no images in {folder}"})
            continue
        emotion = cell_text(values["emotion"]) or None
        label = resolve(NAME, emotion).label if emotion else None
        interval, notes = coded_interval(index, kind, values["onset"], values["apex"], values["offset"],
                                         emotion, label, onset_zero)  # fmt: skip
        if interval is None:
            report.append({**base, "reason": f"{where}: " + "; ".join(notes)})
            continue
        if notes:
            report.append({**base, "reason": f"{FIXED} {where}: " + "; ".join(notes)})
        folders.setdefault(folder, []).append(interval)
    candidates = [(f"{NAME}/{sub.name}", folder) for sub in subdirs(frames_root) for folder in subdirs(sub)]
    return assemble(NAME, candidates, folders, indexes, report, FPS, sheet.name)
