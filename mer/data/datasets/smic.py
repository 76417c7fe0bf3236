"""SMIC-HS reader: `HS/s1/micro/{negative,positive,surprise}/s1_ne_01/image090823.jpg`.

The root may be the folder holding `HS/` (`SMIC_all_raw`), the folder holding `SMIC_all_raw/`, or `HS/` itself; copies
without the `micro/` level (`HS/s1/negative/s1_ne_01/`) read the same.

SMIC has no apex annotation, so every clip goes through the readers' missing-apex handling (`resolve_apex`) with
`missing_apex="middle"` by default (the paper's choice; config `data.smic_apex`): the middle frame; "spot" leaves
apex <NA> for `mer prepare`'s optical-flow spotter. Onset is the first frame, offset the last. The label comes
from the class folder; `non_micro` clips are not samples and are not read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mer.data.datasets._common import (
    NO_IMAGES,
    LabelFile,
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
APEX_KEY = "data.smic_apex"


CLASS_FOLDERS = ("negative", "positive", "surprise")


def class_parent(subject: Path) -> Path | None:
    """The folder holding a subject's class folders: `<subject>/micro`, or the subject folder itself in copies
    without the micro level; None when neither holds a class folder."""
    if (subject / "micro").is_dir():
        return subject / "micro"
    if any((subject / name).is_dir() for name in CLASS_FOLDERS):
        return subject
    return None


def hs_folder(root: Path) -> Path | None:
    """The folder holding the s<N> subject folders: <root>/HS, <root>/SMIC_all_raw/HS, or the root itself."""
    for candidate in (root / "HS", root / "SMIC_all_raw" / "HS", root):
        if any(class_parent(sub) is not None for sub in subdirs(candidate)):
            return candidate
    return None


def label_file(root: str | Path) -> LabelFile:
    """SMIC has no label file: its labels are the class folders; the 'version' says which layout was found."""
    root = as_root(root, NAME, EXPECTED)
    hs = hs_folder(root)
    if hs is None:
        raise layout_error(root, "SMIC-HS", EXPECTED, root / "HS" if (root / "HS").is_dir() else root)
    subjects = subdirs(hs)
    micro = sum((sub / "micro").is_dir() for sub in subjects)
    layout = "HS/<subject>/micro/<class>/<clip>" if micro else "HS/<subject>/<class>/<clip> (no micro level)"
    return LabelFile(hs, f"class folders (no label file): {layout}", None)


def read(
    root: str | Path, missing_apex: str = "middle", keep_unmapped: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Manifest rows and skipped rows of a SMIC root; `missing_apex` is "middle", "spot" (apex left <NA>) or "skip";
    `keep_unmapped` keeps clips in a folder outside the three classes with label "" (for a MEGC2019 list)."""
    check_missing_apex(NAME, missing_apex)
    root = as_root(root, NAME, EXPECTED)
    hs = hs_folder(root)
    if hs is None:
        look_in = root / "HS" if (root / "HS").is_dir() else root
        raise layout_error(root, "SMIC-HS", EXPECTED, look_in)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for sub in subdirs(hs):
        micro = class_parent(sub)
        if micro is None:
            reason = "subject folder has no micro/ folder and no class folders"
            skipped.append(skip(NAME, f"{NAME}/{sub.name}", "", sub, reason))
            continue
        subject = f"{NAME}/{sub.name}"
        for class_dir in subdirs(micro):
            for clip in subdirs(class_dir):
                base = skip(NAME, subject, clip.name, clip, "")
                if micro == sub and class_dir.name.lower() not in CLASS_FOLDERS:
                    continue  # without the micro level, only the class folders hold clips (non_micro is beside them)
                label = label_or_skip(NAME, class_dir.name, base, skipped, keep_unmapped)
                if label is None:
                    continue
                frames = images(clip)
                if not frames:
                    skipped.append({**base, "reason": f"{NO_IMAGES} {clip}"})
                    continue
                sample = row(NAME, subject, clip.name, KIND, class_dir.name, label, frames, 0, None, len(frames) - 1)
                kept = resolve_apex(sample, missing_apex, "SMIC has no apex labels", skipped, APEX_KEY)
                if kept is not None:
                    rows.append(kept)
    return rows, skipped
