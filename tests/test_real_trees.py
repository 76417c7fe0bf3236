"""The datasets as their owners ship them: the MEGC2019 list at full size (442 and 441 samples) over trees in the
shipped layouts, and one test per quirk of the real files (tests/layouts.py writes the trees from published facts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mer.data.datasets import build_manifest, casme2, samm, smic
from mer.errors import DataError
from tests.layouts import (
    CASME2_HEADER,
    casme2_sample,
    make_casme2,
    make_megc_trees,
    make_samm,
    make_smic,
    samm_sample,
    write_megc_list,
)


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_megc_trees(tmp_path_factory.mktemp("megc"))


def reasons(report) -> dict[str, str]:  # noqa: ANN001 - a report DataFrame
    return dict(zip(report["sample_id"], report["reason"], strict=True))


def test_the_442_list_gives_442_samples_of_68_subjects(trees: dict) -> None:
    raw = trees["list442"].read_bytes()
    assert raw.count(b"\r\n") == 442 and b",,," not in raw  # the file as HTNet / CausalNet ship it
    manifest, report = build_manifest(trees["roots"], megc_list=trees["list442"])
    assert len(manifest) == 442 and manifest["subject"].nunique() == 68
    assert manifest["label"].value_counts().to_dict() == {"negative": 250, "positive": 109, "surprise": 83}
    assert manifest.groupby("dataset").size().to_dict() == {"casme2": 145, "samm": 133, "smic": 164}
    assert manifest.groupby("dataset")["subject"].nunique().to_dict() == {"casme2": 24, "samm": 28, "smic": 16}
    assert not report["reason"].str.contains("but not in the manifest").any()
    assert "032_3_1" in set(manifest["sample_id"])  # apex -1, kept for the spotter
    from mer.data.megc import megc_list  # here, so the counts above are checked on code without it too

    listed = megc_list(trees["list442"])
    assert listed.variant == "442" and listed.counts == {"casme2": 145, "samm": 133, "smic": 164}
    assert "442-sample variant" in listed.describe() and "68 subjects" in listed.describe()


def test_the_official_441_list_gives_its_441_samples(trees: dict) -> None:
    raw = trees["list441"].read_bytes()
    assert b"\r" not in raw and raw.count(b",,,\n") == 440  # LF and a blank ,,, line after every row
    manifest, report = build_manifest(trees["roots"], megc_list=trees["list441"], missing_apex="middle")
    assert len(manifest) == 441 and manifest["subject"].nunique() == 68
    assert manifest.groupby("dataset").size().to_dict() == {"casme2": 145, "samm": 132, "smic": 164}
    assert manifest["label"].value_counts().to_dict() == {"negative": 249, "positive": 109, "surprise": 83}
    assert reasons(report)["032_3_1"] == "not in the MEGC2019 list"
    from mer.data.megc import megc_list

    listed = megc_list(trees["list441"])
    assert listed.variant == "441" and "official 441-sample list" in listed.describe()


def test_smic_list_names_are_zero_padded_unlike_the_folders(tmp_path: Path) -> None:
    root = make_smic(tmp_path / "smic", [("s1", "negative", "s1_ne_01", 3), ("s12", "surprise", "s12_sur_02", 3)])
    gt = write_megc_list(tmp_path / "gt.csv", [("smic", "s01", "s01_ne_01", 0), ("smic", "s12", "s12_sur_02", 2)])
    manifest, report = build_manifest({"smic": root}, megc_list=gt)
    assert sorted(manifest["sample_id"]) == ["s12_sur_02", "s1_ne_01"]
    assert not report["reason"].str.contains("not in the").any()


@pytest.mark.parametrize(
    ("dataset", "emotion", "label"),
    [("casme2", "others", 0), ("samm", "Other", 0), ("samm", "Others", 2), ("casme2", "fear", 1)],
)
def test_a_listed_sample_whose_sheet_emotion_is_outside_the_mapping_keeps_the_list_label(
    tmp_path: Path, dataset: str, emotion: str, label: int
) -> None:
    if dataset == "casme2":
        root = make_casme2(tmp_path / "c", [casme2_sample(1, "EP02_01f", emotion=emotion), casme2_sample(1, "EP03_02")])
        entry, sid, other = ("casme2", "sub01", "EP02_01f", label), "sub01_EP02_01f", "sub01_EP03_02"
    else:
        root = make_samm(tmp_path / "s", [samm_sample(6, "006_1_2", emotion=emotion), samm_sample(6, "006_1_3")])
        entry, sid, other = ("samm", "6", "006_1_2", label), "006_1_2", "006_1_3"
    gt = write_megc_list(tmp_path / "gt.csv", [entry])
    manifest, report = build_manifest({dataset: root}, megc_list=gt)
    assert manifest["sample_id"].tolist() == [sid]
    wanted = ("negative", "positive", "surprise")[label]
    assert manifest["label"].tolist() == [wanted] and manifest["emotion"].tolist() == [emotion]
    why = reasons(report)
    assert why[sid] == (
        f"label (list): MEGC2019 list says {wanted}, emotion '{emotion}' is outside the 3-class mapping; "
        "kept with the list's label"
    )
    assert why[other] == "not in the MEGC2019 list"
    # without a list the row is left out with the reader's reason, as before
    manifest, report = build_manifest({dataset: root})
    assert sid not in set(manifest["sample_id"])
    assert reasons(report)[sid] == f"emotion '{emotion}' is not in the MEGC2019 3-class protocol"
    # a list that leaves it out: the same reason, no "not in the list" row for it
    gt = write_megc_list(tmp_path / "other.csv", [(entry[0], entry[1], other.split("_", 1)[-1] if dataset == "casme2"
                                                   else other, 0)])  # fmt: skip
    manifest, report = build_manifest({dataset: root}, megc_list=gt)
    assert manifest["sample_id"].tolist() == [other]
    assert report.loc[report["sample_id"] == sid, "reason"].tolist() == [
        f"emotion '{emotion}' is not in the MEGC2019 3-class protocol"
    ]


SAMM_ROWS = [samm_sample(6, "006_1_2"), samm_sample(7, "007_3_1", emotion="Others", apex=-1, onset=1, offset=5)]


@pytest.mark.parametrize(
    ("layout", "coding", "version"),
    [
        (dict(), "SAMM_Micro_FACS_Codes_v2.xlsx", "SAMM v2: SAMM_Micro_FACS_Codes_v2.xlsx, header on row 14"),
        (dict(preamble=False), "SAMM_20181215_Micro_FACS_Codes_v2.xlsx", "SAMM v2, one header row"),
        (dict(preamble=False, sheet="MICRO_ONLY", before=["ALL"]), "SAMM.xlsx", "SAMM.xlsx (sheet MICRO_ONLY"),
        (
            dict(
                header=[
                    "subject ",
                    "File name",
                    "Inducement Code",
                    "Onset",
                    "Apex",
                    "Offset",
                    "Duration",
                    "Type",
                    "Action Units",
                    "Notes",
                    " Estimated  emotion",
                ]
            ),
            "SAMM_Micro_FACS_Codes_v1.xlsx",
            "SAMM v1",
        ),
    ],  # fmt: skip
)
def test_samm_label_file_versions(tmp_path: Path, layout: dict, coding: str, version: str) -> None:
    root = make_samm(tmp_path, SAMM_ROWS, coding_name=coding, **layout)
    rows, skipped = samm.read(root)
    assert [r["sample_id"] for r in rows] == ["006_1_2"] and rows[0]["apex"] == 26
    # 'Others' (some copies) is the protocol's 'Other', not an unknown label
    assert reasons_of(skipped)["007_3_1"] == "emotion 'Others' is not in the MEGC2019 3-class protocol"
    found = samm.label_file(root)
    assert found.path.name == coding and found.rows == 2 and version in found.version, found.version


def reasons_of(skipped: list[dict]) -> dict[str, str]:
    return {s["sample_id"]: s["reason"] for s in skipped}


def test_casme2_sheet_versions(tmp_path: Path) -> None:
    rows = [casme2_sample(1, "EP02_01f"), casme2_sample(2, "EP03_02", apex="/", emotion="disgust")]
    spaced = ["Subject ", "filename", "Onset Frame", "APEXFRAME", "OffsetFrame", "Action Units", "Estimated  Emotion"]
    updated = make_casme2(tmp_path / "u", rows, coding_name="CASME2-coding-updated.xlsx", header=spaced,
                          blank_columns=(2, 6))  # fmt: skip
    got, skipped = casme2.read(updated)
    assert sorted(r["sample_id"] for r in got) == ["sub01_EP02_01f", "sub02_EP03_02"]
    assert {r["sample_id"]: r["apex_source"] for r in got}["sub02_EP03_02"] == "spotted"
    # a root holding two versions reads the 2014-05-08 sheet (the published counts' version) and says so
    both = make_casme2(tmp_path / "b", rows[:1], coding_name="CASME2-coding-20140508.xlsx")
    make_casme2(both, rows, coding_name="CASME2-coding-updated.xlsx", header=spaced, blank_columns=(2, 6))
    got, _ = casme2.read(both)
    assert [r["sample_id"] for r in got] == ["sub01_EP02_01f"]
    assert casme2.label_file(both).version.startswith("CASME II coding sheet of 2014-05-08")
    found = casme2.label_file(updated)
    assert found.rows == 2 and "updated coding sheet" in found.version and "2 blank-header column(s)" in found.version


def test_a_sheet_that_fits_nothing_names_the_columns_found_and_expected(tmp_path: Path) -> None:
    header = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Objective Class"]
    root = make_casme2(tmp_path, [casme2_sample()], coding_name="CASME2-coding-20140508.xlsx", header=header)
    with pytest.raises(DataError) as err:
        casme2.read(root)
    text = str(err.value)
    assert "\n" not in text and "CASME2-coding-20140508.xlsx" in text
    assert "Estimated Emotion (or Emotion)" in text and "Objective Class" in text
    assert header == CASME2_HEADER[:-1] + ["Objective Class"]


def test_smic_without_its_micro_level(tmp_path: Path) -> None:
    root = make_smic(tmp_path, [("s1", "negative", "s1_ne_01", 3), ("s2", "positive", "s2_po_01", 4)], micro=False)
    (root / "HS" / "s1" / "non_micro" / "s1_x_01").mkdir(parents=True)
    rows, skipped = smic.read(root)
    assert sorted(r["sample_id"] for r in rows) == ["s1_ne_01", "s2_po_01"]
    assert all(s["reason"].startswith("apex (kept)") for s in skipped)
    assert "no micro level" in smic.label_file(root).version
    assert "micro/<class>" in smic.label_file(make_smic(tmp_path / "m")).version
