"""CK+ reader: `cohn-kanade-images/S005/001/S005_001_00000011.png` + `Emotion/S005/001/S005_001_00000011_emotion.txt`.

Only sequences with an emotion file are labelled (text like "   3.0000000e+00": 0 neutral, 1 anger, 2 contempt,
3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise). The last `last` frames (default 3, the peak) of each labelled
sequence become one macro row each. Sequences without an emotion file are skipped with their reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mer.data.datasets._common import as_root, images, label_or_skip, layout_error, macro_rows, subdirs
from mer.data.labels import decode
from mer.data.manifest import skip
from mer.errors import DataError

NAME = "ckplus"
KIND = "macro"
IMAGES_DIR = "cohn-kanade-images"
EMOTION_DIR = "Emotion"
EXPECTED = (
    f"<root>/{IMAGES_DIR}/S005/001/S005_001_00000011.png and "
    f"<root>/{EMOTION_DIR}/S005/001/S005_001_00000011_emotion.txt"
)


def read_code(path: Path) -> str | None:
    """The numeric code in an emotion file, as text ('3.0000000e+00'), or None when empty/unreadable."""
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return None
    return text.split()[0] if text else None


def read(root: str | Path, last: int = 3) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Manifest rows (one per image of the last `last` frames) and skipped rows of a CK+ root."""
    if last < 1:
        raise DataError(f"ckplus option last={last}: must be at least 1")
    root = as_root(root, NAME, EXPECTED)
    images_root, emotion_root = root / IMAGES_DIR, root / EMOTION_DIR
    if not images_root.is_dir() or not emotion_root.is_dir():
        raise layout_error(root, "CK+", EXPECTED)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for sub in subdirs(images_root):
        subject = f"{NAME}/{sub.name}"
        for seq in subdirs(sub):
            sample_id = f"{sub.name}_{seq.name}"
            base = skip(NAME, subject, sample_id, seq, "")
            label_dir = emotion_root / sub.name / seq.name
            files = sorted(label_dir.glob("*_emotion.txt")) if label_dir.is_dir() else []
            if not files:
                skipped.append({**base, "reason": f"no emotion file in {label_dir} (sequence not labelled)"})
                continue
            code = read_code(files[-1])
            if code is None:
                skipped.append(
                    {**base, "path": str(files[-1]), "reason": f"empty or unreadable emotion file {files[-1]}"}
                )
                continue
            emotion = decode(NAME, code)
            label = label_or_skip(NAME, emotion, base, skipped)
            if label is None:
                continue
            frames = images(seq)
            if not frames:
                skipped.append({**base, "reason": f"no images in {seq}"})
                continue
            rows += macro_rows(NAME, subject, emotion, label, frames[-last:], onset=frames[0])
    return rows, skipped
