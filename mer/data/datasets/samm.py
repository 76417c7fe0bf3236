"""SAMM reader: `SAMM_Micro_FACS_Codes_v2.xlsx` + `SAMM/006/006_1_2/006_05562.jpg`.

The coding sheet has a preamble; its header (row 14 in v2) is found by its column names: Subject (6 or '006'),
Filename, Onset Frame, Apex Frame, Offset Frame, Estimated Emotion. Frame numbers are those in the file names
(006_05562 → 5562) and become indices into the sorted frame list. Apex -1 rows have no apex label: they are kept
and get their apex by `missing_apex` (spot | middle | skip), with an "apex (kept): ..." report row.
Protocol-dropped emotions ('Other') and missing frames are skipped with their reason. Sample ids are the
Filename (`006_1_2`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from mer.data.datasets._common import as_root, find_one, layout_error, read_coded
from mer.data.names import subject_folder
from mer.errors import DataError

NAME = "samm"
KIND = "micro"
FRAMES_DIR = "SAMM"
CODING_GLOB = "SAMM_Micro_FACS_Codes*.xlsx"
EXPECTED = f"<root>/{FRAMES_DIR}/006/006_1_2/006_05562.jpg and <root>/SAMM_Micro_FACS_Codes_v2.xlsx"
COLUMNS = ["Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame", "Estimated Emotion"]


def read(
    root: str | Path, coding: str | Path | None = None, frames_dir: str = FRAMES_DIR, missing_apex: str = "spot"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Manifest rows and skipped rows of a SAMM root (`coding`: the xlsx when the root holds several).

    `missing_apex` (spot | middle | skip) handles the rows whose apex is -1.
    """
    root = as_root(root, NAME, EXPECTED)
    expected = EXPECTED.replace(f"<root>/{FRAMES_DIR}/", f"<root>/{frames_dir}/")
    if not (root / frames_dir).is_dir():
        raise layout_error(root, "SAMM", expected)
    sheet = Path(coding).expanduser() if coding else find_one(root, [CODING_GLOB], "coding", "SAMM", expected)
    if not sheet.is_file():
        raise DataError(f"SAMM coding file not found: {sheet} (expected {expected})")
    return read_coded(
        NAME, "SAMM", root / frames_dir, sheet, COLUMNS, partial(subject_folder, NAME), lambda s, f: f, missing_apex
    )
