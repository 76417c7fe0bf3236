"""Per-frame optical-flow features on facial regions: what spotters (the MDMD baseline, learned ones) read.

`extract_features(path, ks)` streams a video (`mer.spotting.video`), tracks the face (`mer.spotting.track`) and, for
every frame t and every window k in `ks`, computes dense Farneback flow (`mer.face.flow.optical_flow`, the project's
one flow) on aligned face crops:

* ``D_t`` = flow from frame t − k to frame t (the MEGC baselines' sliding window: the "head frame" k frames back);
* ``E_t`` = flow from frame t − k to frame t + k (head to "tail" frame), which MDMD compares ``D_t`` with.

Alignment: one affine crop (`mer.face.align.alignment_matrix`, eye line levelled, no eye mask) per *stable
segment*: a run of frames with a face whose eye midpoint stays within `STILL_SHIFT` eye distances and whose eye
distance within `SCALE_SHIFT` of the segment's first frame. Every frame of a segment is cropped with the same matrix,
so landmark jitter (a pixel, as large as a micro-expression) is not motion; a crop from another segment is carried
into the current one through the two matrices. Global head motion that is left (drift within a segment) is removed
by subtracting the nose region's median flow vector from the field before any region statistic.

Regions (`REGIONS`, rectangles placed from the segment's 5 landmarks in crop pixels, sized in eye distances): brows,
eyes, the nose (the reference; its row holds the raw head motion that was removed), the two mouth corners and the
chin. Features per region (`FEATURES`): mean u and v of ``D_t`` and its mean magnitude (pixels of a `size`² crop), and
``mdmd``: Wang et al.'s main-directional maximal difference — among the region's pixels whose ``D_t`` points into the
most common of 4 direction quadrants, the mean of the largest third of ``|D_t| − |E_t|``. A value that cannot be
computed (no face at t − k, t or t + k within one face run, the first k or last k frames) is NaN. A face run survives
a gap of up to `bridge_seconds` without a face (a black frame): flow is then measured across the gap; `face` says
which frames had a face at all.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mer.config import FaceConfig
from mer.face.align import alignment_matrix, transform_points, warp_face
from mer.face.detect import FaceDetector
from mer.face.flow import optical_flow
from mer.inference.predict import STILL_SHIFT, segments
from mer.spotting.track import Tracked, TrackStats, track_video
from mer.spotting.video import OpenedVideo, StageTimer, open_long_video

REGIONS = ("brow_left", "brow_right", "eye_left", "eye_right", "nose", "mouth_left", "mouth_right", "chin")
FEATURES = ("u", "v", "magnitude", "mdmd")
NOSE = REGIONS.index("nose")
SCALE_SHIFT = 0.08  # relative eye-distance change that starts a new alignment segment (zoom, head towards the camera)
# (anchor landmark(s), centre offset (x, y) and half size (w, h) in eye distances, x along the eye line, y down)
_REGION_GEOMETRY: dict[str, tuple[tuple[int, ...], tuple[float, float], tuple[float, float]]] = {
    "brow_left": ((0,), (0.0, -0.42), (0.32, 0.16)),
    "brow_right": ((1,), (0.0, -0.42), (0.32, 0.16)),
    "eye_left": ((0,), (0.0, 0.0), (0.28, 0.14)),
    "eye_right": ((1,), (0.0, 0.0), (0.28, 0.14)),
    "nose": ((2,), (0.0, -0.12), (0.16, 0.16)),
    "mouth_left": ((3,), (0.0, 0.0), (0.25, 0.22)),
    "mouth_right": ((4,), (0.0, 0.0), (0.25, 0.22)),
    "chin": ((3, 4), (0.0, 0.5), (0.35, 0.16)),
}


@dataclass(frozen=True)
class FeatureConfig:
    """Settings of `extract_features`: crop and detection sizes, tracking cadence, batching and threads."""

    size: int = 96  # side of the aligned face crop the flow runs on (pixels)
    margin: float = 0.1  # border around the face square (fraction of its side), as FaceConfig.margin
    detect_every: int = 10  # MTCNN on every n-th frame; the face is followed in between
    detect_max_side: int = 320  # frames are scaled to this longer side for MTCNN (0 = full size)
    min_face_size: int = 40  # MTCNN's smallest face in full-frame pixels
    batch: int = 64  # frames decoded, detected and flowed per chunk
    threads: int = 2  # flow fields computed in parallel (OpenCV releases the GIL)
    device: str = "auto"  # MTCNN device (auto: CUDA when available)
    still_shift: float = STILL_SHIFT  # eye-midpoint shift (eye distances) that starts a new alignment segment
    bridge_seconds: float = 0.2  # frames without a face for at most this long (a black or blurred frame) do not end
    # a face run: motion is still measured across them, never from or to them (0 = every gap ends the run)


@dataclass
class VideoFeatures:
    """Region features of one video for each window k: `values[k]` (frames × REGIONS × FEATURES, float32, NaN where
    not computable), the face mask, per-frame times (s), fps, face runs and alignment segments, timing and notes."""

    path: str
    fps: float
    fps_source: str
    times: np.ndarray
    face: np.ndarray
    values: dict[int, np.ndarray]
    face_runs: list[tuple[int, int]]
    alignments: int
    landmarks: np.ndarray  # (frames, 5, 2) tracked landmarks in frame pixels, NaN without a face
    boxes: np.ndarray  # (frames, 4) tracked face boxes x1, y1, x2, y2, NaN without a face
    track: TrackStats
    timing: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    regions: tuple[str, ...] = REGIONS
    features: tuple[str, ...] = FEATURES

    @property
    def n_frames(self) -> int:
        """Frames read."""
        return len(self.face)

    def feature(self, k: int, name: str) -> np.ndarray:
        """frames × regions array of one feature (`FEATURES`) at window `k`."""
        return self.values[k][:, :, FEATURES.index(name)]


def window_frames(seconds: float, fps: float) -> int:
    """A window given in seconds as a whole number of frames at `fps` (at least 1)."""
    return max(1, int(round(seconds * fps)))


def region_boxes(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(len(REGIONS), 4) integer rectangles y0, y1, x0, x1 in a size² crop from the 5 landmarks in crop pixels."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    d = max(float(np.linalg.norm(lm[1] - lm[0])), 1.0)
    boxes = np.zeros((len(REGIONS), 4), dtype=np.int64)
    for r, name in enumerate(REGIONS):
        anchors, (ox, oy), (hw, hh) = _REGION_GEOMETRY[name]
        cx, cy = lm[list(anchors)].mean(axis=0) + np.array([ox, oy]) * d
        y0, y1 = round(cy - hh * d), round(cy + hh * d) + 1
        x0, x1 = round(cx - hw * d), round(cx + hw * d) + 1
        y0, x0 = min(max(0, y0), size - 1), min(max(0, x0), size - 1)
        boxes[r] = (y0, max(y0 + 1, min(size, y1)), x0, max(x0 + 1, min(size, x1)))
    return boxes


def _without_head(flow: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flow minus the nose region's median vector, and that vector."""
    y0, y1, x0, x1 = boxes[NOSE]
    head = np.median(flow[y0:y1, x0:x1].reshape(-1, 2), axis=0).astype(np.float32)
    return flow - head, head


def flow_stats(flow: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(len(REGIONS), 3): mean u, v and magnitude per region after head-motion removal (nose row: the head motion)."""
    rel, head = _without_head(flow, boxes)
    out = np.zeros((len(REGIONS), 3), dtype=np.float32)
    for r, (y0, y1, x0, x1) in enumerate(boxes):
        if r == NOSE:
            out[r] = (head[0], head[1], float(np.hypot(head[0], head[1])))
            continue
        f = rel[y0:y1, x0:x1].reshape(-1, 2)
        out[r] = (f[:, 0].mean(), f[:, 1].mean(), np.hypot(f[:, 0], f[:, 1]).mean())
    return out


def mdmd_regions(d_flow: np.ndarray, e_flow: np.ndarray, boxes: np.ndarray, top: float = 1 / 3) -> np.ndarray:
    """(len(REGIONS),) MDMD per region: main quadrant of D's directions, mean of the largest `top` of |D| − |E| there.

    D = flow head → current frame, E = flow head → tail frame, both after head-motion removal (nose: 0).
    """
    d_rel, _ = _without_head(d_flow, boxes)
    e_rel, _ = _without_head(e_flow, boxes)
    out = np.zeros(len(REGIONS), dtype=np.float32)
    for r, (y0, y1, x0, x1) in enumerate(boxes):
        if r == NOSE:
            continue
        d = d_rel[y0:y1, x0:x1].reshape(-1, 2)
        e = e_rel[y0:y1, x0:x1].reshape(-1, 2)
        quadrant = ((np.arctan2(d[:, 1], d[:, 0]) + np.pi) // (np.pi / 2)).astype(np.int64).clip(0, 3)
        main = int(np.bincount(quadrant, minlength=4).argmax())
        sel = quadrant == main
        diff = np.sort(np.hypot(d[sel, 0], d[sel, 1]) - np.hypot(e[sel, 0], e[sel, 1]))[::-1]
        n = max(1, int(round(len(diff) * top)))
        out[r] = float(diff[:n].mean())
    return out


@dataclass
class _Aligned:
    """One frame's crop in its alignment segment."""

    crop: np.ndarray
    seg: int  # alignment segment id
    run: int  # first frame index of its face run


class _Aligner:
    """Assigns each tracked frame to a stable alignment segment and crops it (see the module docstring)."""

    def __init__(self, cfg: FeatureConfig, bridge: int) -> None:
        self.bridge = bridge
        self.face_cfg = FaceConfig(size=cfg.size, margin=cfg.margin, rotate=True, refine_roll=False, eye_mask="none")
        self.still = cfg.still_shift
        self.matrices: list[np.ndarray] = []
        self.boxes: list[np.ndarray] = []
        self._ref: tuple[np.ndarray, float] | None = None  # eye midpoint and eye distance of the segment's first frame
        self.run_start = -1
        self.last_index = -(10**9)

    def __call__(self, f: Tracked) -> _Aligned | None:
        if f.face is None:
            return None
        lm = f.face.landmarks
        mid, dist = lm[:2].mean(axis=0), float(np.linalg.norm(lm[1] - lm[0]))
        if f.index - self.last_index - 1 > self.bridge:  # a longer gap than a bad frame or two: a new face run
            self.run_start = f.index
            self._ref = None
        self.last_index = f.index
        if (
            self._ref is None
            or np.linalg.norm(mid - self._ref[0]) > self.still * max(self._ref[1], 1.0)
            or abs(dist - self._ref[1]) > SCALE_SHIFT * max(self._ref[1], 1.0)
        ):
            matrix = alignment_matrix(lm, self.face_cfg, f.face.box)
            self.matrices.append(matrix)
            self.boxes.append(region_boxes(transform_points(matrix, lm), self.face_cfg.size))
            self._ref = (mid, dist)
        seg = len(self.matrices) - 1
        return _Aligned(warp_face(f.gray, self.matrices[seg], self.face_cfg), seg, self.run_start)

    def carry(self, crop: np.ndarray, src: int, dst: int) -> np.ndarray:
        """A crop of segment `src` re-expressed in segment `dst`'s crop frame (both matrices map the same source)."""
        if src == dst:
            return crop
        a = np.vstack([self.matrices[src], [0.0, 0.0, 1.0]])
        b = np.vstack([self.matrices[dst], [0.0, 0.0, 1.0]])
        m = (b @ np.linalg.inv(a))[:2]
        n = self.face_cfg.size
        return cv2.warpAffine(crop, m, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _chunks(it: Iterator[Tracked], n: int) -> Iterator[list[Tracked]]:
    chunk: list[Tracked] = []
    for f in it:
        chunk.append(f)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def extract_features(
    path: str | Path | Sequence[str | Path] | OpenedVideo,
    ks: Sequence[int],
    cfg: FeatureConfig | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    detector: FaceDetector | None = None,
    progress: bool = False,
) -> VideoFeatures:
    """Region features of a video, frames folder or frame list for each window k in `ks` (frames); see the module
    docstring. `fps` overrides the file's frame rate (a frames folder or list needs it). Raises `MerError` (one
    line) for unreadable input; a video without a face returns all-NaN features with `face` all False.
    """
    cfg = cfg or FeatureConfig()
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"windows k must be positive frame counts, got {list(ks)}")
    video = path if isinstance(path, OpenedVideo) else open_long_video(path, fps)
    if detector is None:
        scale = min(1.0, cfg.detect_max_side / max(video.media.width, video.media.height)) if cfg.detect_max_side else 1
        detector = FaceDetector(cfg.device, max(12, round(cfg.min_face_size * scale)), max(1, cfg.batch))
    timer, stats = StageTimer(), TrackStats()
    aligner = _Aligner(cfg, window_frames(cfg.bridge_seconds, video.fps) if cfg.bridge_seconds > 0 else 0)
    horizon = 2 * ks[-1]
    crops: dict[int, _Aligned] = {}
    d_fields: dict[int, dict[int, np.ndarray]] = {k: {} for k in ks}  # D_t flow fields kept until E_t arrives
    rows: dict[int, list[np.ndarray]] = {k: [] for k in ks}
    times: list[float] = []
    face: list[bool] = []
    face_lms: list[np.ndarray] = []
    face_boxes: list[np.ndarray] = []
    pool = ThreadPoolExecutor(max_workers=cfg.threads) if cfg.threads > 1 else None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=video.n_frames if max_frames is None else min(video.n_frames, max_frames), unit="frame",
                   desc="spot features", leave=False)  # fmt: skip
    try:
        tracked = track_video(video, detector, cfg.detect_every, cfg.detect_max_side, cfg.batch, max_frames, stats,
                              timer)  # fmt: skip
        for chunk in _chunks(tracked, cfg.batch):
            t0 = time.perf_counter()
            new: list[int] = []
            for f in chunk:
                times.append(f.time)
                face.append(f.face is not None)
                face_lms.append(f.face.landmarks if f.face is not None else np.full((5, 2), np.nan))
                face_boxes.append(f.face.box if f.face is not None else np.full(4, np.nan))
                for k in ks:
                    rows[k].append(np.full((len(REGIONS), len(FEATURES)), np.nan, dtype=np.float32))
                a = aligner(f)
                if a is not None:
                    crops[f.index] = a
                    new.append(f.index)
            timer.add("align", time.perf_counter() - t0)
            # flow jobs of this chunk: D_j = flow(j-k -> j) in j's segment, E_{j-k} = flow(j-2k -> j) in (j-k)'s
            jobs: list[tuple[str, int, int, np.ndarray, np.ndarray]] = []
            for j in new:
                cur = crops[j]
                for k in ks:
                    h = crops.get(j - k)
                    if h is not None and h.run == cur.run:
                        jobs.append(("D", k, j, aligner.carry(h.crop, h.seg, cur.seg), cur.crop))
                    c, h2 = crops.get(j - k), crops.get(j - 2 * k)
                    if c is not None and h2 is not None and h2.run == cur.run:
                        jobs.append(("E", k, j - k, aligner.carry(h2.crop, h2.seg, c.seg),
                                     aligner.carry(cur.crop, cur.seg, c.seg)))  # fmt: skip
            t1 = time.perf_counter()
            flows = list(pool.map(_flow, jobs) if pool else map(_flow, jobs))
            timer.add("flow", time.perf_counter() - t1)
            t2 = time.perf_counter()
            for (kind, k, t, _, _), fl in zip(jobs, flows, strict=True):
                boxes = aligner.boxes[crops[t].seg]
                if kind == "D":
                    rows[k][t][:, :3] = flow_stats(fl, boxes)
                    d_fields[k][t] = fl
                else:
                    d = d_fields[k].pop(t, None)
                    if d is not None:
                        rows[k][t][:, 3] = mdmd_regions(d, fl, boxes)
                        rows[k][t][NOSE, 3] = np.nan
            if chunk:  # forget what no later frame needs
                oldest = chunk[-1].index - horizon
                for i in [i for i in crops if i < oldest]:
                    del crops[i]
                for k in ks:
                    for i in [i for i in d_fields[k] if i < chunk[-1].index - k]:
                        del d_fields[k][i]
            timer.add("features", time.perf_counter() - t2)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if pool is not None:
            pool.shutdown()
        if bar is not None:
            bar.close()
    face_arr = np.asarray(face, dtype=bool)
    notes = [video.note] if video.note else []
    if len(face_arr) and not face_arr.any():
        notes.append(f"no face found in any of the {len(face_arr)} frames (MTCNN, faces ≥ {cfg.min_face_size} px)")
    n = len(face_arr)
    values = {k: (np.stack(rows[k]) if n else np.zeros((0, len(REGIONS), len(FEATURES)), np.float32)) for k in ks}
    return VideoFeatures(
        path=str(video.path),
        fps=video.fps,
        fps_source=video.fps_source,
        times=np.asarray(times, dtype=np.float64),
        face=face_arr,
        values=values,
        face_runs=segments(face_arr.tolist()),
        alignments=len(aligner.matrices),
        landmarks=np.asarray(face_lms, dtype=np.float64).reshape(-1, 5, 2),
        boxes=np.asarray(face_boxes, dtype=np.float64).reshape(-1, 4),
        track=stats,
        timing=timer.rounded(),
        notes=notes,
    )


def _flow(job: tuple[str, int, int, np.ndarray, np.ndarray]) -> np.ndarray:
    return optical_flow(job[3], job[4], "farneback")
