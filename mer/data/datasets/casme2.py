"""CASME II reader: `CASME2-coding-*.xlsx` + `CASME2_RAW_selected/sub01/EP02_01f/img46.jpg`.

The coding sheet gives Subject (1 → sub01), Filename, OnsetFrame, ApexFrame, OffsetFrame (numbers as in the
image file names) and Estimated Emotion. Frame numbers become indices into the numerically sorted frame list.
Rows with an apex of "/" (or a blank cell) have no apex label: they are kept and get their apex by `missing_apex`
(spot: by `mer prepare`'s optical-flow spotter; middle; skip), with an "apex (kept): ..." report row. Rows whose
apex number is not a file, an emotion outside the protocol, or no frame folder are skipped with their reason, and
so are frame folders that no coding row names. Sample ids are `sub01_EP02_01f`
(a Filename alone repeats across subjects).

Sheet versions in circulation (docs/datasets.md): `CASME2-coding-20140508.xlsx` (255 rows), `CASME2-coding-updated.xlsx`
(256 rows, two blank-header columns), other dates; column names are matched ignoring case and spaces. When the root
holds several, the 20140508 sheet (the one the published counts come from) is read.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from mer.data.datasets._common import LabelFile, as_root, coded_label_file, find_one, layout_error, read_coded
from mer.data.names import subject_folder
from mer.errors import DataError

NAME = "casme2"
KIND = "micro"
FRAMES_DIR = "CASME2_RAW_selected"
CODING_GLOB = "CASME2-coding-*.xlsx"
CODING_PATTERNS = (CODING_GLOB, "CASME2*coding*.xls*", "CASME2_label*.xls*")
PREFERRED = ("CASME2-coding-20140508.xlsx",)
EXPECTED = f"<root>/{FRAMES_DIR}/sub01/EP02_01f/img46.jpg and <root>/{CODING_GLOB}"
COLUMNS = [
    "Subject",
    "Filename",
    ("OnsetFrame", "Onset"),
    ("ApexFrame", "Apex"),
    ("OffsetFrame", "Offset"),
    ("Estimated Emotion", "Emotion"),
]
# file-name pattern → version name, first match wins
VERSIONS = (
    (r"20140508", "CASME II coding sheet of 2014-05-08"),
    (r"updated", "CASME II updated coding sheet"),
    (r"coding-(\d{8})", "CASME II coding sheet of another date"),
    (r"label_ver_2", "CASME II label file version 2"),
)


def coding_sheet(root: Path, coding: str | Path | None = None, frames_dir: str = FRAMES_DIR) -> Path:
    """The coding xlsx a CASME II root is read with (`coding` when given); DataError naming the layout otherwise."""
    expected = EXPECTED.replace(FRAMES_DIR, frames_dir)
    if not (root / frames_dir).is_dir():
        raise layout_error(root, "CASME II", expected)
    sheet = Path(coding).expanduser() if coding else find_one(root, CODING_PATTERNS, "coding", "CASME II", expected,
                                                              PREFERRED)  # fmt: skip
    if not sheet.is_file():
        raise DataError(f"CASME II coding file not found: {sheet} (expected {expected})")
    return sheet


def read(
    root: str | Path,
    coding: str | Path | None = None,
    frames_dir: str = FRAMES_DIR,
    missing_apex: str = "spot",
    keep_unmapped: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Manifest rows and skipped rows of a CASME II root.

    `coding` names the coding xlsx when the root holds several (default: the one `CASME2-coding-*.xlsx`, or the
    20140508 sheet among several); `frames_dir` picks the frame folder (`CASME2_RAW_selected`, or e.g. `Cropped` for
    the cropped release); `missing_apex` (spot | middle | skip) handles the rows whose apex is "/" or blank;
    `keep_unmapped` keeps rows whose emotion is outside the 3-class mapping with label "" (for a MEGC2019 list).
    """
    root = as_root(root, NAME, EXPECTED)
    sheet = coding_sheet(root, coding, frames_dir)
    return read_coded(
        NAME,
        "CASME II",
        root / frames_dir,
        sheet,
        COLUMNS,
        partial(subject_folder, NAME),
        lambda s, f: f"{s}_{f}",
        missing_apex,
        keep_unmapped=keep_unmapped,
    )


def label_file(root: str | Path, coding: str | Path | None = None, frames_dir: str = FRAMES_DIR) -> LabelFile:
    """The coding sheet `read` uses, its version and its data rows (for `mer datasets check`)."""
    sheet = coding_sheet(as_root(root, NAME, EXPECTED), coding, frames_dir)
    return coded_label_file(sheet, COLUMNS, "CASME II", VERSIONS)
