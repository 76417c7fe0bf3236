"""Long-video readers (CAS(ME)^2, SAMM Long Videos) on fixture trees in their shipped layouts: one test per erratum."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mer.data.datasets.long_videos import long_name, read_long
from mer.data.intervals import Interval
from mer.data.longvideo import FIXED, KEPT, FrameIndex, coded_interval, intervals_table, truth, videos_table
from mer.errors import DataError
from mer.spotting.metrics import spotting_scores
from tests.long_layouts import CASME_SQ_ROWS, SAMM_LV_ROWS, make_casme_sq, make_samm_lv


def reasons(report: pd.DataFrame, text: str) -> list[str]:
    return [r for r in report["reason"] if text in r]


def by_video(videos: list) -> dict[str, list[Interval]]:
    return {v.video: v.intervals for v in videos}


@pytest.fixture(scope="module")
def casme_sq(tmp_path_factory: pytest.TempPathFactory) -> tuple[list, pd.DataFrame]:
    return read_long("casme_sq", make_casme_sq(tmp_path_factory.mktemp("casme_sq") / "CASME_sq"))


@pytest.fixture(scope="module")
def samm_lv(tmp_path_factory: pytest.TempPathFactory) -> tuple[list, pd.DataFrame]:
    return read_long("SAMM-LV", make_samm_lv(tmp_path_factory.mktemp("samm_lv") / "SAMM_LV"))


# --- CAS(ME)^2 ---------------------------------------------------------------------------------------------------


def test_casme_sq_headerless_sheet_and_naming_rules(casme_sq) -> None:
    videos, _ = casme_sq
    keys = sorted(v.key for v in videos)
    assert keys == [
        ("casme_sq", "casme_sq/s15", "15_0101disgustingteeth"),
        ("casme_sq", "casme_sq/s15", "15_0102eatingworms"),
        ("casme_sq", "casme_sq/s16", "16_0401girlcrashing"),
    ]
    first = by_video(videos)["15_0101disgustingteeth"][0]
    # img010 .. img020 with apex img015 (1-based file numbers) → positions 9 .. 19, apex 14
    assert (first.onset, first.apex, first.offset, first.kind) == (9, 14, 19, "ME")
    assert (first.emotion, first.label) == ("negative", "negative")
    v = next(v for v in videos if v.video == "15_0101disgustingteeth")
    assert v.fps == 30.0 and v.n_frames == 60 and Path(v.frames[first.onset]).name == "img010.jpg"


def test_casme_sq_offset_zero_ends_at_the_apex(casme_sq) -> None:
    videos, report = casme_sq
    macro = [i for i in by_video(videos)["15_0101disgustingteeth"] if i.kind == "MaE"]
    assert [(i.onset, i.apex, i.offset) for i in macro] == [(29, 39, 39)]
    assert macro[0].label == "positive"
    fixed = reasons(report, "offset 0: the apex 40 is the end")
    assert len(fixed) == 1 and fixed[0].startswith(FIXED)


def test_casme_sq_apex_zero_is_no_apex(casme_sq) -> None:
    videos, report = casme_sq
    (interval,) = by_video(videos)["16_0401girlcrashing"]
    assert (interval.onset, interval.apex, interval.offset, interval.kind) == (4, None, 11, "MaE")
    assert interval.emotion == "others" and interval.label is None  # "others" is no MEGC class
    assert len(reasons(report, "apex 0: no apex")) == 1


def test_casme_sq_unusable_rows_are_reported_with_their_reason(casme_sq) -> None:
    videos, report = casme_sq
    assert sum(len(v.intervals) for v in videos) == 3
    assert len(reasons(report, "subject '3' not in 'naming rule1'")) == 1
    assert len(reasons(report, "video 'happy9' not in 'naming rule2'")) == 1
    assert len(reasons(report, "no frame folder")) == 1 and "16_0402" in reasons(report, "no frame folder")[0]
    assert len(reasons(report, "offset 70 is not in the video (frames 1..60)")) == 1
    # every sheet row is either an interval or a report line that is not a "kept" remark
    dropped = [r for r in report["reason"] if not r.startswith((FIXED, KEPT))]
    assert len(dropped) + 3 == len(CASME_SQ_ROWS)


def test_casme_sq_video_without_rows_is_kept_and_reported(casme_sq) -> None:
    videos, report = casme_sq
    assert by_video(videos)["15_0102eatingworms"] == []
    kept = reasons(report, KEPT)
    assert len(kept) == 1 and "15_0102eatingworms" in report.loc[report["reason"] == kept[0], "sample_id"].iloc[0]


def test_casme_sq_copy_with_a_header_row_reads_the_same(tmp_path: Path, casme_sq) -> None:
    videos, _ = read_long("casme_sq", make_casme_sq(tmp_path / "with_header", header=True))
    assert intervals_table(videos).drop(columns="subject").equals(intervals_table(casme_sq[0]).drop(columns="subject"))


def test_casme_sq_without_naming_rules_is_one_clear_error(tmp_path: Path) -> None:
    root = make_casme_sq(tmp_path / "CASME_sq", rules=False)
    with pytest.raises(DataError, match="no worksheet 'naming rule1' or 'naming rule2'"):
        read_long("casme_sq", root)


def test_casme_sq_wrong_root_names_the_layout(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    with pytest.raises(DataError, match="rawpic/s15/15_0101disgustingteeth/img001.jpg"):
        read_long("cas(me)^2", tmp_path / "other")


# --- SAMM Long Videos ----------------------------------------------------------------------------------------------


def test_samm_lv_preamble_worksheet_and_types(samm_lv) -> None:
    videos, _ = samm_lv
    assert sorted(v.key for v in videos) == [
        ("samm_lv", "samm_lv/009", "009_4"),
        ("samm_lv", "samm_lv/011", "011_2"),
        ("samm_lv", "samm_lv/013", "013_1"),
    ]
    first = by_video(videos)["009_4"][1]  # in onset order: the onset-0 macro row comes first
    # 009_4_0010 .. 009_4_0018, apex 0014 → positions 9 .. 17, apex 13; Micro - 1/2 → ME; no emotion in the sheet
    assert (first.onset, first.apex, first.offset, first.kind, first.emotion) == (9, 13, 17, "ME", None)
    assert all(v.fps == 200.0 for v in videos)


def test_samm_lv_fractional_frames_are_rounded(samm_lv) -> None:
    videos, report = samm_lv
    macro = [i for i in by_video(videos)["009_4"] if i.kind == "MaE" and i.apex == 49]
    # onset 30.4 → 30 (position 29), offset 80.6 → 81 (position 80)
    assert [(i.onset, i.offset) for i in macro] == [(29, 80)]
    assert len(reasons(report, "fractional onset 30.4 rounded to 30; fractional offset 80.6 rounded to 81")) == 1


def test_samm_lv_onset_zero_starts_at_the_first_frame_or_is_skipped(tmp_path: Path, samm_lv) -> None:
    videos, report = samm_lv
    first = by_video(videos)["009_4"][0]
    assert (first.onset, first.apex, first.offset, first.kind) == (0, 4, 19, "MaE")
    assert len(reasons(report, "onset 0 read as the video's first frame 1 (onset_zero=first)")) == 1
    videos, report = read_long("samm_lv", make_samm_lv(tmp_path / "skip"), onset_zero="skip")
    assert len(by_video(videos)["009_4"]) == 2
    assert len(reasons(report, "skipped (onset_zero=skip)")) == 1


def test_samm_lv_apex_minus_one_is_no_apex(samm_lv) -> None:
    videos, report = samm_lv
    (interval,) = by_video(videos)["011_2"]
    assert (interval.onset, interval.apex, interval.offset, interval.kind) == (19, None, 29, "ME")
    fixed = reasons(report, "apex -1: no apex")
    assert len(fixed) == 1 and fixed[0].startswith(FIXED)


def test_samm_lv_unusable_rows_are_reported(samm_lv) -> None:
    videos, report = samm_lv
    assert len(reasons(report, "offset 90 is not in the video (frames 1..80)")) == 1
    assert len(reasons(report, "frame folder not found")) == 1
    assert len(reasons(report, "Type 'Other' is neither micro nor macro")) == 1
    assert len(reasons(report, KEPT)) == 1 and by_video(videos)["013_1"] == []
    dropped = [r for r in report["reason"] if not r.startswith((FIXED, KEPT))]
    assert len(dropped) + sum(len(v.intervals) for v in videos) == len(SAMM_LV_ROWS)


def test_unknown_long_dataset_and_bad_option(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown long-video dataset 'casme2'"):
        long_name("casme2")
    with pytest.raises(DataError, match="onset_zero option 'zero' unknown"):
        read_long("samm_lv", make_samm_lv(tmp_path / "s"), onset_zero="zero")


# --- the conversion rules and the tables ---------------------------------------------------------------------------


def test_frame_numbers_with_gaps_snap_inward() -> None:
    index = FrameIndex([1, 2, 3, 10, 11, 12])  # frames 4..9 missing
    interval, notes = coded_interval(index, "ME", 5, 10, 8)
    assert interval is None and "no frame between onset 5 and offset 8" in notes[-1]
    interval, notes = coded_interval(index, "ME", 2, 10, 11)
    assert (interval.onset, interval.apex, interval.offset) == (1, 3, 4) and notes == []
    interval, _ = coded_interval(index, "MaE", 2, 4, 11)  # onset 2 → position 1; apex 4 missing → frame 3 (position 2)
    assert (interval.onset, interval.apex, interval.offset) == (1, 2, 4)


def test_apex_outside_the_interval_is_dropped_and_offset_before_onset_skips() -> None:
    index = FrameIndex(list(range(1, 51)))
    interval, notes = coded_interval(index, "ME", 10, 40, 20)
    assert interval.apex is None and "apex 40 outside onset 10 .. offset 20: no apex" in notes
    interval, notes = coded_interval(index, "ME", 30, 25, 20)
    assert interval is None and notes[-1] == "offset 20 precedes onset 30"
    interval, notes = coded_interval(index, "ME", 10, -1, 0)
    assert interval is None and "no end" in notes[-1]


def test_readers_feed_the_metrics_and_tables(casme_sq, samm_lv) -> None:
    videos = casme_sq[0] + samm_lv[0]
    gt = truth(videos)
    scores = spotting_scores(gt, gt)
    assert scores["overall"]["f1"] == 1.0 and scores["overall"]["tp"] == 3 + 4
    table = videos_table(videos)
    assert table["n_me"].sum() + table["n_mae"].sum() == len(intervals_table(videos)) == 7
