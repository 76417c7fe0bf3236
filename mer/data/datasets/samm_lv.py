"""SAMM Long Videos reader: `SAMM_LongVideos_V1_Release.xlsx` (or V2) + `SAMM_longvideos/009_4/009_4_0007.jpg`.

The annotation sheet (worksheet `FACS_Movement_Only`, else the first) has a preamble of about 9 rows; its header is
found by its column names: Subject, Filename, Inducement Code, Onset, Apex, Offset, Duration, Type, Action Units,
Notes. Filename `009_4_1` is movement 1 of video `009_4` (folder `SAMM_longvideos/009_4/`). Type `Macro` → MaE,
`Micro - 1/2` → ME. Frame numbers are those of the file names (009_4_0007 → 7) and become positions once
(`mer.data.longvideo.coded_interval`: fractional macro frames rounded, apex -1 → no apex, onset 0 → the first frame
or skipped by `onset_zero`), each fix reported. The sheet gives no emotion. 200 fps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mer.data.datasets._common import as_root, cell_text, column_key, find_one, layout_error, read_sheet, subdirs
from mer.data.datasets._long import assemble, frame_index, interval_type
from mer.data.intervals import Interval
from mer.data.longvideo import FIXED, FrameIndex, LongVideo, check_onset_zero, coded_interval
from mer.data.manifest import skip
from mer.data.names import subject_folder

NAME = "samm_lv"
FPS = 200.0
FRAMES_DIR = "SAMM_longvideos"
CODING_GLOBS = ["SAMM_LongVideos*.xlsx"]
WORKSHEET = "FACS_Movement_Only"
EXPECTED = f"<root>/{FRAMES_DIR}/009_4/009_4_0007.jpg and <root>/SAMM_LongVideos_V1_Release.xlsx"
COLUMNS = ["Subject", "Filename", "Onset", "Apex", "Offset", "Type"]


def read(
    root: str | Path, coding: str | Path | None = None, frames_dir: str = FRAMES_DIR, onset_zero: str = "first"
) -> tuple[list[LongVideo], list[dict[str, Any]]]:
    """The long videos of a SAMM-LV root and the report (skipped rows, fixed rows, videos without annotation).

    `coding` names the annotation xlsx when the root holds several; `onset_zero` (first | skip) handles the macro
    rows whose onset is 0.
    """
    check_onset_zero(NAME, onset_zero)
    root = as_root(root, NAME, EXPECTED)
    frames_root = root / frames_dir
    expected = EXPECTED.replace(f"<root>/{FRAMES_DIR}/", f"<root>/{frames_dir}/")
    if not frames_root.is_dir():
        raise layout_error(root, "SAMM Long Videos", expected)
    sheet = Path(coding).expanduser() if coding else find_one(root, CODING_GLOBS, "annotation", "SAMM-LV", expected)
    table = read_sheet(sheet, COLUMNS, "SAMM Long Videos", prefer_sheets=[WORKSHEET])
    keys = [column_key(c) for c in COLUMNS]
    report: list[dict[str, Any]] = []
    found: dict[Path, list[Interval]] = {}
    cache: dict[Path, tuple[list[str], FrameIndex]] = {}
    for line, cells in enumerate(table.to_dict("records"), start=1):
        subject_cell, filename = cell_text(cells.get(keys[0])), cell_text(cells.get(keys[1]))
        parts = filename.split("_")
        number = subject_folder("samm", subject_cell) or (subject_folder("samm", parts[0]) if parts[0] else None)
        subject = f"{NAME}/{number or subject_cell}"
        where = f"{sheet.name} row {line} ({filename or subject_cell})"
        base = skip(NAME, subject, filename, sheet, "")
        if number is None or len(parts) < 2:
            report.append({**base, "reason": f"{where}: Subject {subject_cell!r} / Filename {filename!r} unusable"})
            continue
        folder = frames_root / f"{parts[0]}_{parts[1]}"
        base = skip(NAME, subject, folder.name, folder, "")
        kind = interval_type(cells.get(keys[5]))
        if kind is None:
            report.append(
                {**base, "reason": f"{where}: Type {cell_text(cells.get(keys[5]))!r} is neither micro nor macro"}
            )
            continue
        frames, index = frame_index(folder, cache)
        if not frames:
            what = "no images in" if folder.is_dir() else "frame folder not found:"
            report.append({**base, "reason": f"{where}: {what} {folder}"})
            continue
        interval, notes = coded_interval(index, kind, cells.get(keys[2]), cells.get(keys[3]), cells.get(keys[4]),
                                         onset_zero=onset_zero)  # fmt: skip
        if interval is None:
            report.append({**base, "reason": f"{where}: " + "; ".join(notes)})
            continue
        if notes:
            report.append({**base, "reason": f"{FIXED} {where}: " + "; ".join(notes)})
        found.setdefault(folder, []).append(interval)
    candidates = [(f"{NAME}/{subject_folder('samm', d.name.split('_')[0]) or d.name}", d) for d in subdirs(frames_root)]
    return assemble(NAME, candidates, found, cache, report, FPS, sheet.name)
