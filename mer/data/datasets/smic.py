"""SMIC-HS reader: `HS/s1/micro/{negative,positive,surprise}/s1_ne_01/image090823.jpg`.

SMIC has no apex annotation, so every clip goes through the readers' missing-apex handling (`resolve_apex`) with
`missing_apex="middle"` by default (the paper's choice; config `data.smic_apex`): the middle frame; "spot" leaves
apex <NA> for `mer prepare`'s optical-flow spotter. Onset is the first frame, offset the last. The label comes
from the class folder; `non_micro` clips are not samples and are not read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mer.data.datasets._common import (
    as_root,
    check_missing_apex,
    images,
    label_or_skip,
    layout_error,
    resolve_apex,
    row,
    subdirs,
)
from mer.data.manifest import skip

NAME = "smic"
KIND = "micro"
EXPECTED = "<root>/HS/s1/micro/negative/s1_ne_01/image090823.jpg"
APEX_CHOICES = ("middle", "spot")  # the values of data.smic_apex
APEX_KEY = "data.smic_apex"


def hs_folder(root: Path) -> Path | None:
    """The folder holding the s<N> subject folders: <root>/HS, or the root itself when it is the HS folder."""
    for candidate in (root / "HS", root):
        if any((sub / "micro").is_dir() for sub in subdirs(candidate)):
            return candidate
    return None


def read(root: str | Path, missing_apex: str = "middle") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Manifest rows and skipped rows of a SMIC root; `missing_apex` is "middle", "spot" (apex left <NA>) or "skip"."""
    check_missing_apex(NAME, missing_apex)
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
                sample = row(NAME, subject, clip.name, KIND, class_dir.name, label, frames, 0, None, len(frames) - 1)
                kept, remark = resolve_apex(sample, missing_apex, "SMIC has no apex labels", APEX_KEY)
                skipped.append(remark)
                if kept is not None:
                    rows.append(kept)
    return rows, skipped
