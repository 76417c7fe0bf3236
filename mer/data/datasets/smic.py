"""SMIC-HS reader: `HS/s1/micro/{negative,positive,surprise}/s1_ne_01/image090823.jpg`.

SMIC has no apex annotation: `apex="middle"` (default) takes the middle frame, `apex="spot"` leaves apex <NA>
for the face pipeline's spotter. Onset is the first frame, offset the last. The label comes from the class
folder; `non_micro` clips are not samples and are not read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mer.data.datasets._common import as_root, images, label_or_skip, layout_error, middle, row, subdirs
from mer.data.manifest import skip
from mer.errors import DataError

NAME = "smic"
KIND = "micro"
EXPECTED = "<root>/HS/s1/micro/negative/s1_ne_01/image090823.jpg"
APEX_CHOICES = ("middle", "spot")


def hs_folder(root: Path) -> Path | None:
    """The folder holding the s<N> subject folders: <root>/HS, or the root itself when it is the HS folder."""
    for candidate in (root / "HS", root):
        if any((sub / "micro").is_dir() for sub in subdirs(candidate)):
            return candidate
    return None


def read(root: str | Path, apex: str = "middle") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Manifest rows and skipped rows of a SMIC root; `apex` is "middle" or "spot" (apex left <NA>)."""
    if apex not in APEX_CHOICES:
        raise DataError(f"smic apex option {apex!r} unknown; use one of: {', '.join(APEX_CHOICES)}")
    root = as_root(root, NAME, EXPECTED)
    hs = hs_folder(root)
    if hs is None:
        look_in = root / "HS" if (root / "HS").is_dir() else root
        raise layout_error(root, "SMIC-HS", EXPECTED, look_in)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for sub in subdirs(hs):
        micro = sub / "micro"
        if not micro.is_dir():
            skipped.append(skip(NAME, f"{NAME}/{sub.name}", "", sub, "subject folder has no micro/ folder"))
            continue
        subject = f"{NAME}/{sub.name}"
        for class_dir in subdirs(micro):
            for clip in subdirs(class_dir):
                base = skip(NAME, subject, clip.name, clip, "")
                label = label_or_skip(NAME, class_dir.name, base, skipped)
                if label is None:
                    continue
                frames = images(clip)
                if not frames:
                    skipped.append({**base, "reason": f"no images in {clip}"})
                    continue
                apex_i = middle(len(frames)) if apex == "middle" else None
                rows.append(
                    row(NAME, subject, clip.name, KIND, class_dir.name, label, frames, 0, apex_i, len(frames) - 1)
                )
    return rows, skipped
