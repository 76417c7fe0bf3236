"""Dataset readers on tiny fixture trees in each real layout, the composite manifest, and MEGC2019 list selection."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mer.data.datasets import (
    DATASETS,
    KIND,
    READERS,
    build_manifest,
    canonical,
    casme2,
    ckplus,
    folder,
    jaffe,
    mug,
    oulu,
    read_dataset,
    samm,
    smic,
)
from mer.data.manifest import COLUMNS, REPORT_COLUMNS, load_manifest, make_frame, save_manifest
from mer.data.megc import read_megc_list, select_megc
from mer.errors import ConfigError, DataError
from tests.layouts import (
    casme2_sample,
    make_casme2,
    make_ckplus,
    make_folder,
    make_jaffe,
    make_mug,
    make_oulu,
    make_samm,
    make_smic,
    samm_sample,
    write_image,
    write_megc_list,
)


def names(frames: list[str]) -> list[str]:
    return [Path(f).name for f in frames]


def by_id(rows: list[dict]) -> dict[str, dict]:
    return {r["sample_id"]: r for r in rows}


def reasons(skipped: list[dict]) -> dict[str, str]:
    return {s["sample_id"]: s["reason"] for s in skipped}


def check_row_shapes(rows: list[dict], skipped: list[dict]) -> None:
    for r in rows:
        assert list(r) == COLUMNS
        assert r["label"] in ("negative", "positive", "surprise")
        assert r["frames"] and all(Path(f).is_file() for f in r["frames"])
        assert 0 <= r["onset"] <= len(r["frames"]) - 1 and 0 <= r["offset"] <= len(r["frames"]) - 1
    for s in skipped:
        assert list(s) == REPORT_COLUMNS and s["reason"]


# --------------------------------------------------------------------------- CASME II


def test_casme2_rows_indices_and_subjects(tmp_path: Path) -> None:
    make_casme2(
        tmp_path,
        [
            casme2_sample(1, "EP02_01f", onset=46, apex=50, offset=55, emotion="happiness"),
            casme2_sample("sub02", "EP02_01f", onset=10, apex=12, offset=14, emotion="repression"),
            casme2_sample(17, "EP05_03", onset=1, apex=3, offset=5, emotion="Surprise"),
        ],
    )
    rows, skipped = casme2.read(tmp_path)
    check_row_shapes(rows, skipped)
    assert skipped == []
    got = by_id(rows)
    assert set(got) == {"sub01_EP02_01f", "sub02_EP02_01f", "sub17_EP05_03"}
    first = got["sub01_EP02_01f"]
    assert first["subject"] == "casme2/sub01" and first["dataset"] == "casme2" and first["kind"] == "micro"
    assert (first["emotion"], first["label"]) == ("happiness", "positive")
    assert names(first["frames"])[first["apex"]] == "img50.jpg"
    assert (first["onset"], first["apex"], first["offset"]) == (0, 4, 9)
    assert got["sub02_EP02_01f"]["subject"] == "casme2/sub02" and got["sub02_EP02_01f"]["label"] == "negative"
    assert got["sub17_EP05_03"]["label"] == "surprise"


def test_casme2_numeric_sort_and_index_conversion(tmp_path: Path) -> None:
    frames = [2, 3, 9, 10, 11, 100]
    make_casme2(tmp_path, [casme2_sample(1, "EP01_01", onset=2, apex=10, offset=100, frames=frames)])
    (row,), _ = casme2.read(tmp_path)
    assert names(row["frames"]) == ["img2.jpg", "img3.jpg", "img9.jpg", "img10.jpg", "img11.jpg", "img100.jpg"]
    assert (row["onset"], row["apex"], row["offset"]) == (0, 3, 5)


def test_casme2_onset_offset_snap_to_existing_frames(tmp_path: Path) -> None:
    # onset 45 / offset 60 are outside the folder's frames 46..55: they snap to the first / last frame.
    make_casme2(tmp_path, [casme2_sample(1, "EP01_01", onset=45, apex=48, offset=60, frames=range(46, 56))])
    (row,), _ = casme2.read(tmp_path)
    assert (row["onset"], row["apex"], row["offset"]) == (0, 2, 9)


def test_casme2_skips_with_reasons(tmp_path: Path) -> None:
    make_casme2(
        tmp_path,
        [
            casme2_sample(1, "EP01_slash", apex="/"),
            casme2_sample(1, "EP01_far", apex=80),
            casme2_sample(2, "EP02_fear", emotion="fear"),
            casme2_sample(2, "EP02_others", emotion="others"),
            casme2_sample(3, "EP03_typo", emotion="hapiness"),
            casme2_sample(3, "EP03_nodir", write=False),
            casme2_sample(4, "EP04_ok"),
        ],
    )
    (tmp_path / "CASME2_RAW_selected" / "sub04" / "EP99_orphan").mkdir()
    rows, skipped = casme2.read(tmp_path, missing_apex="skip")
    check_row_shapes(rows, skipped)
    assert [r["sample_id"] for r in rows] == ["sub04_EP04_ok"]
    why = reasons(skipped)
    assert why["sub01_EP01_slash"] == "no apex label ('/'); skipped (data.missing_apex=skip)"
    assert "apex frame 80 not found" in why["sub01_EP01_far"] and "46..55" in why["sub01_EP01_far"]
    assert why["sub02_EP02_fear"] == "emotion 'fear' is not in the MEGC2019 3-class protocol"
    assert why["sub02_EP02_others"] == "emotion 'others' is not in the MEGC2019 3-class protocol"
    assert why["sub03_EP03_typo"].startswith("unknown emotion label 'hapiness'")
    assert why["sub03_EP03_nodir"].startswith("frame folder not found")
    assert "no row in CASME2-coding-20140508.xlsx" in why["sub04_EP99_orphan"]
    assert {s["subject"] for s in skipped} >= {"casme2/sub01", "casme2/sub02", "casme2/sub03"}


def test_casme2_bad_layouts(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="casme2 root not found: .*missing.*CASME2_RAW_selected"):
        casme2.read(tmp_path / "missing")
    (tmp_path / "wrong" / "some_folder").mkdir(parents=True)
    (tmp_path / "wrong" / "readme.txt").write_text("hi")
    with pytest.raises(DataError) as err:
        casme2.read(tmp_path / "wrong")
    message = str(err.value)
    assert "\n" not in message
    assert "expected <root>/CASME2_RAW_selected/sub01/EP02_01f/img46.jpg and <root>/CASME2-coding-*.xlsx" in message
    assert "found in" in message and "readme.txt" in message and "some_folder/" in message
    # frames there but no coding sheet
    (tmp_path / "nosheet" / "CASME2_RAW_selected").mkdir(parents=True)
    with pytest.raises(DataError, match=r"CASME2-coding-\*\.xlsx.*found in .*CASME2_RAW_selected/"):
        casme2.read(tmp_path / "nosheet")


def test_casme2_unreadable_and_wrong_xlsx(tmp_path: Path) -> None:
    make_casme2(tmp_path / "garbage")
    sheet = tmp_path / "garbage" / "CASME2-coding-20140508.xlsx"
    sheet.write_bytes(b"\x00\x01 this is not a zip file \xff" * 10)
    with pytest.raises(DataError, match=r"cannot read CASME II coding file .*CASME2-coding-20140508\.xlsx"):
        casme2.read(tmp_path / "garbage")

    from mer.demo.layouts import write_xlsx

    make_casme2(tmp_path / "cols")
    write_xlsx(tmp_path / "cols" / "CASME2-coding-20140508.xlsx", ["Name", "Clip"], [["a", "b"]])
    with pytest.raises(
        DataError,
        match=r"no header row with the columns Subject, Filename, OnsetFrame \(or Onset\).*"
        r"closest: sheet 'Sheet1' row 1 with Name, Clip",
    ):
        casme2.read(tmp_path / "cols")

    make_casme2(tmp_path / "two", coding_name="CASME2-coding-updated.xlsx")
    write_xlsx(tmp_path / "two" / "CASME2-coding-20200101.xlsx", ["x"], [])
    with pytest.raises(DataError, match="several coding files"):
        casme2.read(tmp_path / "two")
    rows, _ = casme2.read(tmp_path / "two", coding=tmp_path / "two" / "CASME2-coding-updated.xlsx")
    assert len(rows) == 1


# --------------------------------------------------------------------------- SAMM


def test_samm_header_row_14_subject_padding_and_apex_minus_one(tmp_path: Path) -> None:
    make_samm(
        tmp_path,
        [
            samm_sample(6, "006_1_2", onset=5562, apex=5588, offset=5600, emotion="Anger"),
            samm_sample("007", "007_3_1", onset=100, apex=104, offset=108, emotion="Happiness"),
            samm_sample(6, "006_1_5", onset=200, apex=-1, offset=210, emotion="Surprise"),
            samm_sample(7, "007_5_2", onset=300, apex=303, offset=306, emotion="Other"),
            samm_sample(11, "011_2_1", onset=50, apex=52, offset=56, emotion="Contempt"),
        ],
    )
    from openpyxl import load_workbook

    sheet = load_workbook(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx").active
    assert sheet.cell(row=14, column=1).value == "Subject"  # the fixture really has the v2 preamble

    rows, skipped = samm.read(tmp_path)
    check_row_shapes(rows, skipped)
    got = by_id(rows)
    assert set(got) == {"006_1_2", "007_3_1", "011_2_1", "006_1_5"}
    assert got["006_1_5"]["apex"] is None and got["006_1_5"]["apex_source"] == "spotted"
    assert (got["006_1_5"]["onset"], got["006_1_5"]["offset"]) == (0, 10)
    anger = got["006_1_2"]
    assert anger["subject"] == "samm/006" and anger["label"] == "negative" and anger["emotion"] == "Anger"
    assert names(anger["frames"])[anger["apex"]] == "006_05588.jpg" and anger["apex"] == 26
    assert (anger["onset"], anger["offset"]) == (0, 38)
    assert got["007_3_1"]["subject"] == "samm/007" and got["007_3_1"]["label"] == "positive"
    assert got["011_2_1"]["subject"] == "samm/011" and got["011_2_1"]["label"] == "negative"
    why = reasons(skipped)
    assert why["006_1_5"] == "apex (kept): no apex label ('-1'); spotted by optical flow (data.missing_apex=spot)"
    assert why["007_5_2"] == "emotion 'Other' is not in the MEGC2019 3-class protocol"


def test_samm_bad_layouts(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    with pytest.raises(DataError, match="expected <root>/SAMM/006/006_1_2/006_05562.jpg and <root>/SAMM_Micro"):
        samm.read(tmp_path / "a")
    make_samm(tmp_path / "b")
    (tmp_path / "b" / "SAMM_Micro_FACS_Codes_v2.xlsx").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read SAMM coding file .*SAMM_Micro_FACS_Codes_v2.xlsx"):
        samm.read(tmp_path / "b")


# --------------------------------------------------------------------------- SMIC


def test_smic_middle_and_spot_apex(tmp_path: Path) -> None:
    make_smic(
        tmp_path,
        [
            ("s1", "negative", "s1_ne_01", 5),
            ("s1", "positive", "s1_po_02", 4),
            ("s20", "surprise", "s20_sur_01", 11),
        ],
    )
    rows, skipped = smic.read(tmp_path)
    check_row_shapes(rows, skipped)
    got = by_id(rows)
    assert (got["s1_ne_01"]["onset"], got["s1_ne_01"]["apex"], got["s1_ne_01"]["offset"]) == (0, 2, 4)
    assert {r["apex_source"] for r in rows} == {"middle"}
    assert got["s1_po_02"]["apex"] == 1 and got["s1_po_02"]["label"] == "positive"
    assert got["s20_sur_01"]["apex"] == 5 and got["s20_sur_01"]["subject"] == "smic/s20"
    assert got["s1_ne_01"]["subject"] == "smic/s1" and got["s1_ne_01"]["emotion"] == "negative"
    assert names(got["s1_ne_01"]["frames"])[0] == "image090823.jpg"

    rows, _ = smic.read(tmp_path, missing_apex="spot")
    assert all(r["apex"] is None and r["apex_source"] == "spotted" for r in rows)
    manifest = make_frame(rows)
    assert manifest["apex"].isna().all() and str(manifest["apex"].dtype) == "Int64"

    # the HS folder itself as root reads the same
    rows_hs, _ = smic.read(tmp_path / "HS")
    assert {r["sample_id"] for r in rows_hs} == set(got)


def test_smic_skips_and_errors(tmp_path: Path) -> None:
    make_smic(tmp_path, [("s2", "negative", "s2_ne_01", 3), ("s2", "happy", "s2_ha_01", 3)])
    (tmp_path / "HS" / "s2" / "micro" / "surprise" / "s2_sur_09").mkdir(parents=True)
    rows, skipped = smic.read(tmp_path)
    assert [r["sample_id"] for r in rows] == ["s2_ne_01"]
    why = reasons(skipped)
    assert why["s2_ne_01"] == "apex (kept): SMIC has no apex labels; middle frame 1 (data.smic_apex=middle)"
    assert why["s2_ha_01"].startswith("unknown emotion label 'happy'")
    assert why["s2_sur_09"].startswith("no images in")
    bad = "smic missing_apex option: 'apex' is not allowed; choose one of: spot, middle, skip"
    with pytest.raises(ConfigError, match=bad):
        smic.read(tmp_path, missing_apex="apex")
    (tmp_path / "other" / "HS" / "x").mkdir(parents=True)
    with pytest.raises(
        DataError, match=r"expected <root>/HS/s1/micro/negative/s1_ne_01/image090823.jpg; found in .*HS: x/"
    ):
        smic.read(tmp_path / "other")


# --------------------------------------------------------------------------- CK+


def test_ckplus_last_three_and_missing_emotion(tmp_path: Path) -> None:
    make_ckplus(
        tmp_path,
        [
            dict(subject="S005", seq="001", n=11, code=3),
            dict(subject="S005", seq="002", n=8, code=None),
            dict(subject="S010", seq="004", n=14, code=5),
            dict(subject="S011", seq="001", n=6, code=0),
            dict(subject="S011", seq="002", n=6, code="garbage\n"),
            dict(subject="S012", seq="003", n=2, code=7),
        ],
    )
    rows, skipped = ckplus.read(tmp_path)
    check_row_shapes(rows, skipped)
    got = by_id(rows)
    assert [k for k in got if k.startswith("S005")] == ["S005_001_00000009", "S005_001_00000010", "S005_001_00000011"]
    row = got["S005_001_00000011"]
    assert row["subject"] == "ckplus/S005" and row["kind"] == "macro"
    assert (row["emotion"], row["label"]) == ("disgust", "negative")
    # the sequence's first (neutral) frame rides along as the onset of the motion inputs; the apex is the image
    assert names(row["frames"]) == ["S005_001_00000001.png", "S005_001_00000011.png"]
    assert (row["onset"], row["apex"], row["offset"]) == (0, 1, 1)
    assert {r["label"] for r in rows if r["subject"] == "ckplus/S010"} == {"positive"}
    assert len([r for r in rows if r["subject"] == "ckplus/S010"]) == 3
    assert len([r for r in rows if r["subject"] == "ckplus/S012"]) == 2  # shorter than 3: all frames
    why = reasons(skipped)
    assert why["S005_002"].startswith("no emotion file in") and "not labelled" in why["S005_002"]
    assert why["S011_001"] == "emotion 'neutral' is not in the MEGC2019 3-class protocol"
    assert why["S011_002"].startswith("unknown emotion label 'garbage'")
    assert len(ckplus.read(tmp_path, last=1)[0]) == 3


def test_ckplus_bad_layout(tmp_path: Path) -> None:
    (tmp_path / "cohn-kanade-images").mkdir()
    with pytest.raises(
        DataError, match="Emotion/S005/001/S005_001_00000011_emotion.txt; found in .*cohn-kanade-images/"
    ):
        ckplus.read(tmp_path)


# --------------------------------------------------------------------------- Oulu-CASIA


def test_oulu_last_three(tmp_path: Path) -> None:
    make_oulu(tmp_path, [("P001", "Happiness", 6), ("P001", "Anger", 9), ("P002", "Surprise", 4), ("P002", "Smile", 4)])
    rows, skipped = oulu.read(tmp_path)
    check_row_shapes(rows, skipped)
    happy = [r for r in rows if r["emotion"] == "Happiness"]
    assert [names(r["frames"])[r["apex"]] for r in happy] == ["003.jpeg", "004.jpeg", "005.jpeg"]
    assert {names(r["frames"])[r["onset"]] for r in happy} == {"000.jpeg"}  # the sequence's first frame
    assert happy[0]["sample_id"] == "P001_Happiness_003" and happy[0]["subject"] == "oulu/P001"
    assert {r["label"] for r in rows if r["emotion"] == "Anger"} == {"negative"}
    assert len(rows) == 9
    assert reasons(skipped)["P002_Smile"].startswith("unknown emotion label 'Smile'")
    # pointing at the Strong folder works too
    assert len(oulu.read(tmp_path / "OriginalImg" / "VL" / "Strong")[0]) == 9
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        DataError, match="OriginalImg/VL/Strong/P001/Happiness/000.jpeg; found in .*empty: an empty folder"
    ):
        oulu.read(tmp_path / "empty")


# --------------------------------------------------------------------------- JAFFE


def test_jaffe_every_labelled_image(tmp_path: Path) -> None:
    make_jaffe(tmp_path, ["KA.AN1.39", "KA.HA2.30", "KA.NE1.26", "YM.SU3.60", "YM.DI1.61", "notes.v2"])
    (tmp_path / "README").write_text("not an image")
    rows, skipped = jaffe.read(tmp_path)
    check_row_shapes(rows, skipped)
    got = by_id(rows)
    assert set(got) == {"KA.AN1.39", "KA.HA2.30", "YM.SU3.60", "YM.DI1.61"}
    assert got["KA.AN1.39"]["subject"] == "jaffe/KA" and got["KA.AN1.39"]["emotion"] == "anger"
    assert got["KA.HA2.30"]["label"] == "positive" and got["YM.SU3.60"]["label"] == "surprise"
    # onset for the motion inputs: the subject's neutral image; YM has none, so its rows stay single-frame
    assert names(got["KA.AN1.39"]["frames"]) == ["KA.NE1.26.tiff", "KA.AN1.39.tiff"] and got["KA.AN1.39"]["apex"] == 1
    assert len(got["YM.SU3.60"]["frames"]) == 1 and got["YM.SU3.60"]["apex"] == 0
    why = reasons(skipped)
    assert why["KA.NE1.26"] == "emotion 'neutral' is not in the MEGC2019 3-class protocol"
    assert "does not follow the JAFFE pattern" in why["notes.v2"]
    # images in a single sub-folder (the jaffedbase archive) are found too
    make_jaffe(tmp_path / "nested" / "jaffedbase", ["KM.SA1.9"])
    assert [r["label"] for r in jaffe.read(tmp_path / "nested")[0]] == ["negative"]
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "x.txt").write_text("x")
    with pytest.raises(DataError, match=r"JAFFE: expected <root>/KA.AN1.39.tiff .*found in .*: x.txt"):
        jaffe.read(tmp_path / "none")


# --------------------------------------------------------------------------- MUG


def test_mug_frames_around_middle(tmp_path: Path) -> None:
    make_mug(
        tmp_path,
        [
            dict(subject="001", emotion="happiness", take="take000", n=20),
            dict(subject="001", emotion="neutral", take="take000", n=20),
            dict(subject="002", emotion="surprise", take="take001", n=4),
            dict(subject="003", emotion="anger", take="take000", n=30, session="session1"),
            dict(subject="003", emotion="anger", take="take000", n=30, session="session2"),
        ],
    )
    rows, skipped = mug.read(tmp_path)
    check_row_shapes(rows, skipped)
    happy = [r for r in rows if r["emotion"] == "happiness"]
    # 20 frames, middle index 9: the 8 frames 6..13 (img_0007..img_0014)
    assert [names(r["frames"])[r["apex"]] for r in happy] == [f"img_{i:04d}.jpg" for i in range(7, 15)]
    assert {names(r["frames"])[r["onset"]] for r in happy} == {"img_0001.jpg"}  # the take's first frame
    assert happy[0]["subject"] == "mug/001" and happy[0]["label"] == "positive" and happy[0]["kind"] == "macro"
    assert happy[0]["sample_id"] == "001_happiness_take000_img_0007"
    assert len([r for r in rows if r["subject"] == "mug/002"]) == 4  # shorter than 8: all frames
    anger = [r for r in rows if r["subject"] == "mug/003"]
    assert len(anger) == 16 and len({r["sample_id"] for r in anger}) == 16
    assert {r["sample_id"].split("_")[1] for r in anger} == {"session1", "session2"}
    assert reasons(skipped)["001_neutral"] == "emotion 'neutral' is not in the MEGC2019 3-class protocol"
    six = [r for r in mug.read(tmp_path, frames=6)[0] if r["emotion"] == "happiness"]
    assert [names(r["frames"])[r["apex"]] for r in six] == [f"img_{i:04d}.jpg" for i in range(8, 14)]
    # the subjects3 folder itself as root
    assert len(mug.read(tmp_path / "subjects3")[0]) == len(rows)
    with pytest.raises(DataError, match="frames=0"):
        mug.read(tmp_path, frames=0)
    (tmp_path / "bad" / "subjects3" / "001" / "video").mkdir(parents=True)
    with pytest.raises(DataError, match=r"subjects3/001/happiness/take000/img_0001.jpg .*found in .*subjects3: 001/"):
        mug.read(tmp_path / "bad")


# --------------------------------------------------------------------------- folder


def test_folder_micro_and_macro(tmp_path: Path) -> None:
    make_folder(
        tmp_path,
        [
            ("positive", "alice", "clip1", 5, None),
            ("negative", "alice", "clip2", 6, 4),
            ("surprise", "bob", "clip1", 3, "seven"),
            ("surprise", "bob", "clip3", 3, 3),
            ("joy", "bob", "clip9", 3, None),
        ],
    )
    rows, skipped = folder.read(tmp_path)
    check_row_shapes(rows, skipped)
    got = by_id(rows)
    assert set(got) == {"alice_clip1", "alice_clip2"}
    # no apex.txt: no apex label, spotted by `mer prepare` (data.missing_apex default) or the middle frame
    assert got["alice_clip1"]["apex"] is None and got["alice_clip1"]["apex_source"] == "spotted"
    assert got["alice_clip1"]["subject"] == "folder/alice"
    assert got["alice_clip2"]["apex"] == 4 and got["alice_clip2"]["label"] == "negative"
    assert got["alice_clip2"]["apex_source"] == "label"
    assert got["alice_clip1"]["kind"] == "micro" and got["alice_clip1"]["offset"] == 4
    middle_clip = by_id(folder.read(tmp_path, missing_apex="middle")[0])["alice_clip1"]
    assert middle_clip["apex"] == 2 and middle_clip["apex_source"] == "middle"
    why = reasons(skipped)
    assert why["alice_clip1"].startswith("apex (kept): no apex label (no apex.txt); spotted by optical flow")
    assert "is not a frame index in 0..2" in why["bob_clip1"] and "is not a frame index" in why["bob_clip3"]
    assert why[""].startswith("unknown emotion label 'joy'")

    macro, _ = READERS["folder_macro"](tmp_path)
    assert {r["kind"] for r in macro} == {"macro"} and {r["dataset"] for r in macro} == {"folder_macro"}
    assert len(macro) == 5 + 6 + 3 + 3  # one row per image of the labelled samples
    # one row per image, the sample's first frame as onset (that frame's own row stays single-frame)
    assert all(r["onset"] == 0 and r["apex"] == len(r["frames"]) - 1 <= 1 for r in macro)
    assert sum(len(r["frames"]) == 1 for r in macro) < len(macro)
    assert len({r["sample_id"] for r in macro}) == len(macro)

    (tmp_path / "flat").mkdir()
    write_image(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError, match=r"expected <root>/<negative\|positive\|surprise>/<subject>/<sample>/"):
        folder.read(tmp_path / "flat")


def test_image_extensions_case_insensitive_and_non_images_ignored(tmp_path: Path) -> None:
    clip = tmp_path / "positive" / "carol" / "c1"
    for name in ["f1.JPG", "f2.Png", "f3.bmp", "f10.TIF", "f4.jpeg", "notes.txt", "Thumbs.db", ".hidden.png"]:
        if name.endswith((".txt", ".db")):
            clip.mkdir(parents=True, exist_ok=True)
            (clip / name).write_text("x")
        else:
            write_image(clip / name)
    (row,), _ = folder.read(tmp_path)
    assert names(row["frames"]) == ["f1.JPG", "f2.Png", "f3.bmp", "f4.jpeg", "f10.TIF"]


# --------------------------------------------------------------------------- build_manifest


def all_roots(tmp_path: Path) -> dict[str, Path]:
    return {
        "casme2": make_casme2(
            tmp_path / "casme2",
            [
                casme2_sample(1, "EP02_01f"),
                casme2_sample(2, "EP03_02", emotion="disgust"),
                casme2_sample(2, "EP09_01", emotion="fear"),
            ],
        ),
        "samm": make_samm(
            tmp_path / "samm", [samm_sample(6, "006_1_2"), samm_sample(7, "007_6_1", emotion="Happiness")]
        ),
        "smic": make_smic(tmp_path / "smic", [("s1", "negative", "s1_ne_01", 5), ("s3", "surprise", "s3_sur_02", 6)]),
        "ckplus": make_ckplus(tmp_path / "ck"),
        "oulu": make_oulu(tmp_path / "oulu"),
        "jaffe": make_jaffe(tmp_path / "jaffe"),
        "mug": make_mug(tmp_path / "mug"),
        "folder": make_folder(tmp_path / "own"),
    }


def test_build_manifest_all_readers(tmp_path: Path) -> None:
    roots = all_roots(tmp_path)
    manifest, report = build_manifest({k: str(v) for k, v in roots.items()})
    assert list(manifest.columns) == COLUMNS and list(report.columns) == REPORT_COLUMNS
    counts = manifest.groupby("dataset").size().to_dict()
    assert counts == {"casme2": 2, "samm": 2, "smic": 2, "ckplus": 3, "oulu": 3, "jaffe": 3, "mug": 8, "folder": 1}
    for name, kind in manifest.groupby("dataset")["kind"].unique().items():
        assert list(kind) == [KIND[name]]
    assert all(s.startswith(f"{d}/") for d, s in zip(manifest["dataset"], manifest["subject"], strict=True))
    assert str(manifest["apex"].dtype) == "Int64"
    kept = report["reason"].str.startswith("apex (kept):")
    assert set(report.loc[~kept, "reason"]) == {
        "emotion 'fear' is not in the MEGC2019 3-class protocol",
        "emotion 'neutral' is not in the MEGC2019 3-class protocol",
    }
    # every row whose apex is not a label is listed as kept with a remark, and only those
    unlabelled = manifest[manifest["apex_source"] != "label"]
    assert sorted(report.loc[kept, "sample_id"]) == sorted(unlabelled["sample_id"])
    assert set(unlabelled["dataset"]) == {"smic", "folder"}
    assert manifest.groupby("dataset")["apex_source"].unique().map(list).to_dict()["smic"] == ["middle"]
    # the manifest round-trips through its CSV form
    again = load_manifest(save_manifest(manifest, tmp_path / "out" / "manifest.csv"))
    assert again["frames"].tolist() == manifest["frames"].tolist()
    assert again["subject"].tolist() == manifest["subject"].tolist()


def test_build_manifest_names_options_and_errors(tmp_path: Path) -> None:
    smic_root = make_smic(tmp_path / "smic")
    manifest, _ = build_manifest({"SMIC-HS": smic_root}, smic_apex="spot")
    assert manifest["apex"].isna().all()
    assert canonical("CK+") == "ckplus" and canonical("casme_ii") == "casme2"
    assert set(DATASETS) == {"casme2", "samm", "smic", "casme3a", "casme3c", "4dme", "mmew", "dfme", "ckplus", "oulu",
                             "jaffe", "mug", "folder", "folder_macro"}  # fmt: skip
    assert len(read_dataset("smic", smic_root)[0]) == 1
    with pytest.raises(DataError, match="unknown dataset 'casme9' \\(known: casme2, samm, smic, casme3a"):
        build_manifest({"casme9": smic_root})
    with pytest.raises(DataError, match="no datasets given"):
        build_manifest({})
    with pytest.raises(ConfigError, match="smic missing_apex option: .peak. is not allowed"):
        build_manifest({"smic": smic_root}, smic_apex="peak")
    with pytest.raises(DataError, match="given twice"):
        build_manifest({"smic": smic_root, "SMIC": smic_root})
    with pytest.raises(DataError, match="smic root not found"):
        build_manifest({"smic": tmp_path / "nowhere"})


def test_build_manifest_reader_options(tmp_path: Path) -> None:
    roots = {"mug": make_mug(tmp_path / "mug"), "ckplus": make_ckplus(tmp_path / "ck")}
    manifest, _ = build_manifest(roots, options={"mug": {"frames": 6}, "CK+": {"last": 2}})
    assert manifest.groupby("dataset").size().to_dict() == {"ckplus": 2, "mug": 6}
    with pytest.raises(ConfigError, match="unknown option\\(s\\) frame for the mug reader \\(options: frames\\)"):
        build_manifest(roots, options={"mug": {"frame": 6}})


# --------------------------------------------------------------------------- MEGC2019 list


def micro_roots(tmp_path: Path) -> dict[str, Path]:
    return {
        "casme2": make_casme2(
            tmp_path / "casme2",
            [
                casme2_sample(1, "EP02_01f", emotion="happiness"),
                casme2_sample(1, "EP03_02", emotion="disgust"),
                casme2_sample(2, "EP02_01f", emotion="repression"),
            ],
        ),
        "samm": make_samm(
            tmp_path / "samm", [samm_sample(6, "006_1_2"), samm_sample(6, "006_1_3", emotion="Surprise")]
        ),
        "smic": make_smic(tmp_path / "smic", [("s1", "negative", "s1_ne_01", 5), ("s1", "positive", "s1_po_01", 5)]),
        "jaffe": make_jaffe(tmp_path / "jaffe"),
    }


@pytest.mark.parametrize("header", [False, True])
def test_megc_selection(tmp_path: Path, header: bool) -> None:
    entries = [
        ("casme2", "sub01", "EP02_01f", 1),
        ("casme2", "02", "EP02_01f", 0),  # subject spelled without the sub prefix
        ("samm", "6", "006_1_2", 0),  # SAMM subject as a bare number
        ("samm", "006", "006_1_3", 1),  # label disagreement: the list says positive
        ("smic", "s01", "s1_ne_01", 0),
        ("smic", "s2", "s2_sur_05", 2),  # not on disk
        ("smic", "1", "S1_PO_01", 1),  # SMIC subject as a number, file name in upper case
    ]
    list_path = write_megc_list(tmp_path / "combined_3class_gt.csv", entries, header=header)
    roots = micro_roots(tmp_path)
    manifest, report = build_manifest(roots, megc_list=list_path)
    micro = manifest[manifest["kind"] == "micro"]
    assert sorted(micro["sample_id"]) == [
        "006_1_2",
        "006_1_3",
        "s1_ne_01",
        "s1_po_01",
        "sub01_EP02_01f",
        "sub02_EP02_01f",
    ]
    assert (manifest["dataset"] == "jaffe").sum() == 3  # macro rows pass through the selection
    assert manifest.set_index("sample_id").loc["006_1_3", "label"] == "positive"
    why = dict(zip(report["sample_id"], report["reason"], strict=True))
    assert why["sub01_EP03_02"] == "not in the MEGC2019 list"
    assert why["s1_po_01"].startswith("apex (kept): SMIC has no apex labels")  # listed and found: only the remark
    assert why["006_1_3"].startswith("label (list): MEGC2019 list says positive, emotion 'Surprise' maps to surprise")
    assert why["s2_sur_05"].startswith("in the MEGC2019 list (surprise) but not in the manifest")
    assert report.set_index("sample_id").loc["s2_sur_05", "subject"] == "smic/s2"


def test_megc_only_reports_missing_entries_of_read_datasets(tmp_path: Path) -> None:
    list_path = write_megc_list(tmp_path / "gt.csv", [("smic", "s1", "s1_ne_01", 0), ("samm", "6", "006_9_9", 0)])
    manifest, report = build_manifest({"smic": make_smic(tmp_path / "smic")}, megc_list=list_path)
    assert manifest["sample_id"].tolist() == ["s1_ne_01"]
    assert report["reason"].tolist() == ["apex (kept): SMIC has no apex labels; middle frame 2 (data.smic_apex=middle)"]


def test_megc_list_errors(tmp_path: Path) -> None:
    manifest = make_frame(smic.read(make_smic(tmp_path / "smic"))[0])
    with pytest.raises(DataError, match="MEGC2019 list not found: .*nothing.csv"):
        select_megc(manifest, tmp_path / "nothing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("casme2;sub01;EP02_01f;1\n")
    with pytest.raises(DataError, match="bad.csv: 1 column"):
        read_megc_list(bad)
    bad.write_text("casme2,sub01,EP02_01f,1\ncasme3,sub01,EP02_01f,7\n")
    with pytest.raises(DataError, match="row 2 .* is not a MEGC2019 entry"):
        read_megc_list(bad)
    table = read_megc_list(write_megc_list(tmp_path / "ok.csv", [("CASME2", "1", "EP02_01f", 1)]))
    assert table.to_dict("records") == [
        {"dataset": "casme2", "subject": "sub01", "filename": "EP02_01f", "label": "positive"}
    ]
    assert isinstance(table, pd.DataFrame)


# --------------------------------------------------------------------------- samples without an apex label


def apexless_roots(tmp_path: Path) -> dict[str, Path]:
    """CASME II with an apex '/' row and a blank apex cell, SAMM with an apex -1 row, each beside a labelled row."""
    return {
        "casme2": make_casme2(
            tmp_path / "casme2",
            [
                casme2_sample(1, "EP02_01f", onset=46, apex=50, offset=55),
                casme2_sample(1, "EP03_02", onset=46, apex="/", offset=55, emotion="disgust"),
                casme2_sample(2, "EP05_03", onset=10, apex=None, offset=16, emotion="surprise"),
            ],
        ),
        "samm": make_samm(
            tmp_path / "samm",
            [
                samm_sample(6, "006_1_2", onset=5562, apex=5588, offset=5600),
                samm_sample(6, "006_1_5", onset=200, apex=-1, offset=210, emotion="Happiness"),
            ],
        ),
    }


APEXLESS = {"sub01_EP03_02": 10, "sub02_EP05_03": 7, "006_1_5": 11}  # sample → number of frames


def test_rows_without_an_apex_label_are_kept_for_the_spotter(tmp_path: Path) -> None:
    roots = apexless_roots(tmp_path)
    rows, skipped = casme2.read(roots["casme2"])
    check_row_shapes(rows, skipped)
    assert all(s["reason"].startswith("apex (kept):") for s in skipped)
    got = by_id(rows)
    assert got["sub01_EP03_02"]["apex"] is None and got["sub01_EP03_02"]["apex_source"] == "spotted"
    assert (got["sub01_EP03_02"]["onset"], got["sub01_EP03_02"]["offset"]) == (0, 9)
    assert got["sub01_EP02_01f"]["apex"] == 4 and got["sub01_EP02_01f"]["apex_source"] == "label"

    manifest, report = build_manifest(roots)  # default data.missing_apex: spot
    assert list(manifest.columns) == COLUMNS
    m = manifest.set_index("sample_id")
    assert set(m.index) == {"sub01_EP02_01f", "006_1_2", *APEXLESS}
    for sid, n in APEXLESS.items():
        assert m.loc[sid, "apex_source"] == "spotted" and pd.isna(m.loc[sid, "apex"]), sid
        assert (m.loc[sid, "onset"], m.loc[sid, "offset"]) == (0, n - 1), sid
    assert m.loc["sub01_EP02_01f", "apex_source"] == "label" and m.loc["006_1_2", "apex_source"] == "label"
    why = dict(zip(report["sample_id"], report["reason"], strict=True))
    assert set(why) == set(APEXLESS)
    assert why["sub01_EP03_02"] == "apex (kept): no apex label ('/'); spotted by optical flow (data.missing_apex=spot)"
    assert why["sub02_EP05_03"].startswith("apex (kept): no apex label (blank)")
    assert why["006_1_5"].startswith("apex (kept): no apex label ('-1')")

    # the manifest CSV keeps the column
    again = load_manifest(save_manifest(manifest, tmp_path / "manifest.csv"))
    assert again["apex_source"].tolist() == manifest["apex_source"].tolist()


def test_missing_apex_middle_and_skip(tmp_path: Path) -> None:
    roots = apexless_roots(tmp_path)
    manifest, report = build_manifest(roots, missing_apex="middle")
    m = manifest.set_index("sample_id")
    for sid, n in APEXLESS.items():
        assert m.loc[sid, "apex_source"] == "middle" and m.loc[sid, "apex"] == (n - 1) // 2, sid
    why = dict(zip(report["sample_id"], report["reason"], strict=True))
    assert why["006_1_5"] == "apex (kept): no apex label ('-1'); middle frame 5 (data.missing_apex=middle)"

    manifest, report = build_manifest(roots, missing_apex="skip")
    assert set(manifest["sample_id"]) == {"sub01_EP02_01f", "006_1_2"}
    assert set(manifest["apex_source"]) == {"label"}
    why = dict(zip(report["sample_id"], report["reason"], strict=True))
    assert why["sub01_EP03_02"] == "no apex label ('/'); skipped (data.missing_apex=skip)"
    bad = "missing_apex option: 'peak' is not allowed; choose one of: spot, middle, skip"
    with pytest.raises(ConfigError, match=bad):
        build_manifest(roots, missing_apex="peak")


def test_megc_list_keeps_every_listed_sample_on_disk(tmp_path: Path) -> None:
    roots = apexless_roots(tmp_path)
    entries = [
        ("casme2", "sub01", "EP02_01f", 1),
        ("casme2", "sub01", "EP03_02", 0),  # apex '/'
        ("casme2", "2", "EP05_03", 2),  # blank apex cell
        ("samm", "006", "006_1_2", 0),
        ("samm", "6", "006_1_5", 1),  # apex -1
    ]
    list_path = write_megc_list(tmp_path / "combined_3class_gt.csv", entries)
    manifest, report = build_manifest(roots, megc_list=list_path)
    assert len(manifest) == len(entries)
    assert set(manifest["sample_id"]) == {"sub01_EP02_01f", "006_1_2", *APEXLESS}
    assert not report["reason"].str.contains("not in the manifest").any()
    assert (manifest.set_index("sample_id").loc[list(APEXLESS), "apex_source"] == "spotted").all()
    # a sample the list leaves out gets no "apex (kept)" remark: it is not kept
    short = write_megc_list(tmp_path / "short.csv", entries[:-1])
    manifest, report = build_manifest(roots, megc_list=short)
    assert "006_1_5" not in set(manifest["sample_id"])
    assert report.loc[report["sample_id"] == "006_1_5", "reason"].tolist() == ["not in the MEGC2019 list"]


def test_smic_apex_is_the_missing_apex_policy_for_smic(tmp_path: Path) -> None:
    root = make_smic(tmp_path, [("s1", "negative", "s1_ne_01", 5), ("s1", "positive", "s1_po_02", 8)])
    manifest, report = build_manifest({"smic": root})  # data.smic_apex default: middle (the paper)
    assert manifest["apex"].tolist() == [2, 3] and set(manifest["apex_source"]) == {"middle"}
    assert report["reason"].str.startswith("apex (kept): SMIC has no apex labels; middle frame").all()
    manifest, _ = build_manifest({"smic": root}, smic_apex="spot", missing_apex="middle")
    assert manifest["apex"].isna().all() and set(manifest["apex_source"]) == {"spotted"}


def test_old_manifest_without_apex_source_reads_with_a_default(tmp_path: Path) -> None:
    manifest, _ = build_manifest(apexless_roots(tmp_path))
    smic_rows, _ = build_manifest({"smic": make_smic(tmp_path / "smic")})
    both = pd.concat([manifest, smic_rows], ignore_index=True)
    path = save_manifest(both.drop(columns=["apex_source"]), tmp_path / "old.csv")
    old = load_manifest(path).set_index("sample_id")
    assert old.loc["sub01_EP02_01f", "apex_source"] == "label"
    assert old.loc["006_1_5", "apex_source"] == "spotted"  # apex empty: spotted by prepare
    assert old.loc["s1_ne_01", "apex_source"] == "middle"  # SMIC has no labels: its apex was the middle frame
