"""CAS(ME)^3 Part A as long videos for spotting (`casme3a_lv`): `RGB/spNO.1/a/color/{N}.jpg` + the full Part A sheet.

The sheet is `CAS(ME)3_part_A_v2.xls` (or v1, or a copy saved as .xlsx; .xls needs xlrd, the `xls` extra), worksheet
`AU+Emotion`: Subject, Filename, Onset, Apex, Offset, AU, Expression type, Objective class (v2: 3346 macro + 860
micro rows, 956 videos, 98 subjects); the `eye blink` worksheet is not read. One video per subject and letter a–m:
the letter is matched case-blind (`J`), the subject with or without the dot (`spNO216`), as the clip reader
`casme3a` does. `Expression type` gives ME / MaE (`micro-expression`, `macro-expression`, `micro`, `ME`, …); any
other type is reported, never dropped silently. The emotion is the `emotion` column where a copy has one, else
`Objective class`; its class follows the clip reader's `casme3a` table (label empty, and reported once per value,
for one outside it). Frame numbers are 1-based: an onset or apex of 0 is taken as frame 1 (the official +1, as
`casme3a`), the other errata by `mer.data.longvideo.coded_interval`. The ME sheet's row-numbered errata
(`casme3.KNOWN_FIXES`) name rows of that sheet, not of this one, so they are not applied; a row they describe is
caught by the general rules (offset 0 ends at the apex; an onset after the offset is reported). Frames listed in
`exception/` (unreadable) are left out of their video, reported once per video. 30 fps.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from mer import class_schemes
from mer.data.datasets._common import as_root, cell_text, column_key, frame_number, images, layout_error, read_sheet
from mer.data.datasets._long import assemble, interval_type
from mer.data.datasets.casme3 import SHEET_DIRS, folder_index, read_exceptions, subject_name
from mer.data.intervals import Interval
from mer.data.labels import resolve
from mer.data.longvideo import FIXED, KEPT, FrameIndex, LongVideo, check_onset_zero, coded_interval
from mer.data.manifest import skip
from mer.errors import DataError

NAME = "casme3a_lv"
LABELS = "casme3a"  # the clip reader's label table: the same emotions
FPS = 30.0
FRAMES_DIR = "RGB"
SHEET_PREFIX = "cas(me)3_part_a_v"  # CAS(ME)3_part_A_v2.xls (the ME-only sheet is cas(me)3_part_A_ME_label_...)
SUFFIXES = (".xlsx", ".xls")
WORKSHEET = "AU+Emotion"
EXPECTED = f"<root>/{FRAMES_DIR}/spNO.1/a/color/1.jpg and <root>/CAS(ME)3_part_A_v2.xls (sheet {WORKSHEET})"
COLUMNS = ["Subject", "Filename", "Onset", "Apex", "Offset", "Expression type"]
EMOTION_COLUMNS = ("emotion", "objectiveclass")  # column_key of the emotion cells, first present wins
_VERSION = re.compile(r"_v(\d+)", re.IGNORECASE)

Cache = dict[Path, tuple[list[str], FrameIndex]]


def find_sheet(root: Path) -> Path:
    """The full Part A sheet in the root or its annotation folders: the highest version, an .xlsx before an .xls of
    the same version; DataError when none, or two equally good."""
    hits = [
        p
        for d in SHEET_DIRS
        for p in ((root / d).iterdir() if (root / d).is_dir() else [])
        if p.is_file() and p.name.lower().startswith(SHEET_PREFIX) and p.suffix.lower() in SUFFIXES
    ]
    if not hits:
        raise layout_error(root, "CAS(ME)^3 Part A long videos", EXPECTED)

    def rank(p: Path) -> tuple[int, bool]:
        match = _VERSION.search(p.stem)
        return (int(match.group(1)) if match else 0, p.suffix.lower() == ".xlsx")

    hits.sort(key=rank, reverse=True)
    if len(hits) > 1 and rank(hits[0]) == rank(hits[1]):
        names = ", ".join(p.name for p in hits)
        raise DataError(f"{root}: several CAS(ME)^3 Part A sheets ({names}); keep one or pass coding=<file>")
    return hits[0]


def _video_frames(
    folder: Path, left_out: dict[int, str], cache: Cache, report: list[dict[str, Any]], subject: str
) -> tuple[list[str], FrameIndex]:
    """A video's frames (`<letter>/color/`, or the letter folder itself) without those `exception/` lists, indexed
    once per video (`cache`, keyed by the letter folder so the video is named by its letter); a left-out frame is
    reported."""
    if folder not in cache:
        color = folder / "color"
        frames = images(color if color.is_dir() else folder)
        numbers = [frame_number(f) for f in frames]
        dropped = sorted(n for n in numbers if n is not None and n in left_out)
        if dropped:
            kept = [(f, n) for f, n in zip(frames, numbers, strict=True) if n is None or n not in left_out]
            frames, numbers = [f for f, _ in kept], [n for _, n in kept]
            why = sorted({left_out[n] for n in dropped})
            reason = f"{FIXED} frames {dropped} listed in {', '.join(why)} left out (unreadable)"
            report.append(skip(NAME, subject, folder.name, folder, reason))
        cache[folder] = (frames, FrameIndex(numbers))
    return cache[folder]


def read(
    root: str | Path,
    coding: str | Path | None = None,
    frames_dir: str = FRAMES_DIR,
    onset_zero: str = "first",
    exceptions: bool = True,
    scheme: str = class_schemes.DEFAULT,
) -> tuple[list[LongVideo], list[dict[str, Any]]]:
    """The long videos of a CAS(ME)^3 Part A root and the report (skipped rows, fixed rows, videos without rows).

    `coding` names the sheet when the root holds several; `frames_dir` the frame folder (`RGB`); `onset_zero`
    (first | skip) as the other long-video readers (an onset 0 is already the official +1, so it rarely matters);
    `exceptions=False` keeps the frames `exception/` lists; `scheme` the class scheme of the labels.
    """
    check_onset_zero(NAME, onset_zero)
    root = as_root(root, NAME, EXPECTED)
    frames_root = root / frames_dir
    expected = EXPECTED.replace(f"<root>/{FRAMES_DIR}/", f"<root>/{frames_dir}/")
    if not frames_root.is_dir():
        raise layout_error(root, "CAS(ME)^3 Part A long videos", expected)
    sheet = Path(coding).expanduser() if coding else find_sheet(root)
    table = read_sheet(sheet, COLUMNS, "CAS(ME)^3 Part A long-video", prefer_sheets=[WORKSHEET])
    keys = dict(zip(("subject", "filename", "onset", "apex", "offset", "type"), map(column_key, COLUMNS), strict=True))
    emotion_key = next((k for k in EMOTION_COLUMNS if k in table.columns), None)
    subjects = folder_index(frames_root, subject_name)
    letters = {spno: folder_index(d, lambda n: n.lower() if len(n) == 1 and n.isalpha() else None)
               for spno, d in subjects.items()}  # fmt: skip
    listed = read_exceptions(root) if exceptions else {}
    left_out: dict[tuple[str, str], dict[int, str]] = {}
    for (spno, letter, number), why in listed.items():
        left_out.setdefault((spno, letter), {})[number] = why
    report: list[dict[str, Any]] = []
    found: dict[Path, list[Interval]] = {}
    cache: Cache = {}
    unknown: Counter[str] = Counter()
    for line, cells in enumerate(table.to_dict("records"), start=1):
        subject_cell, letter = cell_text(cells.get(keys["subject"])), cell_text(cells.get(keys["filename"]))
        spno = subject_name(subject_cell)
        subject = f"{NAME}/{spno or subject_cell}"
        where = f"{sheet.name} row {line} ({subject_cell} / {letter})"
        base = skip(NAME, subject, letter, sheet, "")
        if spno is None or len(letter) != 1 or not letter.isalpha():
            report.append({**base, "reason": f"{where}: Subject {subject_cell!r} / Filename {letter!r} unusable"})
            continue
        letter = letter.lower()
        folder = letters.get(spno, {}).get(letter)
        if folder is None:
            report.append({**base, "reason": f"{where}: frame folder not found: {frames_root / spno / letter}"})
            continue
        base = skip(NAME, subject, folder.name, folder, "")
        kind = interval_type(cells.get(keys["type"]))
        if kind is None:
            what = cell_text(cells.get(keys["type"]))
            report.append({**base, "reason": f"{where}: Expression type {what!r} is neither micro nor macro"})
            continue
        frames, index = _video_frames(folder, left_out.get((spno, letter), {}), cache, report, subject)
        if not frames:
            report.append({**base, "reason": f"{where}: no images in {folder}"})
            continue
        span = {k: cells.get(keys[k]) for k in ("onset", "apex", "offset")}
        fixes = []
        for k in ("onset", "apex"):
            if _is_zero(span[k]):
                span[k] = 1
                fixes.append(f"{k} 0 on 1-based frame numbers taken as 1")
        emotion = cell_text(cells.get(emotion_key)) if emotion_key else ""
        label = None
        if emotion:
            result = resolve(LABELS, emotion, scheme)
            label = result.label
            if result.status == "unknown":
                unknown[emotion] += 1
        interval, notes = coded_interval(index, kind, span["onset"], span["apex"], span["offset"],
                                         emotion or None, label, onset_zero)  # fmt: skip
        if interval is None:
            report.append({**base, "reason": f"{where}: " + "; ".join(notes)})
            continue
        if fixes or notes:
            report.append({**base, "reason": f"{FIXED} {where}: " + "; ".join(fixes + notes)})
        found.setdefault(folder, []).append(interval)
    for emotion, n in sorted(unknown.items()):
        reason = f"{KEPT} {n} intervals with emotion {emotion!r} outside the {LABELS} table ({scheme}): no label"
        report.append(skip(NAME, NAME, "", sheet, reason))
    ordered = sorted(letters.items(), key=lambda kv: _order(kv[0]))
    candidates = [(f"{NAME}/{spno}", folder) for spno, by_letter in ordered for _, folder in sorted(by_letter.items())]
    for subject, folder in candidates:
        spno = subject.split("/", 1)[1]
        _video_frames(folder, left_out.get((spno, folder.name.lower()), {}), cache, report, subject)
    return assemble(NAME, candidates, found, cache, report, FPS, sheet.name)


def _is_zero(cell: Any) -> bool:
    """True for a frame-number cell holding 0 (0, 0.0, '0')."""
    try:
        return float(cell_text(cell)) == 0
    except ValueError:
        return False


def _order(spno: str) -> int:
    """spNO.<n> → n, so subjects come in numeric order."""
    return int(spno.rsplit(".", 1)[1])
