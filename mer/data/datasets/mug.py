"""MUG Facial Expression Database reader: `subjects3/001/happiness/take000/img_0001.jpg`.

The MUG release ships one folder per subject (three-digit numbers) holding one folder per emotion (anger disgust
fear happiness neutral sadness surprise), each holding takes (`take000`, `take001`, ...) of frames `img_NNNN.jpg`.
Subjects recorded twice keep each recording in a `session<k>` folder between the subject and emotion folders;
both forms are read. A take goes neutral → apex → neutral, so the `frames` frames (default 8; the paper uses 6–10)
around the middle of each take become one macro row each. Neutral takes are dropped by the protocol and reported.
The root may be the folder holding `subjects3` or `subjects3` itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mer.data.datasets._common import as_root, images, label_or_skip, layout_error, macro_rows, middle, subdirs
from mer.data.labels import MACRO, normalize
from mer.data.manifest import skip
from mer.errors import DataError

NAME = "mug"
KIND = "macro"
SUBJECTS_DIR = "subjects3"
EXPECTED = f"<root>/{SUBJECTS_DIR}/001/happiness/take000/img_0001.jpg (or 001/session1/happiness/...)"


def _has_emotions(folder: Path) -> bool:
    return any(normalize(d.name) in MACRO for d in subdirs(folder))


def subjects_folder(root: Path) -> Path | None:
    """The folder holding the subject folders: <root>/subjects3, or the root itself when it holds them."""
    for candidate in (root / SUBJECTS_DIR, root):
        for sub in subdirs(candidate):
            if _has_emotions(sub) or any(
                _has_emotions(s) for s in subdirs(sub) if s.name.lower().startswith("session")
            ):
                return candidate
    return None


def around_middle(frames: list[str], count: int) -> list[str]:
    """`count` consecutive frames centred on the middle of the take (all of them when the take is shorter)."""
    if len(frames) <= count:
        return list(frames)
    start = min(max(middle(len(frames)) - (count - 1) // 2, 0), len(frames) - count)
    return frames[start : start + count]


def read(root: str | Path, frames: int = 8) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Manifest rows (`frames` images around each take's middle) and skipped rows of a MUG root."""
    if frames < 1:
        raise DataError(f"mug option frames={frames}: must be at least 1 (the paper takes 6-10 per take)")
    root = as_root(root, NAME, EXPECTED)
    top = subjects_folder(root)
    if top is None:
        look_in = root / SUBJECTS_DIR if (root / SUBJECTS_DIR).is_dir() else root
        raise layout_error(root, "MUG", EXPECTED, look_in)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for sub in subdirs(top):
        subject = f"{NAME}/{sub.name}"
        sessions = [s for s in subdirs(sub) if s.name.lower().startswith("session")]
        recordings = [(s, f"{s.name}_") for s in sessions] + [(sub, "")]
        for folder, session in recordings:
            for emotion_dir in subdirs(folder):
                if emotion_dir in sessions:
                    continue
                prefix = f"{sub.name}_{session}{emotion_dir.name}"
                base = skip(NAME, subject, prefix, emotion_dir, "")
                label = label_or_skip(NAME, emotion_dir.name, base, skipped)
                if label is None:
                    continue
                for take in subdirs(emotion_dir) or [emotion_dir]:
                    take_id = prefix if take == emotion_dir else f"{prefix}_{take.name}"
                    take_frames = images(take)
                    if not take_frames:
                        skipped.append(skip(NAME, subject, take_id, take, f"no images in {take}"))
                        continue
                    chosen = around_middle(take_frames, frames)
                    rows += macro_rows(
                        NAME, subject, emotion_dir.name, label, chosen, id_prefix=f"{take_id}_", onset=take_frames[0]
                    )
    return rows, skipped
