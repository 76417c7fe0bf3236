"""Apex spotting for clips with no apex label (SMIC, user videos): the frame that moved most from the onset.

Each frame of an aligned clip is compared with the first (onset) frame by dense Farneback optical flow
(`mer.face.flow.optical_flow`, the project's one flow implementation).
The flow's median over the face is subtracted (small head drift moves everything alike; an expression moves some
regions), the remaining magnitude is averaged over the brow and mouth regions, and the per-frame scores are smoothed
over time with a Gaussian, so single noisy frames cannot win. The apex is the frame with the highest raw score within
±ceil(sigma) frames of the smoothed peak (smoothing alone pulls the peak of a lopsided rise-and-fall towards the
clip's middle).

Frames should share one alignment (the onset's landmarks): per-frame landmarks jitter by a pixel or two, which is as
large as a micro-expression.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from mer.face.align import to_gray
from mer.face.flow import optical_flow

WORK_SIZE = 128  # frames are resized to this side before the flow (the motion of interest is smooth)


def _prepare(frame: np.ndarray, size: int) -> np.ndarray:
    img = to_gray(np.asarray(frame))
    if img.shape[0] != size or img.shape[1] != size:
        interp = cv2.INTER_AREA if max(img.shape[:2]) > size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
    return cv2.GaussianBlur(img, (0, 0), 1.0)


def motion_scores(frames: Sequence[np.ndarray], mask: np.ndarray | None = None, size: int = WORK_SIZE) -> np.ndarray:
    """Raw per-frame motion against frame 0: mean |flow - median flow| over `mask` (True = counts; None = all)."""
    if len(frames) == 0:
        raise ValueError("spot_apex needs at least one frame")
    work = [_prepare(f, size) for f in frames]
    if mask is None:
        m = np.ones((size, size), dtype=bool)
    else:
        m = cv2.resize(np.asarray(mask, dtype=np.uint8), (size, size), interpolation=cv2.INTER_NEAREST).astype(bool)
    if not m.any():
        raise ValueError("spot_apex: the region mask is empty")
    ref = work[0]
    scores = np.zeros(len(work), dtype=np.float64)
    for i in range(1, len(work)):
        flow = optical_flow(ref, work[i], "farneback")
        vec = flow[m]
        vec = vec - np.median(vec, axis=0)
        scores[i] = float(np.linalg.norm(vec, axis=1).mean())
    return scores


def spot_apex(
    frames: Sequence[np.ndarray], mask: np.ndarray | None = None, sigma: float | None = None
) -> tuple[int, np.ndarray]:
    """Apex index of an aligned clip and the smoothed per-frame motion scores (score 0 = the onset frame).

    The apex is the raw-score maximum within ±ceil(sigma) frames of the smoothed maximum.

    `mask`: boolean H×W region where motion counts (e.g. `mer.face.align.region_mask(cfg)`; None = whole frame).
    `sigma`: temporal smoothing in frames (default: max(1, len/25)).
    """
    from scipy.ndimage import gaussian_filter1d  # local: a warm `mer prepare` reads its spotted apexes from the cache

    raw = motion_scores(frames, mask)
    if len(raw) < 3:
        return int(np.argmax(raw)), raw
    s = sigma if sigma is not None else max(1.0, len(raw) / 25.0)
    smooth = gaussian_filter1d(raw, s, mode="nearest")
    peak = int(np.argmax(smooth))
    w = math.ceil(s)
    lo = max(0, peak - w)
    return lo + int(np.argmax(raw[lo : peak + w + 1])), smooth
