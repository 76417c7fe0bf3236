"""CASME II reader: `CASME2-coding-*.xlsx` + `CASME2_RAW_selected/sub01/EP02_01f/img46.jpg`.

The coding sheet gives Subject (1 → sub01), Filename, OnsetFrame, ApexFrame, OffsetFrame (numbers as in the
image file names) and Estimated Emotion. Frame numbers become indices into the numerically sorted frame list.
Rows with an apex of "/" (or a blank cell) have no apex label: they are kept and get their apex by `missing_apex`
(spot: by `mer prepare`'s optical-flow spotter; middle; skip), with an "apex (kept): ..." report row. Rows whose
apex number is not a file, an emotion outside the protocol, or no frame folder are skipped with their reason, and
so are frame folders that no coding row names. Sample ids are `sub01_EP02_01f`
(a Filename alone repeats across subjects).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from mer.data.datasets._common import as_root, find_one, layout_error, read_coded
from mer.data.names import subject_folder
from mer.errors import DataError

NAME = "casme2"
KIND = "micro"
FRAMES_DIR = "CASME2_RAW_selected"
CODING_GLOB = "CASME2-coding-*.xlsx"
EXPECTED = f"<root>/{FRAMES_DIR}/sub01/EP02_01f/img46.jpg and <root>/{CODING_GLOB}"
COLUMNS = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Estimated Emotion"]


def read(
    root: str | Path, coding: str | Path | None = None, frames_dir: str = FRAMES_DIR, missing_apex: str = "spot"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Manifest rows and skipped rows of a CASME II root.

    `coding` names the coding xlsx when the root holds several (default: the one `CASME2-coding-*.xlsx`);
    `frames_dir` picks the frame folder (`CASME2_RAW_selected`, or e.g. `Cropped` for the cropped release);
    `missing_apex` (spot | middle | skip) handles the rows whose apex is "/" or blank.
    """
    root = as_root(root, NAME, EXPECTED)
    expected = EXPECTED.replace(FRAMES_DIR, frames_dir)
    if not (root / frames_dir).is_dir():
        raise layout_error(root, "CASME II", expected)
    sheet = Path(coding).expanduser() if coding else find_one(root, [CODING_GLOB], "coding", "CASME II", expected)
    if not sheet.is_file():
        raise DataError(f"CASME II coding file not found: {sheet} (expected {expected})")
    return read_coded(
        NAME,
        "CASME II",
        root / frames_dir,
        sheet,
        COLUMNS,
        partial(subject_folder, NAME),
        lambda s, f: f"{s}_{f}",
        missing_apex,
    )
