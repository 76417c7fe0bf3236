"""JAFFE reader: a flat folder of `KA.AN1.39.tiff` (subject KA, emotion code AN, pose 1, image number 39).

Every labelled image is one macro row; neutral (NE) images are dropped by the protocol and reported, and so
are image files whose names do not follow the JAFFE pattern. JAFFE has no sequences: a row's onset frame (for the
motion inputs) is the subject's first neutral image, when there is one; without it the row stays single-frame.
The images may also sit in one sub-folder (e.g. `<root>/jaffedbase/`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mer.data.datasets._common import as_root, images, label_or_skip, layout_error, macro_rows, subdirs
from mer.data.labels import decode
from mer.data.manifest import skip

NAME = "jaffe"
KIND = "macro"
EXPECTED = "<root>/KA.AN1.39.tiff (SUBJECT.CODEn.NUMBER.tiff, codes AN DI FE HA NE SA SU)"
PATTERN = re.compile(r"^(?P<subject>[A-Za-z]+)\.(?P<code>[A-Za-z]+)\d*\.\d+$")


def image_folder(root: Path) -> Path | None:
    """The folder holding the JAFFE images: the root, or its single sub-folder that holds them."""
    for folder in (root, *subdirs(root)):
        if any(PATTERN.match(Path(f).stem) for f in images(folder)):
            return folder
    return None


def read(root: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Manifest rows (one per labelled image) and skipped rows of a JAFFE folder."""
    root = as_root(root, NAME, EXPECTED)
    folder = image_folder(root)
    if folder is None:
        raise layout_error(root, "JAFFE", EXPECTED)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    neutral: dict[str, str] = {}
    for path in images(folder):
        match = PATTERN.match(Path(path).stem)
        if match is not None and decode(NAME, match["code"]) == "neutral":
            neutral.setdefault(match["subject"].upper(), path)
    for path in images(folder):
        stem = Path(path).stem
        match = PATTERN.match(stem)
        if match is None:
            skipped.append(skip(NAME, "", stem, path, f"file name does not follow the JAFFE pattern {EXPECTED}"))
            continue
        subject = f"{NAME}/{match['subject'].upper()}"
        emotion = decode(NAME, match["code"])
        label = label_or_skip(NAME, emotion, skip(NAME, subject, stem, path, ""), skipped)
        if label is not None:
            rows += macro_rows(NAME, subject, emotion, label, [path], onset=neutral.get(match["subject"].upper()))
    return rows, skipped
