"""CAS(ME)^3 readers: Part A (`casme3a`) and Part C (`casme3c`), micro-expressions inside long videos.

Part A: `RGB/spNO.1/a/color/{N}.jpg` (1-based; one video per subject and letter a–m) and the ME sheet
`cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx` (sheet `label`: Subject, Filename, Onset, Apex, Offset, AU,
Objective class, emotion). A video holds several MEs, so a sample is one labelled interval: its frames are the
video's onset..offset files and its id is `spNO.1_a_<onset>` (`_2`, `_3` appended should two rows share an onset).
The sheet's known errata are corrected and reported (`erratum (fixed): ...`): apex before the onset, onset/offset
typos, offset 0 (`KNOWN_FIXES`, applied only where the row still holds the wrong value), onset/apex 0 (frame
numbers start at 1: the official +1). Rows whose interval is still unusable are skipped with the reason; an apex
outside onset..offset counts as no apex label (`missing_apex`). Frames listed in the `exception/` text files
(damaged or poor-quality images) are left out of the samples. Letters are matched case-blind (`J`), subjects
with or without the dot (`spNO215`).

Part C: `CAS(ME)3_part_C_ME.xlsx`, sheet `mockCrimeME` (sub, count, onset, offset, au, emotion), no apex column:
every row gets its apex by `missing_apex` (spot or middle, as SMIC). Frames (layout UNVERIFIED) are read from
`<root>/<frames_dir>/<subject folder>/[color/]{N}.jpg` with the subject folder named by the `sub` number
(`sub01`, `sub1`, `1`, `01`, `spNO.1`). AU cells are parsed with `parse_aus` (one uses a Chinese comma).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mer.data.datasets._common import (
    ERRATUM_FIXED,
    NO_FOLDER,
    NO_IMAGES,
    LabelFile,
    as_root,
    cell_text,
    check_missing_apex,
    coded_label_file,
    column_key,
    frame_number,
    images,
    label_or_skip,
    layout_error,
    parse_aus,
    read_sheet,
    resolve_apex,
    row,
    subdirs,
)
from mer.data.manifest import as_int, skip
from mer.errors import DataError

NAME_A = "casme3a"
NAME_C = "casme3c"
KIND = "micro"
FRAMES_DIR = "RGB"
SHEET_A = "cas(me)3_part_a_me_label"  # lower-case prefix of the Part A ME sheet's file name (v2: ..._JpgIndex_v2.xlsx)
SHEET_C = "cas(me)3_part_c_me"
SHEET_DIRS = ("", "annotation", "annotation/partA", "annotation/partC")  # where the sheet may sit under the root
EXPECTED_A = f"<root>/{FRAMES_DIR}/spNO.1/a/color/1.jpg and <root>/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
EXPECTED_C = f"<root>/{FRAMES_DIR}/sub01/1.jpg and <root>/CAS(ME)3_part_C_ME.xlsx"
COLUMNS_A = ["Subject", "Filename", "Onset", "Apex", "Offset", "emotion"]
COLUMNS_C = ["sub", "count", "onset", "offset", "emotion"]
EXCEPTION_DIR = "exception"

# Errata of the v2 ME sheet (DATASETS.md): (0-based data row, column, value the row holds) → corrected value.
KNOWN_FIXES: dict[tuple[int, str, int], tuple[int, str]] = {
    (128, "apex", 83): (160, "apex 83 before onset 112; the full Part A sheet says 160"),
    (749, "onset", 3647): (2647, "onset 3647 is a typo for 2647"),
    (796, "offset", 0): (1845, "offset 0; the full Part A sheet says 1845"),
    (798, "offset", 0): (2403, "offset 0; the full Part A sheet says 2403"),
}
VERSIONS_A = (
    (r"jpgindex_v2", "CAS(ME)^3 Part A ME sheet v2 (860 rows)"),
    (r"jpgindex_v1", "CAS(ME)^3 Part A ME sheet v1 (921 rows)"),
)
VERSIONS_C = ((r"part_c_me", "CAS(ME)^3 Part C ME sheet (165 rows)"),)
_SUBJECT = re.compile(r"^\s*(?:spno)?\s*\.?\s*(\d+)\s*$", re.IGNORECASE)
# An exception line: 'spNO.3 J 498.jpg  the image cannot open' or '/.../RGB/spNO.138/a/color/1294.jpg'.
_EXCEPTION = re.compile(r"spNO\.?(\d+)[\s/\\]+([A-Za-z])[\s/\\]+(?:color[/\\])?(\d+)\.(?:jpg|png)", re.IGNORECASE)

Rows = list[dict[str, Any]]


def subject_name(value: Any) -> str | None:
    """`spNO.<n>` for a Subject cell ('spNO.1', 'spNO215', 'spno.7', 7), or None."""
    match = _SUBJECT.match(cell_text(value))
    return f"spNO.{int(match.group(1))}" if match else None


def find_sheet(root: Path, prefix: str, dataset: str, expected: str, suffixes: tuple[str, ...] = (".xlsx",)) -> Path:
    """The one sheet (.xlsx, or one of `suffixes`) whose name starts with `prefix` (case-blind) in the root or its
    annotation folders."""
    hits = sorted(
        p
        for d in SHEET_DIRS
        for p in ((root / d).iterdir() if (root / d).is_dir() else [])
        if p.is_file() and p.name.lower().startswith(prefix) and p.suffix.lower() in suffixes
    )
    if not hits:
        old = [p.name for p in root.iterdir() if p.name.lower().startswith(prefix) and p.suffix.lower() == ".xls"]
        if old:
            raise DataError(f"{root}: {old[0]} is an old .xls sheet; {dataset} reads the .xlsx ({expected})")
        raise layout_error(root, dataset, expected)
    if len(hits) > 1:
        names = ", ".join(p.name for p in hits)
        raise DataError(f"{root}: several {dataset} sheets ({names}); keep one or pass coding=<file>")
    return hits[0]


def folder_index(parent: Path, key: Any) -> dict[Any, Path]:
    """Sub-folders of `parent` by a normalised name (`key(name)`; names it maps to None are left out)."""
    out: dict[Any, Path] = {}
    for sub in subdirs(parent):
        k = key(sub.name)
        if k is not None:
            out.setdefault(k, sub)
    return out


def read_exceptions(root: Path) -> dict[tuple[str, str, int], str]:
    """(spNO.<n>, letter, frame number) → the `exception/` file that lists it (damaged or poor-quality frames)."""
    out: dict[tuple[str, str, int], str] = {}
    folder = root / EXCEPTION_DIR
    if not folder.is_dir():
        return out
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in (".txt", ".csv", ".lst", ""):
            continue
        for match in _EXCEPTION.finditer(path.read_text(errors="replace")):
            key = (f"spNO.{int(match.group(1))}", match.group(2).lower(), int(match.group(3)))
            out.setdefault(key, f"{EXCEPTION_DIR}/{path.name}")
    return out


class _Video:
    """The numbered frames of one long video, listed once however many samples it holds."""

    def __init__(self, folder: Path) -> None:
        color = folder / "color"
        self.folder = color if color.is_dir() else folder
        self.frames = {n: f for f in images(self.folder) if (n := frame_number(f)) is not None}


def _number(cell: Any) -> int | None:
    return as_int(cell) if cell_text(cell) else None


def interval_sample(
    name: str,
    subject: str,
    sid: str,
    emotion: str,
    label: str,
    video: _Video,
    span: tuple[int, int | None, int],
    left_out: dict[int, str],
    missing_apex: str,
    extra: dict[str, Any],
    skipped: Rows,
) -> dict[str, Any] | None:
    """One interval of a long video as a manifest row (or None, reported): frames onset..offset minus `left_out`
    (frame → why), apex an index into them; an apex outside the interval or left out has no label."""
    onset, apex, offset = span
    base = skip(name, subject, sid, video.folder, "")
    numbers = [n for n in sorted(video.frames) if onset <= n <= offset and n not in left_out]
    dropped = sorted(n for n in left_out if onset <= n <= offset and n in video.frames)
    if dropped:
        why = left_out[dropped[0]]
        skipped.append({**base, "reason": f"{ERRATUM_FIXED} frames {dropped} listed in {why} left out"})
    if not numbers:
        skipped.append({**base, "reason": f"{NO_IMAGES} {video.folder} for frames {onset}..{offset}"})
        return None
    if apex is not None and apex not in video.frames and onset <= apex <= offset:
        skipped.append({**base, "reason": f"apex frame {apex} not found in {video.folder}"})
        return None
    frames = [video.frames[n] for n in numbers]
    apex_i = numbers.index(apex) if apex in numbers else None
    sample = {**row(name, subject, sid, KIND, emotion, label, frames, 0, apex_i, len(frames) - 1), **extra}
    if apex_i is None:
        if apex is None:
            why = "no apex label"
        elif apex in left_out:
            why = f"apex frame {apex} listed in {left_out[apex]}"
        else:
            why = f"apex {apex} outside onset..offset {onset}..{offset}"
        return resolve_apex(sample, missing_apex, why, skipped)
    return sample


def _unique(sid: str, used: set[str]) -> str:
    out, k = sid, 1
    while out in used:
        k += 1
        out = f"{sid}_{k}"
    used.add(out)
    return out


def read(
    root: str | Path,
    coding: str | Path | None = None,
    frames_dir: str = FRAMES_DIR,
    missing_apex: str = "spot",
    exceptions: bool = True,
) -> tuple[Rows, Rows]:
    """Manifest rows and skipped rows of a CAS(ME)^3 Part A root (`casme3a`).

    `coding` names the ME sheet when the root holds several; `frames_dir` the frame folder (`RGB`);
    `missing_apex` (spot | middle | skip) handles rows without a usable apex; `exceptions=False` keeps the frames
    that `exception/` lists.
    """
    check_missing_apex(NAME_A, missing_apex)
    root = as_root(root, NAME_A, EXPECTED_A)
    frames_root = root / frames_dir
    if not frames_root.is_dir():
        raise layout_error(root, "CAS(ME)^3 Part A", EXPECTED_A)
    sheet = Path(coding).expanduser() if coding else find_sheet(root, SHEET_A, "CAS(ME)^3 Part A", EXPECTED_A)
    table = read_sheet(sheet, COLUMNS_A, "CAS(ME)^3 Part A", prefer_sheets=["label"])
    keys = dict(
        zip(("subject", "filename", "onset", "apex", "offset", "emotion"), map(column_key, COLUMNS_A), strict=True)
    )
    subjects = folder_index(frames_root, subject_name)
    listed = read_exceptions(root) if exceptions else {}
    videos: dict[Path, _Video] = {}
    rows: Rows = []
    skipped: Rows = []
    used: set[str] = set()
    for line, cells in enumerate(table.to_dict("records")):
        subject_cell, letter = cell_text(cells.get(keys["subject"])), cell_text(cells.get(keys["filename"]))
        spno = subject_name(subject_cell)
        subject = f"{NAME_A}/{spno or subject_cell}"
        if spno is None or len(letter) != 1 or not letter.isalpha():
            reason = f"sheet row {line}: Subject {subject_cell!r} / Filename {letter!r} unusable"
            skipped.append(skip(NAME_A, subject, "", sheet, reason))
            continue
        letter = letter.lower()
        span, fixes = {k: _number(cells.get(keys[k])) for k in ("onset", "apex", "offset")}, []
        for k in ("onset", "apex", "offset"):
            fix = KNOWN_FIXES.get((line, k, span[k])) if span[k] is not None else None
            if fix is not None:
                span[k] = fix[0]
                fixes.append(f"sheet row {line}: {fix[1]}")
        for k in ("onset", "apex"):
            if span[k] == 0:
                span[k] = 1
                fixes.append(f"sheet row {line}: {k} 0 on 1-based frame numbers taken as 1")
        onset, apex, offset = span["onset"], span["apex"], span["offset"]
        sid = _unique(f"{spno}_{letter}_{onset if onset is not None else 'x'}", used)
        video_dir = subjects.get(spno)
        video_dir = folder_index(video_dir, lambda n: n.lower()).get(letter) if video_dir else None
        base = skip(NAME_A, subject, sid, video_dir or frames_root / spno / letter, "")
        emotion = cell_text(cells.get(keys["emotion"]))
        label = label_or_skip(NAME_A, emotion, base, skipped)
        if label is None:
            continue
        if onset is None or offset is None or offset <= 0 or onset > offset:
            skipped.append({**base, "reason": f"sheet row {line}: unusable interval onset {onset} offset {offset}"})
            continue
        if video_dir is None:
            skipped.append({**base, "reason": f"{NO_FOLDER} {frames_root / spno / letter}"})
            continue
        video = videos.setdefault(video_dir, _Video(video_dir))
        left_out = {n: why for (s, v, n), why in listed.items() if s == spno and v == letter}
        sample = interval_sample(
            NAME_A, subject, sid, emotion, label, video, (onset, apex, offset), left_out, missing_apex,
            {"aus": parse_aus(cells.get("au"))}, skipped,
        )  # fmt: skip
        if sample is None:
            continue
        skipped += [{**base, "reason": f"{ERRATUM_FIXED} {fix}"} for fix in fixes]
        rows.append(sample)
    return rows, skipped


def _sub_number(name: str) -> int | None:
    match = re.fullmatch(r"(?:sub|spno\.?|s)?0*(\d+)", name.strip().lower())
    return int(match.group(1)) if match else None


def read_c(
    root: str | Path,
    coding: str | Path | None = None,
    frames_dir: str = FRAMES_DIR,
    missing_apex: str = "spot",
    keep_unmapped: bool = False,
) -> tuple[Rows, Rows]:
    """Manifest rows and skipped rows of a CAS(ME)^3 Part C root (`casme3c`): no apex column, so every row gets
    its apex by `missing_apex` (spot | middle | skip); `coding` names the sheet, `frames_dir` the frame folder;
    `keep_unmapped` keeps rows outside the classes with label "" (`mer datasets check` counts them)."""
    check_missing_apex(NAME_C, missing_apex)
    root = as_root(root, NAME_C, EXPECTED_C)
    frames_root = root / frames_dir
    if not frames_root.is_dir():
        raise layout_error(root, "CAS(ME)^3 Part C", EXPECTED_C)
    sheet = Path(coding).expanduser() if coding else find_sheet(root, SHEET_C, "CAS(ME)^3 Part C", EXPECTED_C)
    table = read_sheet(sheet, COLUMNS_C, "CAS(ME)^3 Part C", prefer_sheets=["mockCrimeME"])
    subjects = folder_index(frames_root, _sub_number)
    videos: dict[Path, _Video] = {}
    rows: Rows = []
    skipped: Rows = []
    used: set[str] = set()
    for line, cells in enumerate(table.to_dict("records")):
        number, count = as_int(cells.get("sub")), cell_text(cells.get("count"))
        if number is None:
            skipped.append(skip(NAME_C, NAME_C, "", sheet, f"sheet row {line}: sub {cells.get('sub')!r} unusable"))
            continue
        subject = f"{NAME_C}/sub{number:02d}"
        onset, offset = _number(cells.get("onset")), _number(cells.get("offset"))
        sid = _unique(f"sub{number:02d}_{count or onset}", used)
        folder = subjects.get(number)
        base = skip(NAME_C, subject, sid, folder or frames_root / f"sub{number:02d}", "")
        emotion = cell_text(cells.get("emotion"))
        label = label_or_skip(NAME_C, emotion, base, skipped, keep_unmapped)
        if label is None:
            continue
        if onset is None or offset is None or onset > offset:
            skipped.append({**base, "reason": f"sheet row {line}: unusable interval onset {onset} offset {offset}"})
            continue
        if folder is None:
            skipped.append({**base, "reason": f"{NO_FOLDER} {frames_root / f'sub{number:02d}'} (sub {number})"})
            continue
        video = videos.setdefault(folder, _Video(folder))
        sample = interval_sample(
            NAME_C, subject, sid, emotion, label, video, (max(onset, 1), None, offset), {}, missing_apex,
            {"aus": parse_aus(cells.get("au"))}, skipped,
        )  # fmt: skip
        if sample is not None:
            rows.append(sample)
    return rows, skipped


def label_file(root: str | Path, coding: str | Path | None = None) -> LabelFile:
    """The Part A ME sheet `read` uses, its version and its data rows (for `mer datasets check`)."""
    root = as_root(root, NAME_A, EXPECTED_A)
    sheet = Path(coding).expanduser() if coding else find_sheet(root, SHEET_A, "CAS(ME)^3 Part A", EXPECTED_A)
    return coded_label_file(sheet, COLUMNS_A, "CAS(ME)^3 Part A", VERSIONS_A, prefer_sheets=["label"])


def label_file_c(root: str | Path, coding: str | Path | None = None) -> LabelFile:
    """The Part C ME sheet `read_c` uses, its version and its data rows (for `mer datasets check`)."""
    root = as_root(root, NAME_C, EXPECTED_C)
    sheet = Path(coding).expanduser() if coding else find_sheet(root, SHEET_C, "CAS(ME)^3 Part C", EXPECTED_C)
    return coded_label_file(sheet, COLUMNS_C, "CAS(ME)^3 Part C", VERSIONS_C, prefer_sheets=["mockCrimeME"])
