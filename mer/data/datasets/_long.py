"""Helpers shared by the long-video readers (CAS(ME)^2, SAMM Long Videos, CAS(ME)^3 Part A): frame indexes and the
final video list."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mer.data.datasets._common import cell_text, frame_number, images
from mer.data.intervals import Interval
from mer.data.longvideo import KEPT, FrameIndex, LongVideo
from mer.data.manifest import skip

# A type cell's words (CAS(ME)^2 "macro-expression", SAMM-LV "Macro" / "Micro - 1/2") → the interval kind.
TYPES = {"macro": "MaE", "micro": "ME"}
ABBREVIATIONS = {"me": "ME", "mae": "MaE"}  # a type cell holding only the abbreviation


def interval_type(value: Any) -> str | None:
    """ME or MaE from an annotation's type cell, None when it names neither (the row is reported)."""
    text = cell_text(value).lower()
    if text in ABBREVIATIONS:
        return ABBREVIATIONS[text]
    return next((kind for word, kind in TYPES.items() if word in text), None)


def frame_index(folder: Path, cache: dict[Path, tuple[list[str], FrameIndex]]) -> tuple[list[str], FrameIndex]:
    """The sorted frames of a video folder and their `FrameIndex`, listed once per folder (`cache`)."""
    if folder not in cache:
        frames = images(folder)
        cache[folder] = (frames, FrameIndex([frame_number(f) for f in frames]))
    return cache[folder]


def assemble(
    dataset: str,
    candidates: Sequence[tuple[str, Path]],
    found: dict[Path, list[Interval]],
    cache: dict[Path, tuple[list[str], FrameIndex]],
    report: list[dict[str, Any]],
    fps: float,
    sheet_name: str,
) -> tuple[list[LongVideo], list[dict[str, Any]]]:
    """Every video folder on disk ((subject, folder) in `candidates`) as a LongVideo with its intervals in onset
    order; folders without images are reported and left out, folders without annotation rows kept and reported."""
    videos = []
    for subject, folder in candidates:
        frames, _ = frame_index(folder, cache)
        if not frames:
            report.append(skip(dataset, subject, folder.name, folder, f"no images in {folder}"))
            continue
        if folder not in found:
            reason = f"{KEPT} video without a row in {sheet_name} (no intervals: all it spots are false positives)"
            report.append(skip(dataset, subject, folder.name, folder, reason))
        intervals = sorted(found.get(folder, []), key=lambda i: (i.onset, i.offset))
        videos.append(LongVideo(dataset, subject, folder.name, frames, fps, intervals))
    return videos, report
