"""`mer predict`: a user's image, folder of frames or video → tracked face → aligned crops → apex → label.

Two passes over the frames (a video is streamed, never held whole in memory):

1. detection: MTCNN in batches on frames scaled down to `detect_max_side`; the face is tracked from frame to frame
   (highest IoU with the previous box, the largest face when the track starts or is lost);
2. alignment: per run of consecutive frames with a face ("segment"), every frame is aligned with ONE alignment made
   from the segment's median landmarks when the head is still (landmark jitter of a pixel is as large as a
   micro-expression), or with temporally smoothed landmarks when the head moves.

The apex is spotted per segment (`mer.face.spot.spot_apex`, optical flow against the segment's first frame over the
brow and mouth regions); the crop at the apex is classified. `window=K` also classifies the K strongest motion peaks.
The returned dict has a fixed set of keys, `SCHEMA_KEYS`, documented in docs/inference.md.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

import mer
from mer.errors import MerError
from mer.face.detect import Face, FaceDetector
from mer.inference.bundle import ENGINES, Bundle, onnx_session, openvino_model
from mer.inference.export import export_graph
from mer.inference.video import Media, open_media

SCHEMA = "mer.predict/1"
SCHEMA_KEYS = (
    "schema", "input", "kind", "fps", "n_frames", "frames_with_face", "face_segments", "face_note", "alignment",
    "apex_frame", "apex_time_s", "apex_score", "apex_method", "apex_face_box", "label", "probabilities", "classifier",
    "probabilities_from", "softmax_label", "candidates", "model", "backbone", "engine", "image_size", "mer_version",
    "timing_s",
)  # fmt: skip
CANDIDATE_KEYS = ("frame", "time_s", "score", "label", "probabilities", "softmax_label")
STILL_SHIFT = 0.08  # eye-midpoint spread (fraction of eye distance) under which a segment counts as a still head
TRACK_IOU = 0.2  # a face continues the track when its box overlaps the previous one at least this much


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def track_faces(per_frame: Sequence[Sequence[Face]]) -> tuple[list[Face | None], dict[str, int]]:
    """One face per frame: the face overlapping the previous frame's pick most, else the largest (track start/lost).

    Returns the picks and counts: frames with several faces, and how often the track was (re)started.
    """
    picks: list[Face | None] = []
    prev: Face | None = None
    stats = {"several": 0, "max_faces": 0, "starts": 0}
    for faces in per_frame:
        stats["max_faces"] = max(stats["max_faces"], len(faces))
        if len(faces) > 1:
            stats["several"] += 1
        if not faces:
            picks.append(None)
            prev = None
            continue
        best = None
        if prev is not None:
            overlaps = [iou(f.box, prev.box) for f in faces]
            k = int(np.argmax(overlaps))
            if overlaps[k] >= TRACK_IOU:
                best = faces[k]
        if best is None:
            best = max(faces, key=lambda f: f.area)
            stats["starts"] += 1
        picks.append(best)
        prev = best
    return picks, stats


def segments(has_face: Sequence[bool]) -> list[tuple[int, int]]:
    """Runs of consecutive True as inclusive (first, last) frame indices."""
    out: list[tuple[int, int]] = []
    start = None
    for i, ok in enumerate(has_face):
        if ok and start is None:
            start = i
        if not ok and start is not None:
            out.append((start, i - 1))
            start = None
    if start is not None:
        out.append((start, len(has_face) - 1))
    return out


def _scaled(face: Face, s: float) -> Face:
    return Face(box=face.box / s, landmarks=face.landmarks / s, prob=face.prob)


def detect_all(
    media: Media, detector: FaceDetector, max_frames: int | None, detect_max_side: int, progress: bool
) -> tuple[list[list[Face]], int]:
    """Pass 1: all faces in every frame (frames scaled to `detect_max_side` for MTCNN, results scaled back)."""
    from tqdm.auto import tqdm

    total = media.n_frames if max_frames is None else min(media.n_frames, max_frames)
    per_frame: list[list[Face]] = []
    batch: list[np.ndarray] = []
    scales: list[float] = []

    def flush() -> None:
        for faces, s in zip(detector.detect(batch), scales, strict=True):
            per_frame.append([_scaled(f, s) for f in faces] if s != 1.0 else list(faces))
        batch.clear()
        scales.clear()

    bar = tqdm(total=total, desc="faces", unit="frame", disable=not progress or total < 30, leave=False)
    for _, frame in media.frames(max_frames):
        h, w = frame.shape[:2]
        s = min(1.0, detect_max_side / max(h, w)) if detect_max_side else 1.0
        batch.append(cv2.resize(frame, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else frame)
        scales.append(s)
        if len(batch) >= detector.batch_size:
            flush()
        bar.update(1)
    if batch:
        flush()
    bar.close()
    return per_frame, len(per_frame)


def alignment_plan(
    picks: Sequence[Face | None], segs: Sequence[tuple[int, int]], fps: float | None
) -> tuple[dict[int, np.ndarray], dict[int, bool]]:
    """Landmarks to align each frame with, and per segment start whether it is one fixed alignment (still head)."""
    lms: dict[int, np.ndarray] = {}
    fixed: dict[int, bool] = {}
    for a, b in segs:
        stack = np.stack([picks[i].landmarks for i in range(a, b + 1)])  # type: ignore[union-attr]
        eyes_mid = stack[:, :2].mean(axis=1)
        eye_dist = float(np.median(np.linalg.norm(stack[:, 1] - stack[:, 0], axis=1)))
        spread = float(np.max(np.linalg.norm(eyes_mid - np.median(eyes_mid, axis=0), axis=1)))
        still = spread <= STILL_SHIFT * max(eye_dist, 1.0)
        fixed[a] = still
        if still:
            med = np.median(stack, axis=0)
            for i in range(a, b + 1):
                lms[i] = med
        else:
            sigma = max(1.5, 0.07 * (fps or 30.0))  # ≈ 2 frames at 30 fps: removes jitter, follows the head
            smooth = gaussian_filter1d(stack, sigma, axis=0, mode="nearest") if len(stack) > 2 else stack
            for k, i in enumerate(range(a, b + 1)):
                lms[i] = smooth[k]
    return lms, fixed


def align_all(
    media: Media,
    picks: Sequence[Face | None],
    lms: dict[int, np.ndarray],
    fixed: dict[int, bool],
    segs: Sequence[tuple[int, int]],
    bundle: Bundle,
    max_frames: int | None,
) -> dict[int, np.ndarray]:
    """Pass 2: aligned uint8 crops for every frame with a face (one shared matrix per still segment)."""
    from mer.face import align as align_mod

    cfg = bundle.cfg.face
    seg_of = {i: a for a, b in segs for i in range(a, b + 1)}
    shared: dict[int, Any] = {}
    crops: dict[int, np.ndarray] = {}
    for i, frame in media.frames(max_frames):
        if i not in lms:
            continue
        a = seg_of[i]
        box = picks[i].box  # type: ignore[union-attr]
        if fixed[a]:
            if a not in shared:
                shared[a] = align_mod.align(frame, lms[i], cfg, box)
                crops[i] = shared[a].crop
            else:
                ref = shared[a]
                crops[i] = align_mod.warp_face(frame, ref.matrix, cfg, ref.landmarks[:2])
        else:
            crops[i] = align_mod.align_face(frame, lms[i], cfg, box)
    lost = [i for i in lms if i not in crops]
    if lost:
        raise MerError(f"{media.path}: frame {lost[0]} could not be read again (is the file being written?)")
    return crops


def spot(
    crops: dict[int, np.ndarray], segs: Sequence[tuple[int, int]], n_frames: int, bundle: Bundle
) -> tuple[np.ndarray, int, str]:
    """Per-frame motion scores (NaN without a face), the apex frame and how it was found."""
    from mer.face.align import region_mask
    from mer.face.spot import spot_apex

    scores = np.full(n_frames, np.nan)
    mask = region_mask(bundle.cfg.face)
    for a, b in segs:
        if b > a:
            _, s = spot_apex([crops[i] for i in range(a, b + 1)], mask=mask)
            scores[a : b + 1] = s
        else:
            scores[a] = 0.0
    if n_frames == 1:
        return scores, 0, "single image"
    if all(b == a for a, b in segs):
        return scores, segs[0][0], "first frame with a face (no two consecutive frames had one)"
    return scores, int(np.nanargmax(scores)), "spotted: optical flow against each face segment's first frame"


def peaks(scores: np.ndarray, k: int, min_gap: int) -> list[int]:
    """The `k` highest local maxima of `scores` (NaN ignored), at least `min_gap` frames apart, best first."""
    s = np.where(np.isfinite(scores), scores, -np.inf)
    idx = [
        i for i in range(len(s)) if np.isfinite(s[i]) and s[i] >= s[max(0, i - 1)] and s[i] >= s[min(len(s) - 1, i + 1)]
    ]
    chosen: list[int] = []
    for i in sorted(idx, key=lambda j: -s[j]):
        if all(abs(i - c) >= min_gap for c in chosen):
            chosen.append(i)
        if len(chosen) == k:
            break
    return chosen


def _note(media: Media, n: int, n_face: int, segs: Sequence[tuple[int, int]], stats: dict[str, int]) -> str:
    notes = []
    if stats["several"]:
        notes.append(
            f"several faces (up to {stats['max_faces']}) in {stats['several']} frame(s): used the largest tracked face"
        )
    if n_face < n:
        spans = ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in segs)
        notes.append(f"face found in {n_face} of {n} frames (frames {spans}); classified on those")
    return "; ".join(notes)


def _probs(classes: Sequence[str], p: np.ndarray) -> dict[str, float]:
    return {c: round(float(v), 6) for c, v in zip(classes, p, strict=True)}


def use_engine(bundle: Bundle, engine: str) -> Bundle:
    """Run `bundle`'s network with `engine` (see ENGINES); a PyTorch network goes through a temporary ONNX export."""
    if engine not in ENGINES:
        raise MerError(f"unknown engine '{engine}'; choose from: {', '.join(ENGINES)}")
    if engine in ("auto", bundle.engine):
        return bundle
    if engine == "torch":
        raise MerError(f"{bundle.source}: an ONNX model has no PyTorch network; use --engine onnxruntime or openvino")
    with tempfile.TemporaryDirectory() as tmp:  # both engines read the file into memory when they load it
        onnx_path = bundle.source if bundle.kind == "onnx" else Path(tmp) / "net.onnx"
        if bundle.kind != "onnx":
            export_graph(bundle.net, onnx_path, bundle.image_size)
        if engine == "openvino":
            compiled = openvino_model(onnx_path)
            return dataclasses.replace(bundle, openvino=compiled, session=None, _runner=None)
        return dataclasses.replace(bundle, session=onnx_session(onnx_path), _runner=None)


def predict_path(
    path: str | Path,
    bundle: Bundle,
    window: int = 0,
    detector: FaceDetector | None = None,
    max_frames: int | None = None,
    detect_max_side: int = 640,
    progress: bool = True,
) -> dict[str, Any]:
    """Classify the micro-expression in an image, a folder of frames or a video; returns the `SCHEMA_KEYS` dict.

    Raises `MerError` when the input is unreadable or no frame has a face. `window=K` (K > 0) also classifies the
    K strongest motion peaks (`candidates`). `max_frames` reads only the first frames of a long video.
    """
    if window < 0:
        raise MerError(f"window must be 0 or a positive number of candidate apexes, got {window}")
    face_cfg = bundle.cfg.face
    t0 = time.perf_counter()
    media = open_media(path, min_side=max(12, min(face_cfg.min_face_size, 40)))
    if detector is None:
        scale = min(1.0, detect_max_side / max(media.width, media.height)) if detect_max_side else 1.0
        detector = FaceDetector(face_cfg.device, max(12, round(face_cfg.min_face_size * scale)), face_cfg.batch_size)
    per_frame, n = detect_all(media, detector, max_frames, detect_max_side, progress)
    t_detect = time.perf_counter() - t0
    if n == 0:
        raise MerError(f"{media.path}: no frame could be read")
    picks, stats = track_faces(per_frame)
    has_face = [p is not None for p in picks]
    n_face = int(sum(has_face))
    if n_face == 0:
        what = "the image" if media.kind == "image" else f"any of the {n} frames"
        raise MerError(f"{media.path}: no face found in {what} (MTCNN, faces ≥ {face_cfg.min_face_size} px)")
    segs = segments(has_face)
    lms, fixed = alignment_plan(picks, segs, media.fps)
    t1 = time.perf_counter()
    crops = align_all(media, picks, lms, fixed, segs, bundle, max_frames)
    t_align = time.perf_counter() - t1
    t2 = time.perf_counter()
    scores, apex, method = spot(crops, segs, n, bundle)
    t_spot = time.perf_counter() - t2

    chosen = [apex]
    if window > 0:
        gap = max(3, round(0.2 * (media.fps or 30.0)))
        chosen += [i for i in peaks(scores, window, gap) if i != apex][: max(0, window - 1)]
    t3 = time.perf_counter()
    labels, probs, _ = bundle.classify(np.stack([crops[i] for i in chosen]))
    t_cls = time.perf_counter() - t3
    softmax_labels = [bundle.classes[int(j)] for j in probs.argmax(axis=1)]
    candidates = []
    if window > 0:
        for k, i in enumerate(chosen):
            cand = {
                "frame": i,
                "time_s": media.time_of(i),
                "score": round(float(scores[i]), 6),
                "label": labels[k],
                "probabilities": _probs(bundle.classes, probs[k]),
                "softmax_label": softmax_labels[k],
            }
            assert tuple(cand) == CANDIDATE_KEYS
            candidates.append(cand)
    n_fixed = sum(1 for a, _ in segs if fixed[a])
    if n == 1:
        alignment = "the image's own landmarks"
    elif n_fixed == len(segs):
        alignment = "one fixed alignment per face segment (still head)"
    elif n_fixed == 0:
        alignment = "temporally smoothed landmarks (moving head)"
    else:
        alignment = f"{n_fixed} of {len(segs)} face segments fixed (still head), the others smoothed landmarks"
    result = {
        "schema": SCHEMA,
        "input": str(media.path),
        "kind": media.kind,
        "fps": media.fps,
        "n_frames": n,
        "frames_with_face": n_face,
        "face_segments": [[a, b] for a, b in segs],
        "face_note": _note(media, n, n_face, segs, stats),
        "alignment": alignment,
        "apex_frame": apex,
        "apex_time_s": media.time_of(apex),
        "apex_score": round(float(scores[apex]), 6),
        "apex_method": method,
        "apex_face_box": [round(float(v), 1) for v in picks[apex].box],  # type: ignore[union-attr]
        "label": labels[0],
        "probabilities": _probs(bundle.classes, probs[0]),
        "classifier": bundle.classifier,
        "probabilities_from": "softmax",
        "softmax_label": softmax_labels[0],
        "candidates": candidates,
        "model": str(bundle.source),
        "backbone": bundle.backbone,
        "engine": bundle.engine,
        "image_size": bundle.image_size,
        "mer_version": mer.__version__,
        "timing_s": {
            "detect": round(t_detect, 3),
            "align": round(t_align, 3),
            "spot": round(t_spot, 3),
            "classify": round(t_cls, 3),
        },
    }
    assert tuple(result) == SCHEMA_KEYS
    return result


def result_table(results: Sequence[dict[str, Any]]) -> Any:
    """A rich Table of predictions: file, frames with a face, apex frame/time, label, classifier, probabilities."""
    from rich.table import Table

    classes = list(results[0]["probabilities"]) if results else []
    table = Table(title="mer predict", show_lines=False)
    for col in ("file", "kind", "face frames", "apex frame", "apex time", "label", "by"):
        table.add_column(col, overflow="fold", no_wrap=col != "file")
    for c in classes:
        table.add_column(c, justify="right", no_wrap=True)
    for r in results:
        rows = [(r["apex_frame"], r["apex_time_s"], r["label"], r["probabilities"])]
        rows += [(c["frame"], c["time_s"], c["label"], c["probabilities"]) for c in r["candidates"][1:]]
        for k, (frame, t, label, p) in enumerate(rows):
            table.add_row(
                Path(r["input"]).name if k == 0 else "  candidate",
                r["kind"] if k == 0 else "",
                f"{r['frames_with_face']}/{r['n_frames']}" if k == 0 else "",
                str(frame),
                "-" if t is None else f"{t:.3f} s",
                label,
                r["classifier"] if k == 0 else "",
                *(f"{p[c]:.3f}" for c in classes),
            )
    return table
