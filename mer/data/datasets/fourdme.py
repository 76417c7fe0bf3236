"""4DME reader: `4DME_Labelling_Micro_release v1.xlsx` + `gray_micro/<sub_ID>/<fold_name>/<frames>`.

The sheet's file name holds a space (found by its prefix, `4DME_Labelling_Micro_release*.xlsx`). Columns sub_ID,
fold_name, Emotion, Onset, Apex, Offset, AUs (+ multi-label emotion columns, not read); frame numbers are those
in the file names and become indices into the numerically sorted frame list, as for CASME II. AU cells may carry an
`AU` prefix and `(k)` markers (`parse_aus`). Sample ids are `<sub_ID>_<fold_name>`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mer.data.datasets._common import (
    LabelFile,
    as_root,
    cell_text,
    coded_label_file,
    find_one,
    layout_error,
    read_coded,
)
from mer.errors import DataError

NAME = "4dme"
KIND = "micro"
FRAMES_DIR = "gray_micro"
CODING_GLOB = "4DME_Labelling_Micro_release*.xlsx"
EXPECTED = f"<root>/{FRAMES_DIR}/<sub_ID>/<fold_name>/<frame>.jpg and <root>/4DME_Labelling_Micro_release v1.xlsx"
COLUMNS = ["sub_ID", "fold_name", "Onset", "Apex", "Offset", "Emotion"]


def read(
    root: str | Path, coding: str | Path | None = None, frames_dir: str = FRAMES_DIR, missing_apex: str = "spot"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Manifest rows and skipped rows of a 4DME root (`coding`: the xlsx when the root holds several;
    `missing_apex` (spot | middle | skip) for rows without an apex label)."""
    root = as_root(root, NAME, EXPECTED)
    if not (root / frames_dir).is_dir():
        raise layout_error(root, "4DME", EXPECTED.replace(FRAMES_DIR, frames_dir))
    sheet = Path(coding).expanduser() if coding else find_one(root, [CODING_GLOB], "coding", "4DME", EXPECTED)
    if not sheet.is_file():
        raise DataError(f"4DME coding file not found: {sheet} (expected {EXPECTED})")
    return read_coded(
        NAME,
        "4DME",
        root / frames_dir,
        sheet,
        COLUMNS,
        lambda value: cell_text(value) or None,
        lambda s, f: f"{s}_{f}",
        missing_apex,
        aus="AUs",
    )


def label_file(root: str | Path, coding: str | Path | None = None) -> LabelFile:
    """The sheet `read` uses, its version and its data rows (for `mer datasets check`)."""
    root = as_root(root, NAME, EXPECTED)
    sheet = Path(coding).expanduser() if coding else find_one(root, [CODING_GLOB], "coding", "4DME", EXPECTED)
    return coded_label_file(sheet, COLUMNS, "4DME", ((r"release v1", "4DME micro labelling release v1 (267 rows)"),))
