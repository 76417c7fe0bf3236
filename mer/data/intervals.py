"""The interval that long-video readers, spotters and spotting metrics share.

Frames are 0-based positions in a video's frame sequence, both ends inclusive.
Readers convert a sheet's own frame numbering (1-based, absolute, fractional) to positions once, so metrics,
spotters and reports never guess which numbering an interval uses.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("ME", "MaE")  # micro-expression, macro-expression: the MEGC spotting types


@dataclass(frozen=True)
class Interval:
    """One expression interval [onset, offset] (inclusive frame positions); apex, label and score when known.

    `label` is the class recognition scores (negative | positive | surprise, or a spotter's prediction), `emotion`
    the annotation's own word for it (a sheet's "disgust", "happy"), kept so no reader decides the mapping twice.
    """

    onset: int
    offset: int
    kind: str = "ME"
    apex: int | None = None
    label: str | None = None
    score: float | None = None
    emotion: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"interval kind '{self.kind}' is not one of {', '.join(KINDS)}")
        if self.offset < self.onset:
            raise ValueError(f"interval offset {self.offset} precedes its onset {self.onset}")

    @property
    def length(self) -> int:
        """Frames covered, both ends included."""
        return self.offset - self.onset + 1

    def iou(self, other: Interval) -> float:
        """|A ∩ B| / |A ∪ B| over inclusive frame ranges: the MEGC spotting overlap."""
        inter = min(self.offset, other.offset) - max(self.onset, other.onset) + 1
        if inter <= 0:
            return 0.0
        return inter / (self.length + other.length - inter)
