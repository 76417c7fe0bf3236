"""Face tracking for long videos: MTCNN every `detect_every` frames, the face followed in between.

Detecting every frame costs more than everything else spotting does (MTCNN ≈ 30 ms on a 320-pixel frame on one CPU
core), so `track_video` detects on key frames only (every `detect_every`-th frame, in one batched MTCNN call per chunk
of `batch` frames, on frames scaled down to `detect_max_side`) and follows the face between two key frames:

* both key frames hold the same face (boxes overlapping by `mer.inference.predict.TRACK_IOU`): box and landmarks are
  interpolated linearly, and every frame in between is checked against the earlier key frame by the normalised
  cross-correlation of a small patch of the face box (`MIN_NCC`). A black frame, a cut or a fast turn fails the check,
  and that frame is detected instead;
* otherwise (the face appears, disappears, or jumps) every frame in between is detected, so a face run starts and ends
  at the exact frame.

Frames without a face carry `face=None`: spotting never computes motion across them. A video without any face yields
only such frames; nothing here raises on a missing face.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from mer.face.detect import Face, FaceDetector
from mer.inference.predict import TRACK_IOU, iou
from mer.spotting.video import OpenedVideo, StageTimer

MIN_NCC = 0.6  # a followed frame whose face patch correlates less with its key frame's is detected instead
PATCH = 24  # side of the patch the check compares


@dataclass
class Tracked:
    """One frame: its position, time (s), gray full frame, the face (detected or followed) or None, how it was found."""

    index: int
    time: float
    gray: np.ndarray
    face: Face | None
    detected: bool


@dataclass
class TrackStats:
    """What tracking did: frames, MTCNN calls per frame, frames with a face, several faces, failed follow checks."""

    frames: int = 0
    detected: int = 0
    with_face: int = 0
    several: int = 0
    check_failed: int = 0
    extra: dict[str, int] = field(default_factory=dict)


@dataclass
class _Frame:
    index: int
    time: float
    gray: np.ndarray
    small: np.ndarray  # RGB frame scaled for MTCNN
    scale: float
    face: Face | None = None
    detected: bool = False


def _scaled(face: Face, s: float) -> Face:
    return Face(box=face.box / s, landmarks=face.landmarks / s, prob=face.prob) if s != 1.0 else face


def _choose(faces: Sequence[Face], near: Face | None) -> Face | None:
    """The face continuing `near` (largest box overlap ≥ TRACK_IOU), else the largest face."""
    if not faces:
        return None
    if near is not None:
        overlaps = [iou(f.box, near.box) for f in faces]
        k = int(np.argmax(overlaps))
        if overlaps[k] >= TRACK_IOU:
            return faces[k]
    return max(faces, key=lambda f: f.area)


def _patch(gray: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """The face box of a gray frame resized to PATCH², float32 with zero mean and unit norm (None: flat or outside)."""
    h, w = gray.shape
    x1, y1, x2, y2 = box
    x1, y1 = int(max(0, np.floor(x1))), int(max(0, np.floor(y1)))
    x2, y2 = int(min(w, np.ceil(x2))), int(min(h, np.ceil(y2)))
    if x2 - x1 < 4 or y2 - y1 < 4:
        return None
    p = cv2.resize(gray[y1:y2, x1:x2], (PATCH, PATCH), interpolation=cv2.INTER_AREA).astype(np.float32)
    p -= p.mean()
    norm = float(np.linalg.norm(p))
    if norm < 1e-3 * PATCH * PATCH:  # a flat patch (black frame): no face to follow
        return None
    return p / norm


def _lerp(a: Face, b: Face, w: float) -> Face:
    return Face(
        box=(1 - w) * a.box + w * b.box, landmarks=(1 - w) * a.landmarks + w * b.landmarks, prob=min(a.prob, b.prob)
    )


class _Tracker:
    def __init__(self, detector: FaceDetector, stats: TrackStats, timer: StageTimer) -> None:
        self.detector = detector
        self.stats = stats
        self.timer = timer

    def detect(self, frames: Sequence[_Frame], near: Face | None) -> None:
        """MTCNN on `frames` in one batched call; each keeps the face continuing `near` (or the previous pick)."""
        if not frames:
            return
        t0 = time.perf_counter()
        found = self.detector.detect([f.small for f in frames])
        self.timer.add("detect", time.perf_counter() - t0)
        self.stats.detected += len(frames)
        for f, faces in zip(frames, found, strict=True):
            faces = [_scaled(x, f.scale) for x in faces]
            if len(faces) > 1:
                self.stats.several += 1
            f.face = _choose(faces, near)
            f.detected = True
            near = f.face if f.face is not None else near

    def follow(self, a: _Frame, b: _Frame, between: Sequence[_Frame]) -> None:
        """Fill the frames strictly between key frames `a` and `b` (see the module docstring)."""
        if not between:
            return
        t0 = time.perf_counter()
        todo: list[_Frame] = list(between)
        if a.face is not None and b.face is not None and iou(a.face.box, b.face.box) >= TRACK_IOU:
            ref = _patch(a.gray, a.face.box)
            todo = []
            span = b.index - a.index
            for f in between:
                face = _lerp(a.face, b.face, (f.index - a.index) / span)
                p = _patch(f.gray, face.box)
                if ref is None or p is None or float((ref * p).sum()) < MIN_NCC:
                    todo.append(f)
                    self.stats.check_failed += 1
                else:
                    f.face = face
        self.timer.add("track", time.perf_counter() - t0)
        self.detect(todo, a.face)


def track_video(
    video: OpenedVideo,
    detector: FaceDetector,
    detect_every: int = 10,
    detect_max_side: int = 320,
    batch: int = 64,
    max_frames: int | None = None,
    stats: TrackStats | None = None,
    timer: StageTimer | None = None,
) -> Iterator[Tracked]:
    """Every frame of `video` in order with its tracked face (see the module docstring); holds ≤ batch + detect_every
    frames. `stats` and `timer` (optional) are filled in as frames pass."""
    if detect_every < 1 or batch < 1:
        raise ValueError(f"detect_every ({detect_every}) and batch ({batch}) must be at least 1")
    stats = stats if stats is not None else TrackStats()
    timer = timer if timer is not None else StageTimer()
    tracker = _Tracker(detector, stats, timer)
    carry: list[_Frame] = []  # frames after the last resolved key frame; carry[0] is that key frame when there is one
    key_done = False  # whether carry[0] is a resolved key frame
    frames = video.frames(max_frames)
    exhausted = False
    while not exhausted:
        t0 = time.perf_counter()
        fresh: list[_Frame] = []
        for _ in range(batch):
            item = next(frames, None)
            if item is None:
                exhausted = True
                break
            i, t, rgb = item
            h, w = rgb.shape[:2]
            s = min(1.0, detect_max_side / max(h, w)) if detect_max_side else 1.0
            small = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else rgb
            fresh.append(_Frame(i, t, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), small, s))
        timer.add("decode", time.perf_counter() - t0)
        pool = carry + fresh
        if not pool:
            break
        keys = [k for k, f in enumerate(pool) if (f.index % detect_every == 0 and not (k == 0 and key_done))]
        if exhausted and (pool[-1].index % detect_every != 0) and len(pool) > (1 if key_done else 0):
            keys.append(len(pool) - 1)  # the video's last frame closes the final stretch
        prev_face = pool[0].face if key_done else None
        tracker.detect([pool[k] for k in keys], prev_face)
        anchors = ([0] if key_done else []) + keys
        if anchors and anchors[0] > 0:  # frames before the first key frame of the video (none when it starts at 0)
            tracker.detect(pool[: anchors[0]], None)
        for a, b in zip(anchors, anchors[1:], strict=False):
            tracker.follow(pool[a], pool[b], pool[a + 1 : b])
        last = anchors[-1] if anchors else -1
        done = pool[: last + 1] if not exhausted else pool
        for f in done:
            if key_done and f is pool[0]:
                continue  # already yielded with the previous chunk
            stats.frames += 1
            stats.with_face += f.face is not None
            yield Tracked(f.index, f.time, f.gray, f.face, f.detected)
        if exhausted:
            break
        carry = pool[last:] if last >= 0 else pool
        key_done = last >= 0
