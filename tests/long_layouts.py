"""Tiny fixture trees of the long-video sets in their shipped layouts (8×8 frames, openpyxl sheets), for the readers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openpyxl import Workbook

from tests.layouts import write_image

CASME_SQ_SHEET = "CAS(ME)^2code_final.xlsx"
SAMM_LV_SHEET = "SAMM_LongVideos_V1_Release.xlsx"


def write_book(path: Path, sheets: dict[str, Sequence[Sequence[Any]]]) -> Path:
    """A workbook with one worksheet per name, each holding its rows from A1 (no header unless the rows have one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for r in rows:
            sheet.append(list(r))
    book.save(path)
    return path


def write_video(folder: Path, names: Sequence[str]) -> Path:
    """One tiny frame per file name."""
    for name in names:
        write_image(folder / name)
    return folder


# CAS(ME)^2: headerless rows subject, video, onset, apex, offset, AUs, emotion, type, self-report
CASME_SQ_ROWS: list[list[Any]] = [
    [1, "disgust1_1", 10, 15, 20, "4+9", "negative", "micro-expression", "disgust"],
    [1, "disgust1_2", 30, 40, 0, "12", "positive", "macro-expression", "happy"],  # offset 0: the apex ends it
    [2, "anger1_1", 5, 0, 12, "4", "others", "macro-expression", ""],  # apex 0: no apex
    [3, "anger1_1", 5, 8, 12, "4", "negative", "micro-expression", ""],  # subject 3 not in naming rule1
    [1, "happy9_1", 5, 8, 12, "12", "positive", "micro-expression", ""],  # video not in naming rule2
    [2, "anger2_1", 5, 8, 12, "4", "negative", "micro-expression", ""],  # anger2 → 0402: no folder on disk
    [1, "disgust1_3", 50, 55, 70, "9", "negative", "micro-expression", ""],  # offset 70 beyond the 60 frames
]
CASME_SQ_RULE1 = [["p15", "s15", 1], ["p16", 16, 2]]  # sheet subject (third column) → folder code (second)
CASME_SQ_RULE2 = [[101, "disgust1"], ["0102", "disgust2"], [401, "anger1"], [402, "anger2"]]


def make_casme_sq(root: Path, rows: Sequence[Sequence[Any]] = CASME_SQ_ROWS, header: bool = False,
                  rules: bool = True) -> Path:  # fmt: skip
    """`rawpic/s15/15_0101disgustingteeth` (60 frames), `s15/15_0102eatingworms` (30, no row), `s16/16_0401...` (40)
    and the code sheet: first worksheet without header, then `naming rule1` and `naming rule2`."""
    videos = {"s15/15_0101disgustingteeth": 60, "s15/15_0102eatingworms": 30, "s16/16_0401girlcrashing": 40}
    for rel, n in videos.items():
        write_video(root / "rawpic" / rel, [f"img{i:03d}.jpg" for i in range(1, n + 1)])
    main = [["subject", "video", "onset", "apex", "offset", "au", "emotion", "type", "selfReport"]] if header else []
    sheets: dict[str, Sequence[Sequence[Any]]] = {"CASFEcode_final": [*main, *rows]}
    if rules:
        sheets.update({"naming rule1": CASME_SQ_RULE1, "naming rule2": CASME_SQ_RULE2})
    write_book(root / CASME_SQ_SHEET, sheets)
    return root


SAMM_LV_HEADER = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type",
                  "Action Units", "Notes"]  # fmt: skip
SAMM_LV_PREAMBLE: list[list[Any]] = [["SAMM Long Videos"], [], ["FACS coding of movements"], [], [], [], [], [], []]
SAMM_LV_ROWS: list[list[Any]] = [
    [9, "009_4_1", 1, 10, 14, 18, 9, "Micro - 1/2", "R12", ""],
    [9, "009_4_2", 1, 30.4, 50, 80.6, 51, "Macro", "12", ""],  # fractional frame numbers
    [9, "009_4_3", 1, 0, 5, 20, 21, "Macro", "4", ""],  # onset 0
    [11, "011_2_1", 2, 20, -1, 30, 11, "Micro - 1/2", "1+2", ""],  # apex -1
    [11, "011_2_2", 2, 70, 75, 90, 21, "Macro", "4", ""],  # offset 90 beyond the 80 frames
    [11, "011_5_1", 5, 10, 12, 14, 5, "Micro - 1/2", "4", ""],  # no folder 011_5
    [11, "011_2_3", 2, 40, 45, 50, 11, "Other", "4", ""],  # a type that is neither
]


def make_samm_lv(root: Path, rows: Sequence[Sequence[Any]] = SAMM_LV_ROWS) -> Path:
    """`SAMM_longvideos/009_4` (100 frames), `011_2` (80), `013_1` (20, no row) and the annotation workbook: a first
    worksheet that is not the annotation, then `FACS_Movement_Only` with a 9-row preamble before its header."""
    for video, n in {"009_4": 100, "011_2": 80, "013_1": 20}.items():
        write_video(root / "SAMM_longvideos" / video, [f"{video}_{i:04d}.jpg" for i in range(1, n + 1)])
    write_book(root / SAMM_LV_SHEET, {"Info": [["Release notes"]],
                                      "FACS_Movement_Only": [*SAMM_LV_PREAMBLE, SAMM_LV_HEADER, *rows]})  # fmt: skip
    return root
