"""Fixture trees in the shipped layouts of CAS(ME)^3 (Parts A and C), 4DME, MMEW and DFME, for the reader tests.

Written from the published facts in DATASETS.md (sheet names, columns, counts, errata), with 8×8 frames: never real
images. `casme3a_rows` reproduces the v2 ME sheet's shape: 860 rows of 94 subjects, its emotion counts, 191
(Subject, Filename) pairs repeating over 588 rows, its errata at their rows, `J` once uppercase, `Others` three
times and spNO.210–215 written without the dot.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.layouts import write_frames
from tests.long_layouts import write_book

CASME3A_SHEET = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
CASME3A_HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
CASME3A_EMOTIONS = {
    "disgust": 250,
    "surprise": 187,
    "others": 158,
    "Others": 3,
    "fear": 86,
    "anger": 64,
    "sad": 57,
    "happy": 55,
}
# (row, wrong onset, apex, offset) as the v2 sheet holds them → the (onset, apex, offset) the reader must end with
CASME3A_ERRATA: dict[int, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    128: ((112, 83, 170), (112, 160, 170)),
    749: ((3647, 2650, 2660), (2647, 2650, 2660)),
    750: ((0, 0, 3), (1, 1, 3)),
    796: ((1800, 1820, 0), (1800, 1820, 1845)),
    798: ((2390, 2395, 0), (2390, 2395, 2403)),
}
UPPER_J_ROW = 600


def _casme3a_subject(index: int) -> tuple[str, str]:
    """(the sheet's Subject cell, the RGB folder name) of subject index 0..93; the last six are spNO.210–215,
    written without the dot in the sheet."""
    if index >= 88:
        number = 210 + index - 88
        return f"spNO{number}", f"spNO.{number}"
    return f"spNO.{index + 1}", f"spNO.{index + 1}"


def casme3a_rows() -> list[dict[str, Any]]:
    """The 860 rows of the v2 ME sheet's shape, each with `cells` (as the sheet holds them), `folder` (subject
    folder, letter folder), `frames` (the frame numbers its interval needs on disk) and `expect` (the corrected
    onset, apex, offset)."""
    emotions = [e for e, n in CASME3A_EMOTIONS.items() for _ in range(n)]
    emotions = [emotions[(i * 13) % len(emotions)] for i in range(len(emotions))]  # interleaved, deterministic
    special = {*CASME3A_ERRATA, UPPER_J_ROW}
    for i in sorted(special):  # the rows whose quirk a test checks hold a 3-class emotion (counts unchanged)
        if emotions[i].lower() == "others":
            j = next(j for j in range(i + 1, len(emotions)) if j not in special and emotions[j].lower() != "others")
            emotions[i], emotions[j] = emotions[j], emotions[i]
    videos: list[int] = []  # video index of each row: 176 videos with 3 rows, 15 with 4, then 272 with 1
    for v in range(191):
        videos += [v] * (3 if v < 176 else 4)
    videos += list(range(191, 191 + 272))
    assert len(videos) == 860
    rows, seen = [], {}
    for i, v in enumerate(videos):
        k = seen.setdefault(v, 0)
        seen[v] = k + 1
        cell, folder = _casme3a_subject(v % 94)
        letter = "abcdefghijklm"[v // 94]
        onset = 10 + 10 * k
        expect = (onset, onset + 1, onset + 2)
        written = expect
        if i in CASME3A_ERRATA:
            written, expect = CASME3A_ERRATA[i]
        if i == UPPER_J_ROW:
            letter = "J"
        lo = min(expect[0], expect[1])
        rows.append(
            {
                "cells": [cell, letter, *written, "4+12", "1", emotions[i]],
                "folder": (folder, letter.lower()),
                "frames": list(range(lo, expect[2] + 1)),
                "expect": expect,
            }
        )
    return rows


def make_casme3a(
    root: Path,
    rows: Sequence[dict[str, Any]] | None = None,
    exceptions: dict[str, str] | None = None,
    sheet_name: str = CASME3A_SHEET,
) -> Path:
    """`root/RGB/spNO.1/a/color/{N}.jpg` (1-based, only the frames the rows need) + `root/<sheet>` (sheet `label`)
    + `root/exception/<file>` texts; rows as `casme3a_rows` makes them (default: all 860)."""
    rows = casme3a_rows() if rows is None else rows
    needed: dict[tuple[str, str], set[int]] = {}
    for r in rows:
        needed.setdefault(r["folder"], set()).update(r["frames"])
    for (subject, letter), numbers in needed.items():
        write_frames(root / "RGB" / subject / letter / "color", [f"{n}.jpg" for n in sorted(numbers)])
    write_book(root / sheet_name, {"label": [CASME3A_HEADER, *(r["cells"] for r in rows)]})
    for name, text in (exceptions or {}).items():
        (root / "exception").mkdir(parents=True, exist_ok=True)
        (root / "exception" / name).write_text(text)
    return root


CASME3C_SHEET = "CAS(ME)3_part_C_ME.xlsx"
CASME3C_HEADER = ["sub", "count", "onset", "offset", "au", "emotion"]
CASME3C_EMOTIONS = {"negative": 99, "surprise": 30, "others": 20, "positive": 16}
CHINESE_COMMA_ROW = 7


def casme3c_rows() -> list[list[Any]]:
    """165 Part C rows: sub 1–31 without 22, its emotion counts, one AU cell with a Chinese comma (`4，11`)."""
    emotions = [e for e, n in CASME3C_EMOTIONS.items() for _ in range(n)]
    emotions = [emotions[(i * 7) % len(emotions)] for i in range(len(emotions))]
    subs = [s for s in range(1, 32) if s != 22]
    out = []
    for i, emotion in enumerate(emotions):
        sub = subs[i % len(subs)]
        count = i // len(subs) + 1
        onset = 10 * count
        au = "4，11" if i == CHINESE_COMMA_ROW else "12"
        out.append([sub, count, onset, onset + 4, au, emotion])
    return out


def make_casme3c(root: Path, rows: Sequence[Sequence[Any]] | None = None) -> Path:
    """`root/RGB/sub01/{N}.jpg` (the frames the rows need) + `root/CAS(ME)3_part_C_ME.xlsx` (sheet `mockCrimeME`)."""
    rows = casme3c_rows() if rows is None else rows
    needed: dict[int, set[int]] = {}
    for sub, _count, onset, offset, *_ in rows:
        needed.setdefault(int(sub), set()).update(range(int(onset), int(offset) + 1))
    for sub, numbers in needed.items():
        write_frames(root / "RGB" / f"sub{sub:02d}", [f"{n}.jpg" for n in sorted(numbers)])
    write_book(root / CASME3C_SHEET, {"mockCrimeME": [CASME3C_HEADER, *rows]})
    return root


FOURDME_SHEET = "4DME_Labelling_Micro_release v1.xlsx"  # a space in the shipped name
FOURDME_HEADER = ["sub_ID", "fold_name", "Emotion", "Onset", "Apex", "Offset", "AUs", "Positive", "Negative"]


def make_4dme(root: Path, rows: Sequence[Sequence[Any]] | None = None) -> Path:
    """`root/gray_micro/<sub_ID>/<fold_name>/{N}.jpg` + `root/4DME_Labelling_Micro_release v1.xlsx`; rows are
    (sub_ID, fold_name, Emotion, Onset, Apex, Offset, AUs)."""
    rows = rows if rows is not None else [("S01", "S01_01", "Positive", 3, 5, 8, "AU6(k)+AU12")]
    for sub, fold, _emotion, onset, _apex, offset, _aus in rows:
        write_frames(root / "gray_micro" / sub / fold, [f"{n}.jpg" for n in range(onset, offset + 1)])
    write_book(root / FOURDME_SHEET, {"Sheet1": [FOURDME_HEADER, *([*r, 0, 0] for r in rows)]})
    return root


MMEW_HEADER = [
    "Subject",
    "Filename",
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    "Action Units",
    "Estimated Emotion",
    "remarks",
]


def make_mmew(root: Path, rows: Sequence[Sequence[Any]] | None = None, folders: dict[str, str] | None = None) -> Path:
    """`root/MMEW_Final/Micro_Expression/<emotion>/S03-01-002/{N}.jpg` (1-based) + `root/MMEW_Micro_Exp.xlsx`; rows
    are (Subject, Filename, Onset, Apex, Offset, AUs, Estimated Emotion); `folders` overrides a clip's emotion
    folder (Filename → folder)."""
    rows = rows if rows is not None else [("S03", "S03-01-002", 1, 4, 9, "AU12", "happiness")]
    for _sub, filename, _onset, _apex, offset, _aus, emotion in rows:
        folder = (folders or {}).get(filename, emotion)
        write_frames(
            root / "MMEW_Final" / "Micro_Expression" / folder / filename, [f"{n}.jpg" for n in range(1, offset + 3)]
        )
    write_book(root / "MMEW_Micro_Exp.xlsx", {"Sheet1": [MMEW_HEADER, *([*r, ""] for r in rows)]})
    return root


DFME_SHEETS = {
    "train": "training_full_with_AU.xlsx",
    "testA": "testA_full_with_AU.xlsx",
    "testB": "testB_full_with_AU.xlsx",
}
DFME_HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Emotion", "EmotionId", "Fps", "AU"]
DFME_IDS = {"anger": 0, "contempt": 1, "disgust": 2, "fear": 3, "happiness": 4, "sadness": 5, "surprise": 6}


def make_dfme(root: Path, splits: dict[str, Sequence[Sequence[Any]]] | None = None) -> Path:
    """`root/<split>_full_with_AU.xlsx` + `root/<train|testA|testB>/<Filename>/{N}.png` (0-based); rows are
    (Subject, Filename, Onset, Apex, Offset, Emotion, Fps, n_frames)."""
    splits = splits if splits is not None else {"train": [("sub0003", "sub0003_01", 0, 2, 5, "happiness", 500, 6)]}
    for split, rows in splits.items():
        table = [DFME_HEADER]
        for sub, filename, onset, apex, offset, emotion, fps, n in rows:
            table.append([sub, filename, onset, apex, offset, emotion, DFME_IDS.get(emotion, ""), fps, "AU12"])
            write_frames(root / split / filename, [f"{i}.png" for i in range(n)])
        write_book(root / DFME_SHEETS[split], {"Sheet1": table})
    return root
