"""SAMM reader: `SAMM_Micro_FACS_Codes_v2.xlsx` + `SAMM/006/006_1_2/006_05562.jpg`.

The coding sheet has a preamble; its header (row 14 in v2) is found by its column names: Subject (6 or '006'),
Filename, Onset Frame, Apex Frame, Offset Frame, Estimated Emotion. Frame numbers are those in the file names
(006_05562 → 5562) and become indices into the sorted frame list. Apex -1 rows have no apex label: they are kept
and get their apex by `missing_apex` (spot | middle | skip), with an "apex (kept): ..." report row.
Protocol-dropped emotions ('Other', spelled 'Others' in some copies) and missing frames are skipped with their
reason. Sample ids are the Filename (`006_1_2`).

Label-file layouts in circulation (docs/datasets.md): `SAMM_Micro_FACS_Codes_v2.xlsx` (header on row 14),
`SAMM_20181215_Micro_FACS_Codes_v2.xlsx` (one header row), `SAMM.xlsx` with sheet `MICRO_ONLY`; when the root holds
several, `SAMM_Micro_FACS_Codes_v2.xlsx` is read.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from mer.data.datasets._common import LabelFile, as_root, coded_label_file, find_one, layout_error, read_coded
from mer.data.names import subject_folder
from mer.errors import DataError

NAME = "samm"
KIND = "micro"
FRAMES_DIR = "SAMM"
CODING_GLOB = "SAMM_Micro_FACS_Codes*.xlsx"
CODING_PATTERNS = (CODING_GLOB, "SAMM_*Micro_FACS_Codes*.xls*", "SAMM.xlsx")
PREFERRED = ("SAMM_Micro_FACS_Codes_v2.xlsx",)
SHEETS = ("MICRO_ONLY",)  # the sheet of SAMM.xlsx that holds the micro-movements
EXPECTED = f"<root>/{FRAMES_DIR}/006/006_1_2/006_05562.jpg and <root>/SAMM_Micro_FACS_Codes_v2.xlsx"
COLUMNS = [
    "Subject",
    "Filename",
    ("Onset Frame", "Onset"),
    ("Apex Frame", "Apex"),
    ("Offset Frame", "Offset"),
    ("Estimated Emotion", "Emotion"),
]
VERSIONS = (
    (r"^SAMM\.xlsx$", "SAMM.xlsx (sheet MICRO_ONLY, header on row 1)"),
    (r"\d{8}.*v2", "SAMM v2, one header row"),
    (r"v2", "SAMM v2"),
    (r"v1", "SAMM v1"),
)


def coding_sheet(root: Path, coding: str | Path | None = None, frames_dir: str = FRAMES_DIR) -> Path:
    """The coding xlsx a SAMM root is read with (`coding` when given); DataError naming the layout otherwise."""
    expected = EXPECTED.replace(f"<root>/{FRAMES_DIR}/", f"<root>/{frames_dir}/")
    if not (root / frames_dir).is_dir():
        raise layout_error(root, "SAMM", expected)
    sheet = Path(coding).expanduser() if coding else find_one(root, CODING_PATTERNS, "coding", "SAMM", expected,
                                                              PREFERRED)  # fmt: skip
    if not sheet.is_file():
        raise DataError(f"SAMM coding file not found: {sheet} (expected {expected})")
    return sheet


def read(
    root: str | Path,
    coding: str | Path | None = None,
    frames_dir: str = FRAMES_DIR,
    missing_apex: str = "spot",
    keep_unmapped: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Manifest rows and skipped rows of a SAMM root (`coding`: the xlsx when the root holds several).

    `missing_apex` (spot | middle | skip) handles the rows whose apex is -1; `keep_unmapped` keeps rows whose emotion
    is outside the 3-class mapping with label "" (for a MEGC2019 list).
    """
    root = as_root(root, NAME, EXPECTED)
    sheet = coding_sheet(root, coding, frames_dir)
    return read_coded(NAME, "SAMM", root / frames_dir, sheet, COLUMNS, partial(subject_folder, NAME), lambda s, f: f,
                      missing_apex, keep_unmapped=keep_unmapped, prefer_sheets=SHEETS)  # fmt: skip


def label_file(root: str | Path, coding: str | Path | None = None, frames_dir: str = FRAMES_DIR) -> LabelFile:
    """The coding sheet `read` uses, its version and its data rows (for `mer datasets check`)."""
    sheet = coding_sheet(as_root(root, NAME, EXPECTED), coding, frames_dir)
    return coded_label_file(sheet, COLUMNS, "SAMM", VERSIONS, SHEETS)
