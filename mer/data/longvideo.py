"""The long-video table that spotting readers return, and the one place a sheet's frame numbers become positions.

A long-video reader (CAS(ME)^2, SAMM Long Videos) turns a dataset root into `LongVideo`s: (dataset, subject, video,
frames, fps, intervals), `subject` prefixed with the dataset (`casme_sq/s15`) so subject-wise folds never collide,
and intervals as `mer.data.intervals.Interval` (0-based inclusive positions into `frames`, type ME | MaE, apex,
emotion and class when given). `coded_interval` converts one annotation row's onset / apex / offset cells (frame
numbers as in the file names: 1-based, fractional, -1 or 0 for "none") to positions, applying each dataset's errata
by one set of rules, and says what it fixed; a row it cannot use comes back with its reason. Readers put both in their
report (`REPORT_COLUMNS` of `mer.data.manifest`), so nothing is dropped or changed silently.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mer.data.intervals import Interval
from mer.errors import DataError

FIXED = "kept (fixed):"  # report remark on an annotation row kept after a correction (what was corrected, and how)
KEPT = "kept:"  # report remark on something kept as it is that a reader wants known (a video without annotations)
ONSET_ZERO = ("first", "skip")  # an onset cell of 0: the video's first frame, or skip the row
INTERVAL_COLUMNS = ["dataset", "subject", "video", "kind", "onset", "apex", "offset", "emotion", "label"]
VIDEO_COLUMNS = ["dataset", "subject", "video", "n_frames", "fps", "n_me", "n_mae", "folder"]


@dataclass
class LongVideo:
    """One long video: its frames (numerically sorted paths), frame rate and annotated intervals."""

    dataset: str
    subject: str  # prefixed with the dataset: casme_sq/s15, samm_lv/009
    video: str  # unique within the subject: the frame folder's name (15_0101disgustingteeth, 009_4)
    frames: list[str]
    fps: float
    intervals: list[Interval] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        """Frames in the video."""
        return len(self.frames)

    @property
    def key(self) -> tuple[str, str, str]:
        """(dataset, subject, video): the key metrics and reports pool by."""
        return (self.dataset, self.subject, self.video)


def truth(videos: Sequence[LongVideo]) -> dict[Hashable, list[Interval]]:
    """{video key: its intervals}: the ground truth `mer.spotting.metrics` takes."""
    return {v.key: list(v.intervals) for v in videos}


def intervals_table(videos: Sequence[LongVideo]) -> pd.DataFrame:
    """One row per annotated interval (`INTERVAL_COLUMNS`; apex, emotion, label may be empty)."""
    rows = [
        {
            "dataset": v.dataset,
            "subject": v.subject,
            "video": v.video,
            "kind": i.kind,
            "onset": i.onset,
            "apex": i.apex,
            "offset": i.offset,
            "emotion": i.emotion,
            "label": i.label,
        }  # fmt: skip
        for v in videos
        for i in v.intervals
    ]
    table = pd.DataFrame(rows, columns=INTERVAL_COLUMNS)
    table["apex"] = pd.array(table["apex"].tolist(), dtype="Int64")
    return table


def videos_table(videos: Sequence[LongVideo]) -> pd.DataFrame:
    """One row per video (`VIDEO_COLUMNS`): frames, fps, ME and MaE counts and the frame folder."""
    rows = [
        {
            "dataset": v.dataset,
            "subject": v.subject,
            "video": v.video,
            "n_frames": v.n_frames,
            "fps": v.fps,
            "n_me": sum(i.kind == "ME" for i in v.intervals),
            "n_mae": sum(i.kind == "MaE" for i in v.intervals),
            "folder": str(Path(v.frames[0]).parent) if v.frames else "",
        }  # fmt: skip
        for v in videos
    ]
    return pd.DataFrame(rows, columns=VIDEO_COLUMNS)


def check_onset_zero(dataset: str, policy: str) -> None:
    """DataError unless `policy` is one of `ONSET_ZERO` (a reader's `onset_zero` option)."""
    if policy not in ONSET_ZERO:
        raise DataError(f"{dataset} onset_zero option {policy!r} unknown; use one of: {', '.join(ONSET_ZERO)}")


def _number(cell: Any) -> float | None:
    """A frame-number cell as a float (566.4, 12, '12'), or None for blanks and text."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return None
    try:
        value = float(str(cell).strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _whole(value: float, what: str, notes: list[str]) -> int:
    """A frame number rounded half up to an integer; a fractional one is noted."""
    number = math.floor(value + 0.5)
    if number != value:
        notes.append(f"fractional {what} {value:g} rounded to {number}")
    return number


class FrameIndex:
    """Frame numbers (as in the file names) of a video → positions in its sorted frame list."""

    def __init__(self, numbers: Sequence[int | None]) -> None:
        pairs = sorted((n, i) for i, n in enumerate(numbers) if n is not None)
        self.numbers = [n for n, _ in pairs]
        self.positions = [i for _, i in pairs]

    @property
    def span(self) -> str:
        """'first..last' frame numbers, for messages."""
        return f"{self.numbers[0]}..{self.numbers[-1]}" if self.numbers else "no numbered frames"

    def position(self, number: int, snap: str) -> int | None:
        """The position of frame `number`; a number between frames snaps to the next ("up") or previous ("down")
        frame; None outside the video."""
        if not self.numbers or number < self.numbers[0] or number > self.numbers[-1]:
            return None
        k = bisect.bisect_left(self.numbers, number)
        if self.numbers[k] == number or snap == "up":
            return self.positions[k]
        return self.positions[k - 1]


def coded_interval(
    index: FrameIndex,
    kind: str,
    onset: Any,
    apex: Any,
    offset: Any,
    emotion: str | None = None,
    label: str | None = None,
    onset_zero: str = "first",
) -> tuple[Interval | None, list[str]]:
    """An annotation row's interval in positions, and its notes: what was fixed (interval kept) or why it is unusable
    (interval None, the last note is the reason).

    The errata rules, one for every dataset: a fractional frame number is rounded (SAMM-LV macro rows); an apex of
    -1, 0 or blank is no apex (SAMM-LV, CAS(ME)^2); an offset of 0 or blank ends the interval at its apex (CAS(ME)^2's
    macro rows); an onset of 0 starts at the video's first frame (`onset_zero` "first") or skips the row ("skip");
    an apex outside onset..offset is dropped; numbers between two frames snap inward; numbers outside the video,
    an offset before the onset, or a missing onset make the row unusable.
    """
    notes: list[str] = []
    on, ap, off = _number(onset), _number(apex), _number(offset)
    apex_n: int | None = None
    if ap is None or ap <= 0:
        if ap is not None or str(apex if apex is not None else "").strip():
            notes.append(f"apex {apex!r}: no apex")
    else:
        apex_n = _whole(ap, "apex", notes)
    if on is None:
        return None, [*notes, f"onset {onset!r} is not a frame number"]
    if on <= 0:
        if onset_zero == "skip":
            return None, [*notes, f"onset {onset!r} (no onset frame); skipped (onset_zero=skip)"]
        if not index.numbers:
            return None, [*notes, "the video has no numbered frames"]
        onset_n = index.numbers[0]
        notes.append(f"onset {onset!r} read as the video's first frame {onset_n} (onset_zero=first)")
    else:
        onset_n = _whole(on, "onset", notes)
    if off is None or off <= 0:
        if apex_n is None:
            return None, [*notes, f"offset {offset!r} and no apex: the interval has no end"]
        notes.append(f"offset {offset!r}: the apex {apex_n} is the end")
        offset_n = apex_n
    else:
        offset_n = _whole(off, "offset", notes)
    if offset_n < onset_n:
        return None, [*notes, f"offset {offset_n} precedes onset {onset_n}"]
    start, end = index.position(onset_n, "up"), index.position(offset_n, "down")
    if start is None or end is None:
        what = f"onset {onset_n}" if start is None else f"offset {offset_n}"
        return None, [*notes, f"{what} is not in the video (frames {index.span})"]
    if end < start:
        return None, [*notes, f"no frame between onset {onset_n} and offset {offset_n} (frames {index.span})"]
    apex_pos = None
    if apex_n is not None:
        if onset_n <= apex_n <= offset_n:
            apex_pos = index.position(apex_n, "down")
            apex_pos = apex_pos if apex_pos is not None and start <= apex_pos <= end else None
        if apex_pos is None:
            notes.append(f"apex {apex_n} outside onset {onset_n} .. offset {offset_n}: no apex")
    return Interval(start, end, kind, apex=apex_pos, label=label, emotion=emotion), notes
