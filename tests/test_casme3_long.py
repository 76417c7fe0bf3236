"""CAS(ME)^3 Part A as long videos (`casme3a_lv`) on a fixture tree in the shipped layout, and `.xls` sheets."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from mer.cli import app
from mer.data.datasets._common import read_sheet
from mer.data.datasets.long_videos import long_name, read_long
from mer.data.intervals import Interval
from mer.data.longvideo import FIXED, KEPT
from mer.errors import DataError
from tests.long_layouts import write_book, write_video

SHEET = "CAS(ME)3_part_A_v2"
HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Expression type", "Objective class"]
ROWS: list[list[Any]] = [
    ["spNO.1", "a", 5, 8, 10, "4+9", "micro-expression", "disgust"],
    ["spNO.1", "a", 10, 14, 20, "12", "macro-expression", "happy"],  # spans frame 12, which exception/ lists
    ["spNO.1", "J", 0, 0, 6, "1+2", "Micro-Expression", "surprise"],  # uppercase J; onset and apex 0 (official +1)
    ["spNO216", "b", 3, 4, 0, "4", "macro-expression", "others"],  # no dot; offset 0: the apex ends it
    ["spNO.1", "a", 25, 26, 30, "", "eye blink", ""],  # a type that is neither
    ["spNO.2", "a", 5, 6, 7, "4", "micro-expression", "fear"],  # no frame folder
    ["spNO.1", "a", 30, 32, 50, "4", "macro-expression", "fear"],  # offset 50 beyond the 40 frames
    ["spNO.1", "ab", 5, 6, 7, "4", "micro-expression", "fear"],  # Filename not one letter
    ["spNO.1", "a", 2, 3, 4, "4", "ME", "confused"],  # an emotion outside the casme3a table
]
BLINKS = [["Subject", "Filename", "Onset", "Offset"], ["spNO.1", "a", 1, 3]]
VIDEOS = {"spNO.1/a": 40, "spNO.1/j": 30, "spNO.1/c": 10, "spNO216/b": 20}


def make_tree(root: Path, sheet: bool = True) -> Path:
    """`RGB/spNO.1/{a,j,c}/color` and `RGB/spNO216/b/color` (frames 1.jpg…), `exception/` listing spNO.1 a 12.jpg,
    and (when `sheet`) the full Part A sheet as .xlsx: `eye blink` first, then `AU+Emotion`."""
    for rel, n in VIDEOS.items():
        write_video(root / "RGB" / rel / "color", [f"{i}.jpg" for i in range(1, n + 1)])
    (root / "exception").mkdir(parents=True)
    (root / "exception" / "RGB_exception.txt").write_text("spNO.1 a 12.jpg  the image cannot open\n")
    if sheet:
        write_book(root / f"{SHEET}.xlsx", {"eye blink": BLINKS, "AU+Emotion": [HEADER, *ROWS]})
    return root


def reasons(report: pd.DataFrame, text: str) -> list[str]:
    return [r for r in report["reason"] if text in r]


def by_key(videos: list) -> dict[tuple[str, str], list[Interval]]:
    return {(v.subject, v.video): v.intervals for v in videos}


@pytest.fixture(scope="module")
def read(tmp_path_factory: pytest.TempPathFactory) -> tuple[list, pd.DataFrame]:
    return read_long("casme3a_lv", make_tree(tmp_path_factory.mktemp("casme3") / "CASME3_A"))


def test_videos_subjects_and_letters(read) -> None:
    videos, _ = read
    assert sorted((v.subject, v.video, v.n_frames) for v in videos) == [
        ("casme3a_lv/spNO.1", "a", 39),  # 40 frames less the one exception/ lists
        ("casme3a_lv/spNO.1", "c", 10),
        ("casme3a_lv/spNO.1", "j", 30),
        ("casme3a_lv/spNO.216", "b", 20),
    ]
    assert all(v.fps == 30.0 and v.dataset == "casme3a_lv" for v in videos)


def test_intervals_are_zero_based_positions_with_emotion_and_label(read) -> None:
    videos, _ = read
    a = next(v for v in videos if v.key == ("casme3a_lv", "casme3a_lv/spNO.1", "a"))
    confused, me, mae = a.intervals  # in onset order: 2..4, 5..10, 10..20
    assert (confused.onset, confused.offset) == (1, 3)
    # frames 5..10, apex 8 (1-based file numbers) → positions 4..9, apex 7
    assert (me.onset, me.apex, me.offset, me.kind) == (4, 7, 9, "ME")
    assert (me.emotion, me.label) == ("disgust", "negative")
    assert Path(a.frames[me.onset]).name == "5.jpg" and Path(a.frames[me.offset]).name == "10.jpg"
    # frame 12 is left out, so frames 13.. sit one position earlier: 10..20, apex 14 → 9..18, apex 12
    assert (mae.onset, mae.apex, mae.offset, mae.kind) == (9, 12, 18, "MaE")
    assert (mae.emotion, mae.label) == ("happy", "positive")
    assert Path(a.frames[mae.apex]).name == "14.jpg" and Path(a.frames[mae.offset]).name == "20.jpg"
    assert "12.jpg" not in {Path(f).name for f in a.frames}


def test_uppercase_letter_and_onset_zero_as_the_official_plus_one(read) -> None:
    videos, report = read
    (j,) = by_key(videos)[("casme3a_lv/spNO.1", "j")]
    assert (j.onset, j.apex, j.offset, j.kind, j.label) == (0, 0, 5, "ME", "surprise")
    fixed = reasons(report, "onset 0 on 1-based frame numbers taken as 1")
    assert len(fixed) == 1 and fixed[0].startswith(FIXED) and "apex 0" in fixed[0]


def test_subject_without_dot_and_offset_zero(read) -> None:
    videos, report = read
    (b,) = by_key(videos)[("casme3a_lv/spNO.216", "b")]
    assert (b.onset, b.apex, b.offset, b.kind) == (2, 3, 3, "MaE")
    assert b.emotion == "others" and b.label is None  # others is no MEGC2019 class
    assert len(reasons(report, "offset 0: the apex 4 is the end")) == 1


def test_exception_frames_and_unusable_rows_are_reported(read) -> None:
    videos, report = read
    listed = reasons(report, "listed in exception/RGB_exception.txt left out")
    assert len(listed) == 1 and listed[0].startswith(FIXED) and "[12]" in listed[0]
    assert len(reasons(report, "Expression type 'eye blink' is neither micro nor macro")) == 1
    assert len(reasons(report, "frame folder not found")) == 1
    assert len(reasons(report, "offset 50 is not in the video (frames 1..40)")) == 1
    assert len(reasons(report, "Filename 'ab' unusable")) == 1
    unknown = reasons(report, "emotion 'confused' outside the casme3a table")
    assert len(unknown) == 1 and unknown[0].startswith(KEPT) and unknown[0].startswith(f"{KEPT} 1 intervals")
    (confused,) = [i for i in by_key(videos)[("casme3a_lv/spNO.1", "a")] if i.emotion == "confused"]
    assert confused.label is None and confused.kind == "ME"
    assert len(reasons(report, "video without a row")) == 1  # spNO.1/c
    # every sheet row is an interval or a report line that is not a "kept" remark (the eye-blink sheet is not read)
    dropped = [r for r in report["reason"] if not r.startswith((FIXED, KEPT))]
    assert sum(len(v.intervals) for v in videos) + len(dropped) == len(ROWS)


def test_exceptions_off_keeps_every_frame(tmp_path: Path) -> None:
    videos, report = read_long("casme3a_lv", make_tree(tmp_path / "root"), exceptions=False)
    a = next(v for v in videos if v.video == "a")
    assert a.n_frames == 40 and not reasons(report, "exception/")
    assert (a.intervals[2].onset, a.intervals[2].offset) == (9, 19)


def test_cas4_scheme_labels(tmp_path: Path) -> None:
    videos, _ = read_long("casme3a_lv", make_tree(tmp_path / "root"), scheme="cas3_4")
    labels = {i.emotion: i.label for v in videos for i in v.intervals}
    assert labels["others"] == "others" and labels["happy"] == "positive"


def test_names_aliases_and_the_spot_cli(tmp_path: Path) -> None:
    assert {long_name(n) for n in ("casme3a_lv", "CASME3_LV", "cas(me)^3_lv")} == {"casme3a_lv"}
    root = make_tree(tmp_path / "root", sheet=False)
    with pytest.raises(DataError, match=r"CAS\(ME\)3_part_A_v2\.xls"):
        read_long("casme3a_lv", root)
    result = CliRunner().invoke(app, ["spot", "--data", f"casme3a_lv={root}", "--out", str(tmp_path / "out")])
    # the name resolved to the reader, which then finds no sheet
    assert isinstance(result.exception, DataError) and "CAS(ME)3_part_A_v2.xls" in str(result.exception)
    bad = CliRunner().invoke(app, ["spot", "--data", f"casme4_lv={root}", "--out", str(tmp_path / "out")])
    assert "unknown long-video dataset" in str(bad.exception)


def _write_xls(path: Path, sheets: dict[str, list[list[Any]]]) -> Path:
    xlwt = pytest.importorskip("xlwt", reason="xlwt writes the Excel 97-2003 fixture")
    book = xlwt.Workbook()
    for name, rows in sheets.items():
        sheet = book.add_sheet(name)
        for r, cells in enumerate(rows):
            for c, value in enumerate(cells):
                sheet.write(r, c, value)
    book.save(str(path))
    return path


def test_xls_sheet_is_read_through_xlrd(tmp_path: Path, read) -> None:
    pytest.importorskip("xlrd", reason="the xls extra reads .xls sheets")
    root = make_tree(tmp_path / "root", sheet=False)
    _write_xls(root / f"{SHEET}.xls", {"eye blink": BLINKS, "AU+Emotion": [HEADER, *ROWS]})
    videos, report = read_long("cas(me)^3_lv", root)
    assert by_key(videos) == by_key(read[0])
    xlsx_root = str(Path(read[0][0].frames[0]).parents[4])
    assert [r.replace(str(root), "ROOT") for r in report["reason"]] == [
        r.replace(f"{SHEET}.xlsx", f"{SHEET}.xls").replace(xlsx_root, "ROOT") for r in read[1]["reason"]
    ]


def test_xls_without_xlrd_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write_xls(tmp_path / "sheet.xls", {"AU+Emotion": [HEADER, *ROWS]})
    monkeypatch.setitem(sys.modules, "xlrd", None)  # as if not installed: importlib finds no spec
    with pytest.raises(DataError, match=r"pip install 'mer-lightning\[xls\]'.*save it as \.xlsx"):
        read_sheet(path, HEADER[:5], "CAS(ME)^3 Part A long-video")
