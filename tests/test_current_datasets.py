"""Readers of CAS(ME)^3 Parts A and C, 4DME, MMEW and DFME on fixture trees in their shipped layouts."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from mer.data.datasets import READERS, build_manifest, canonical
from mer.data.datasets._common import NO_FOLDER, NO_IMAGES, frame_number
from mer.errors import DataError
from tests.layouts import write_frames
from tests.layouts_current import (
    CASME3A_ERRATA,
    CHINESE_COMMA_ROW,
    UPPER_J_ROW,
    casme3a_rows,
    casme3c_rows,
    make_4dme,
    make_casme3a,
    make_casme3c,
    make_dfme,
    make_mmew,
)


def numbers(sample: dict) -> tuple[int, int | None, int]:
    """The onset, apex and offset of a row as frame numbers (file names), apex None when unlabelled."""
    f = sample["frames"]
    apex = frame_number(f[sample["apex"]]) if sample["apex"] is not None else None
    return frame_number(f[sample["onset"]]), apex, frame_number(f[sample["offset"]])


def by_id(rows: list[dict]) -> dict[str, dict]:
    return {r["sample_id"]: r for r in rows}


def reasons_of(skipped: list[dict], sample_id: str) -> list[str]:
    return [s["reason"] for s in skipped if s["sample_id"] == sample_id]


@pytest.fixture(scope="module")
def casme3a_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], list[dict]]:
    root = make_casme3a(tmp_path_factory.mktemp("casme3a"))
    rows, skipped = READERS["casme3a"](root)
    return root, rows, skipped


def test_casme3a_full_sheet_gives_the_published_counts(casme3a_tree) -> None:
    _, rows, skipped = casme3a_tree
    assert len(rows) == 699
    assert Counter(r["label"] for r in rows) == {"negative": 457, "positive": 55, "surprise": 187}
    assert len({r["subject"] for r in rows}) == 94
    assert len({r["sample_id"] for r in rows}) == 699
    dropped = [s for s in skipped if "not in the MEGC2019 3-class protocol" in s["reason"]]
    assert len(dropped) == 158 + 3  # 'others' and 'Others' alike: dropped, never an unknown label
    assert not [s for s in skipped if "unknown emotion" in s["reason"]]


def test_casme3a_repeated_subject_filename_pairs_are_distinct_samples(casme3a_tree) -> None:
    _, rows, _ = casme3a_tree
    sheet = casme3a_rows()
    pairs = Counter(r["folder"] for r in sheet)
    repeated = [r for r in sheet if pairs[r["folder"]] > 1]
    assert len([p for p, n in pairs.items() if n > 1]) == 191 and len(repeated) == 588
    ids = by_id(rows)
    # the first video holds three MEs: one sample per labelled interval, named by subject, letter and onset
    video = [ids.get(f"spNO.1_a_{onset}") for onset in (10, 20, 30)]
    mapped = [s for s in video if s is not None]
    assert mapped and all(s["frames"][0].endswith(f"{s['sample_id'].split('_')[-1]}.jpg") for s in mapped)
    assert all(numbers(s)[2] - numbers(s)[0] == 2 for s in mapped)


def test_casme3a_errata_are_fixed_and_reported(casme3a_tree) -> None:
    _, rows, skipped = casme3a_tree
    sheet = casme3a_rows()
    ids = by_id(rows)
    for line, (_written, expect) in CASME3A_ERRATA.items():
        subject, letter = sheet[line]["folder"]
        sample = ids[f"{subject}_{letter}_{expect[0]}"]
        assert numbers(sample) == expect, line
        assert sample["apex_source"] == "label"
        assert any(
            r.startswith("erratum (fixed):") and f"row {line}" in r for r in reasons_of(skipped, sample["sample_id"])
        )


def test_casme3a_uppercase_letter_and_undotted_subjects(casme3a_tree) -> None:
    _, rows, _ = casme3a_tree
    row = casme3a_rows()[UPPER_J_ROW]
    assert row["cells"][1] == "J"
    subject, _ = row["folder"]
    hits = [r for r in rows if r["sample_id"].startswith(f"{subject}_j_")]
    assert hits and "/j/color/" in hits[0]["frames"][0].replace("\\", "/")
    assert {f"casme3a/spNO.{n}" for n in range(210, 216)} <= {r["subject"] for r in rows}


def _rows(*cells: tuple, frames: dict[tuple[str, str], range] | None = None) -> list[dict]:
    """Hand-written Part A rows over `frames` (folder → frame numbers on disk)."""
    frames = frames or {}
    return [
        {"cells": [*c[:5], "4", "1", c[5]], "folder": (f"spNO.{c[0].split('.')[-1]}", c[1].lower()),
         "frames": list(frames.get((f"spNO.{c[0].split('.')[-1]}", c[1].lower()), range(1, 60)))}
        for c in cells
    ]  # fmt: skip


def test_casme3a_unknown_errata_are_reported_not_guessed(tmp_path: Path) -> None:
    rows = _rows(
        ("spNO.1", "a", 20, 10, 30, "happy"),  # apex before the onset, not a known erratum: no apex label
        ("spNO.1", "a", 40, 42, 0, "happy"),  # offset 0, no known correction: unusable
        ("spNO.1", "a", 20, 25, 35, "disgust"),  # a second ME at the same onset: its own sample
        ("spNO.1", "b", 5, 7, 9, "Others"),
    )
    root = make_casme3a(tmp_path, rows)
    got, skipped = READERS["casme3a"](root)
    ids = by_id(got)
    assert sorted(ids) == ["spNO.1_a_20", "spNO.1_a_20_2"]
    first = ids["spNO.1_a_20"]
    assert first["apex"] is None and first["apex_source"] == "spotted"
    assert any("apex 10 outside onset..offset 20..30" in r for r in reasons_of(skipped, "spNO.1_a_20"))
    assert any("unusable interval onset 40 offset 0" in r for r in reasons_of(skipped, "spNO.1_a_40"))
    assert numbers(ids["spNO.1_a_20_2"]) == (20, 25, 35)
    middle, _ = READERS["casme3a"](root, missing_apex="middle")
    assert by_id(middle)["spNO.1_a_20"]["apex_source"] == "middle"


def test_casme3a_exception_list_frames_left_out(tmp_path: Path) -> None:
    rows = _rows(("spNO.3", "J", 10, 12, 14, "happy"), ("spNO.2", "a", 10, 12, 14, "surprise"))
    damaged = "spNO.3 J 13.jpg  the image cannot open\n"
    quality = "/data/casme3/RGB/spNO.2/a/color/12.jpg\n"
    root = make_casme3a(tmp_path, rows, {"error_info_damaged_image_partA.txt": damaged, "bad_quality.txt": quality})
    got, skipped = READERS["casme3a"](root)
    ids = by_id(got)
    assert [frame_number(f) for f in ids["spNO.3_j_10"]["frames"]] == [10, 11, 12, 14]
    assert numbers(ids["spNO.3_j_10"]) == (10, 12, 14)
    assert any("frames [13] listed in exception/" in r for r in reasons_of(skipped, "spNO.3_j_10"))
    # the apex frame itself is listed: the sample is kept without an apex label
    assert ids["spNO.2_a_10"]["apex"] is None
    assert any("apex frame 12 listed in exception/bad_quality.txt" in r for r in reasons_of(skipped, "spNO.2_a_10"))
    kept, _ = READERS["casme3a"](root, exceptions=False)
    assert len(by_id(kept)["spNO.3_j_10"]["frames"]) == 5


def test_casme3a_layout_errors(tmp_path: Path) -> None:
    (tmp_path / "RGB").mkdir()
    with pytest.raises(DataError, match="does not look like CAS\\(ME\\)\\^3 Part A"):
        READERS["casme3a"](tmp_path)
    with pytest.raises(DataError, match="not found"):
        READERS["casme3a"](tmp_path / "nowhere")


def test_casme3c_counts_no_apex_and_chinese_comma(tmp_path: Path) -> None:
    root = make_casme3c(tmp_path)
    rows, skipped = READERS["casme3c"](root)
    assert len(rows) == 145
    assert Counter(r["label"] for r in rows) == {"negative": 99, "positive": 16, "surprise": 30}
    assert len({r["subject"] for r in rows}) == 30 and "casme3c/sub22" not in {r["subject"] for r in rows}
    assert {r["apex_source"] for r in rows} == {"spotted"}
    sub, count, *_ = casme3c_rows()[CHINESE_COMMA_ROW]
    assert by_id(rows)[f"sub{sub:02d}_{count}"]["aus"] == "4+11"
    middle, _ = READERS["casme3c"](root, missing_apex="middle")
    sample = middle[0]
    assert sample["apex_source"] == "middle" and sample["apex"] == (len(sample["frames"]) - 1) // 2


def test_4dme_sheet_name_with_a_space_and_au_prefixes(tmp_path: Path) -> None:
    root = make_4dme(
        tmp_path,
        [("S01", "S01_01", "Positive", 3, 5, 8, "AU6(k)+AU12"), ("S02", "S02_03", "Negative", 1, -1, 4, "AU4")],
    )
    assert (root / "4DME_Labelling_Micro_release v1.xlsx").is_file()
    rows, skipped = READERS["4dme"](root)
    ids = by_id(rows)
    assert numbers(ids["S01_S01_01"]) == (3, 5, 8) and ids["S01_S01_01"]["label"] == "positive"
    assert ids["S01_S01_01"]["aus"] == "6+12" and ids["S01_S01_01"]["subject"] == "4dme/S01"
    assert ids["S02_S02_03"]["apex_source"] == "spotted"


def test_mmew_clip_found_under_any_emotion_folder(tmp_path: Path) -> None:
    root = make_mmew(
        tmp_path,
        [("S03", "S03-01-002", 1, 4, 9, "AU12", "happiness"), (5, "S05-06-001", 2, 3, 5, "AU4", "others")],
        folders={"S03-01-002": "Happiness"},
    )
    write_frames(root / "MMEW_Final" / "Micro_Expression" / "surprise" / "S07-02-001", ["1.jpg", "2.jpg"])
    rows, skipped = READERS["mmew"](root)
    assert [r["sample_id"] for r in rows] == ["S03-01-002"]
    assert rows[0]["subject"] == "mmew/S03" and numbers(rows[0]) == (1, 4, 9)
    assert any("not in the MEGC2019 3-class protocol" in r for r in reasons_of(skipped, "S05-06-001"))
    assert any("has no row in MMEW_Micro_Exp.xlsx" in r for r in reasons_of(skipped, "S07-02-001"))
    assert not reasons_of(skipped, "S03-01-002")


def test_dfme_zero_based_frames_per_clip_fps_and_splits(tmp_path: Path) -> None:
    root = make_dfme(
        tmp_path,
        {
            "train": [
                ("sub0003", "sub0003_01", 0, 0, 5, "happiness", 500, 6),
                ("sub0003", "sub0003_02", 2, 4, 6, "contempt", 200, 8),
            ],
            "testA": [("sub0101", "sub0101_01", 1, 3, 4, "surprise", 300, 5)],
            "testB": [("sub0202", "sub0202_01", 0, 1, 2, "fear", 500, 3)],
        },
    )  # fmt: skip
    rows, skipped = READERS["dfme"](root)
    ids = by_id(rows)
    first = ids["sub0003_01"]
    assert first["frames"][0].endswith("0.png") and (first["onset"], first["apex"], first["offset"]) == (0, 0, 5)
    assert first["apex_source"] == "label"  # apex 0 is frame 0.png, not a missing label
    assert numbers(ids["sub0003_02"]) == (2, 4, 6) and ids["sub0003_02"]["onset"] == 2
    assert {k: v["fps"] for k, v in ids.items()} == {
        "sub0003_01": 500,
        "sub0003_02": 200,
        "sub0101_01": 300,
        "sub0202_01": 500,
    }
    splits = {"sub0003_01": "train", "sub0003_02": "train", "sub0101_01": "testA", "sub0202_01": "testB"}
    assert {k: v["split"] for k, v in ids.items()} == splits
    assert ids["sub0003_02"]["label"] == "negative" and not skipped
    only, _ = READERS["dfme"](root, splits=["testA"])
    assert [r["sample_id"] for r in only] == ["sub0101_01"]


def test_build_manifest_keeps_fps_split_and_aus_columns(tmp_path: Path) -> None:
    dfme = make_dfme(tmp_path / "dfme")
    c3 = make_casme3c(tmp_path / "c3", casme3c_rows()[:10])
    manifest, report = build_manifest({"DFME": dfme, "casme3-c": c3})
    assert {"fps", "split", "aus"} <= set(manifest.columns)
    assert set(manifest["dataset"]) == {"dfme", "casme3c"}
    assert manifest.loc[manifest["dataset"] == "dfme", "fps"].tolist() == [500]
    assert canonical("CAS(ME)^3") == "casme3a" and canonical("4D-ME") == "4dme"


def test_fixture_trees_give_the_official_counts(casme3a_tree, tmp_path: Path) -> None:
    """The shipped counts table (`mer/data/official_counts.csv`) holds the published figures the fixtures reproduce."""
    from mer.data.official import official

    _, rows, skipped = casme3a_tree
    outside = [s for s in skipped if "not in the MEGC2019 3-class protocol" in s["reason"]]
    assert len(rows) + len(outside) == official("casme3a", "sheet_rows").value
    assert len(outside) == official("casme3a", "outside_scheme").value
    assert len({r["subject"] for r in rows}) == official("casme3a", "subjects").value
    c_rows, c_skipped = READERS["casme3c"](make_casme3c(tmp_path / "c"))
    c_outside = [s for s in c_skipped if "not in the MEGC2019 3-class protocol" in s["reason"]]
    assert len(c_rows) + len(c_outside) == official("casme3c", "sheet_rows").value
    assert len(c_outside) == official("casme3c", "outside_scheme").value
    assert len({r["subject"] for r in c_rows}) == official("casme3c", "subjects").value
    assert sum(r["apex_source"] != "label" for r in c_rows) + len(c_outside) == official("casme3c", "apex_less").value


def test_label_files_for_datasets_check(casme3a_tree, tmp_path: Path) -> None:
    """Each reader's label file (what `mer datasets check` reports): path, version and data rows."""
    from mer.data.datasets import LABEL_FILES
    from mer.data.official import official

    root, _, _ = casme3a_tree
    a = LABEL_FILES["casme3a"](root)
    assert a.rows == official("casme3a", "sheet_rows").value and a.version.startswith("CAS(ME)^3 Part A ME sheet v2")
    c = LABEL_FILES["casme3c"](make_casme3c(tmp_path / "c"))
    assert c.rows == official("casme3c", "sheet_rows").value and "sheet mockCrimeME" not in c.version
    assert LABEL_FILES["4dme"](make_4dme(tmp_path / "4d")).rows == 1
    assert LABEL_FILES["mmew"](make_mmew(tmp_path / "mm")).rows == 1
    rows = {"train": [("sub0003", "sub0003_01", 0, 2, 5, "happiness", 500, 6)],
            "testA": [("sub0101", "sub0101_01", 1, 3, 4, "surprise", 300, 5)]}  # fmt: skip
    dfme = LABEL_FILES["dfme"](make_dfme(tmp_path / "df", rows))
    assert dfme.rows == 2 and dfme.version == "CCAC challenge sheets: train 1 rows, testA 1 rows"


def test_missing_frames_use_the_shared_reasons(tmp_path: Path) -> None:
    """Rows whose frames are missing are reported with the reasons `mer datasets check` counts."""
    rows = [*casme3c_rows()[:3], [40, 1, 10, 14, "12", "negative"]]
    root = make_casme3c(tmp_path / "c", rows)
    shutil.rmtree(root / "RGB" / "sub40")  # the sheet names sub 40, whose folder is gone
    _, skipped = READERS["casme3c"](root)
    assert [s["reason"].startswith(NO_FOLDER) for s in skipped if s["sample_id"] == "sub40_1"] == [True]
    mmew = make_mmew(tmp_path / "mm", [("S03", "S03-01-002", 1, 4, 9, "AU12", "happiness"),
                                      ("S04", "S04-01-001", 1, 2, 3, "AU12", "happiness")])  # fmt: skip
    shutil.rmtree(mmew / "MMEW_Final" / "Micro_Expression" / "happiness" / "S04-01-001")
    _, skipped = READERS["mmew"](mmew)
    assert [s["reason"].startswith(NO_FOLDER) for s in skipped if s["sample_id"] == "S04-01-001"] == [True]
    a_rows = [{"cells": ["spNO.1", "a", 10, 12, 14, "4", "1", "happy"], "folder": ("spNO.1", "a"), "frames": [1, 2]}]
    _, skipped = READERS["casme3a"](make_casme3a(tmp_path / "a", a_rows))
    assert skipped[0]["reason"].startswith(NO_IMAGES)


def test_datasets_check_on_the_fixture_trees_matches_the_published_counts(casme3a_tree, tmp_path: Path) -> None:
    """`mer datasets check` reads every new reader's tree; the full-size CAS(ME)^3 fixtures give the published
    counts, Part C's 165 apex-less rows included (its rows outside the classes are kept for the count)."""
    from mer.data.check import check_roots

    root, _, _ = casme3a_tree
    result = check_roots({"casme3a": root, "casme3c": make_casme3c(tmp_path / "c")})
    assert result.differences() == []
    a, c = result.datasets
    assert (a.counts["sheet_rows"], a.counts["outside_scheme"], a.counts["subjects"]) == (860, 161, 94)
    assert (c.counts["sheet_rows"], c.counts["apex_less"], c.counts["outside_scheme"]) == (165, 165, 20)
    manifest, _ = build_manifest({"casme3c": make_casme3c(tmp_path / "c2")})
    assert len(manifest) == 145 and set(manifest["label"]) == {"negative", "positive", "surprise"}
