"""Oulu-CASIA reader (VIS, strong illumination): `OriginalImg/VL/Strong/P001/Happiness/000.jpeg`.

Each subject has one sequence per emotion folder (Anger Disgust Fear Happiness Sadness Surprise), neutral →
peak; the last `last` frames (default 3) become one macro row each. The root may also be the `VL/Strong`
folder's parent chain (`<root>/VL/Strong` or `<root>/Strong`) or the `Strong` folder itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mer.data.datasets._common import as_root, images, label_or_skip, layout_error, macro_rows, subdirs
from mer.data.manifest import skip
from mer.errors import DataError

NAME = "oulu"
KIND = "macro"
EXPECTED = "<root>/OriginalImg/VL/Strong/P001/Happiness/000.jpeg"
_CANDIDATES = ("OriginalImg/VL/Strong", "VL/Strong", "Strong", ".")


def strong_folder(root: Path) -> Path | None:
    """The folder holding the P### subject folders, searched at the known depths below the root."""
    for rel in _CANDIDATES:
        folder = root / rel
        if any(sub.name.upper().startswith("P") and subdirs(sub) for sub in subdirs(folder)):
            return folder
    return None


def read(root: str | Path, last: int = 3) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Manifest rows (one per image of the last `last` frames) and skipped rows of an Oulu-CASIA root."""
    if last < 1:
        raise DataError(f"oulu option last={last}: must be at least 1")
    root = as_root(root, NAME, EXPECTED)
    strong = strong_folder(root)
    if strong is None:
        look_in = next((root / r for r in _CANDIDATES if (root / r).is_dir() and r != "."), root)
        raise layout_error(root, "Oulu-CASIA", EXPECTED, look_in)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for sub in subdirs(strong):
        subject = f"{NAME}/{sub.name}"
        for seq in subdirs(sub):
            sample_id = f"{sub.name}_{seq.name}"
            base = skip(NAME, subject, sample_id, seq, "")
            label = label_or_skip(NAME, seq.name, base, skipped)
            if label is None:
                continue
            frames = images(seq)
            if not frames:
                skipped.append({**base, "reason": f"no images in {seq}"})
                continue
            rows += macro_rows(
                NAME, subject, seq.name, label, frames[-last:], id_prefix=f"{sample_id}_", onset=frames[0]
            )
    return rows, skipped
