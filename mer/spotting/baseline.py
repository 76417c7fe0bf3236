"""The MEGC optical-flow baseline spotter: MDMD scores, the baseline's contrast and threshold, peaks, intervals.

What the MEGC2020 spotting baseline does (He, Wang, Li, Yap et al., "Spotting macro- and micro-expression intervals
in long video sequences", FG 2020, arXiv:1912.11985; its code: github.com/HeyingGithub/Baseline-project-for-MEGC2020
_spotting, `MDMD_codes/MDMD.m`, `cmd.m`, `MDMD_results/gen_MEGC2020_log_file.py`), on Wang et al.'s Main Directional
Maximal Difference analysis (Neurocomputing 230, 2017):

1. per frame i, optical flow head frame i − k → current frame i (D) and head → tail frame i + k (E); per block, the
   pixels whose D points into the most common of 4 direction quadrants; the mean of the largest third of |D| − |E|
   there; the frame's feature F_i = the mean of the largest third of the blocks (6 × 6 blocks in the baseline);
2. contrast C_i = F_i − (F_{i−m} + F_{i+m}) / 2 with m = k − 1;
3. threshold T = mean(C) + p × (max(C) − mean(C)) over the video, p ∈ [0, 1) (the baseline scans p = 0.01 … 0.99;
   its published figures use p = 0.01);
4. k = 12 (ME) / 39 (MaE) frames on CAS(ME)^2 at 30 fps and 80 / 260 on SAMM-LV at 200 fps: 0.4 s and 1.3 s,
   `K_SECONDS`; ME intervals are 7–16 frames (CAS(ME)^2) / 47–105 (SAMM-LV) long, MaE longer: ME ≤ 0.5 s.

Here (`spot_baseline`): F from `mer.spotting.features` (MDMD on the 7 landmark regions instead of 6 × 6 blocks, so the
largest third is the 2 strongest regions; Farneback instead of RLOF), steps 2 and 3 as above; then peaks of C above T
at least k apart (`scipy.signal.find_peaks`), each peak the apex of one interval. Bounds: ``window`` = the peak's head
and tail frames [i − k, i + k] (MDMD's own reading); ``motion`` (default) refines them from the sliding-window flow
magnitude around the peak: the run of frames around the strongest motion near the peak where the motion stays above
`EDGE_FRACTION` of it (dips shorter than k / 4 frames bridged: the window straddling the apex); onset = its first
frame, offset = its last less k (the window's lag). Both scales run, each keeping the intervals of its own type as the
baseline's length filter does (ME ≤ `ME_MAX_SECONDS`, MaE longer; with ``window`` bounds every peak is kept with its
scale's type). An interval's score is how far its peak stands between the mean and the maximum of C (1 = the video's
strongest peak at that scale).
`min_contrast` (pixels of the feature crop) is our addition, 0 in the baseline: a video with no expression has a
maximum of C too, and the relative threshold alone would always spot something there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.signal import find_peaks

from mer.data.intervals import Interval
from mer.spotting.features import NOSE, VideoFeatures, window_frames

BASELINE_PAPER = (
    "He et al. 2020, Spotting macro- and micro-expression intervals in long video sequences (MEGC2020 baseline, "
    "arXiv:1912.11985); MDMD: Wang et al. 2017, Neurocomputing 230"
)
K_SECONDS = {"ME": 0.4, "MaE": 1.3}  # baseline k: CAS(ME)^2 12 / 39 frames at 30 fps, SAMM-LV 80 / 260 at 200 fps
ME_MAX_SECONDS = 0.5  # an interval lasting longer is a macro-expression (the baseline's 16 / 105-frame ME limits)
EDGE_FRACTION = 0.15  # motion bounds: the share of the local motion maximum that marks onset and offset
BOUNDS = ("motion", "window")


@dataclass(frozen=True)
class BaselineConfig:
    """Settings of the baseline: p (chosen on training data when there is any), window seconds, bounds, floor."""

    p: float = 0.5  # T = mean(C) + p (max(C) - mean(C)); the baseline's published runs used 0.01 (see module doc)
    k_seconds: dict[str, float] = field(default_factory=lambda: dict(K_SECONDS))
    top: float = 1 / 3  # share of regions (and of pixels per region) averaged, as MDMD
    bounds: str = "motion"  # motion | window (see module docstring)
    min_contrast: float = 0.1  # a peak's C must reach this many crop pixels too (0 = the baseline as published)
    me_max_seconds: float = ME_MAX_SECONDS

    def __post_init__(self) -> None:
        if not 0.0 <= self.p < 1.0:
            raise ValueError(f"baseline p must be in [0, 1), got {self.p}")
        if self.bounds not in BOUNDS:
            raise ValueError(f"baseline bounds '{self.bounds}' is not one of {', '.join(BOUNDS)}")

    def windows(self, fps: float, n_frames: int | None = None) -> dict[str, int]:
        """k in frames per scale at `fps`; halved while a video of `n_frames` is shorter than 6 k (the baseline's
        `auto_k`: F needs k frames on each side, C another k − 1)."""
        out = {}
        for name, sec in self.k_seconds.items():
            k = window_frames(sec, fps)
            while n_frames is not None and k > 1 and n_frames < 6 * k:
                k = max(1, round(k / 2))
            out[name] = k
        return out


@dataclass
class ScaleCurve:
    """One scale's curves: the MDMD feature F, the contrast C, the motion M, its k and threshold T."""

    k: int
    feature: np.ndarray
    contrast: np.ndarray
    motion: np.ndarray
    threshold: float
    mean: float
    peak_max: float


@dataclass
class SpotResult:
    """Spotted intervals (0-based inclusive frames, `Interval`) with the curves and thresholds that gave them."""

    intervals: list[Interval]
    scales: dict[str, ScaleCurve]
    fps: float
    config: BaselineConfig


def _top_mean(values: np.ndarray, top: float) -> np.ndarray:
    """Per row: the mean of the largest `top` share of the finite values (NaN when a row has none)."""
    out = np.full(values.shape[0], np.nan)
    for i, row in enumerate(values):
        v = np.sort(row[np.isfinite(row)])[::-1]
        if len(v):
            out[i] = v[: max(1, int(round(len(v) * top)))].mean()
    return out


def mdmd_feature(features: VideoFeatures, k: int, top: float = 1 / 3) -> np.ndarray:
    """F_i per frame: the mean of the largest `top` share of the regions' MDMD values (the nose excluded)."""
    md = np.delete(features.feature(k, "mdmd"), NOSE, axis=1)
    return _top_mean(md, top)


def motion_curve(features: VideoFeatures, k: int, top: float = 1 / 3) -> np.ndarray:
    """M_t per frame: the mean of the largest `top` share of the regions' sliding-window flow magnitudes."""
    mag = np.delete(features.feature(k, "magnitude"), NOSE, axis=1)
    return _top_mean(mag, top)


def contrast(feature: np.ndarray, k: int) -> np.ndarray:
    """C_i = F_i − (F_{i−m} + F_{i+m}) / 2 with m = k − 1 (the baseline's `cmd.m`); NaN where a term is missing."""
    f = np.asarray(feature, dtype=np.float64)
    m = max(1, k - 1)
    out = np.full(len(f), np.nan)
    if len(f) > 2 * m:
        out[m:-m] = f[m:-m] - 0.5 * (f[: -2 * m] + f[2 * m :])
    return out


def threshold(curve: np.ndarray, p: float) -> tuple[float, float, float]:
    """(T, mean, max) with T = mean + p (max − mean) over the finite values; NaNs when there are none."""
    c = curve[np.isfinite(curve)]
    if not len(c):
        return float("nan"), float("nan"), float("nan")
    mean, top = float(c.mean()), float(c.max())
    return mean + p * (top - mean), mean, top


def _bounds(peak: int, k: int, motion: np.ndarray, n: int, mode: str) -> tuple[int, int]:
    """Onset and offset of the interval whose apex is `peak` (see the module docstring)."""
    lo, hi = max(0, peak - k), min(n - 1, peak + k)
    if mode == "window":
        return lo, hi
    near = motion[lo : hi + 1]
    if not np.isfinite(near).any() or np.nanmax(near) <= 0:
        return lo, hi
    above = np.nan_to_num(motion, nan=-1.0) >= EDGE_FRACTION * float(np.nanmax(near))
    start = lo + int(np.nanargmax(near))  # expand from the strongest motion near the peak while it stays above
    gap = max(2, k // 4)  # the motion dips for a moment when the window straddles the apex: bridge such dips
    left = start
    while left > 0 and above[max(0, left - gap) : left].any():
        left -= gap - int(np.flatnonzero(above[max(0, left - gap) : left])[-1]) if left >= gap else left
    right = start
    while right < n - 1 and above[right + 1 : right + 1 + gap].any():
        right += 1 + int(np.flatnonzero(above[right + 1 : right + 1 + gap])[-1])
    onset = min(max(0, left - 1), peak)  # M_t > 0 once the face moved between t - k and t
    offset = min(n - 1, max(right - k, peak))  # the window lags the end of the motion by k
    return onset, offset


def spot_baseline(features: VideoFeatures, cfg: BaselineConfig | None = None) -> SpotResult:
    """Run the baseline on extracted features, which should hold every scale's k (`required_windows`); a scale whose
    k is missing (windows planned from a frame count that was off) uses the nearest k the features hold."""
    cfg = cfg or BaselineConfig()
    n, fps = features.n_frames, features.fps
    scales: dict[str, ScaleCurve] = {}
    kept: list[Interval] = []
    for name, k in cfg.windows(fps, n).items():
        if k not in features.values:  # windows planned from a header's frame count that was off: the nearest held
            if not features.values:
                raise ValueError("the features hold no window k; extract them with required_windows(...)")
            k = min(features.values, key=lambda held: (abs(held - k), held))
        f = mdmd_feature(features, k, cfg.top)
        c = contrast(f, k)
        m = motion_curve(features, k, cfg.top)
        t, mean, top = threshold(c, cfg.p)
        scales[name] = ScaleCurve(k, f, c, m, t, mean, top)
        if not np.isfinite(t):
            continue
        filled = np.where(np.isfinite(c), c, np.nanmin(c) - 1.0)  # frames without C can never be peaks
        peaks, _ = find_peaks(filled, height=max(t, cfg.min_contrast), distance=max(1, k))
        for i in peaks:
            if not features.face[i]:
                continue
            onset, offset = _bounds(int(i), k, m, n, cfg.bounds)
            kind = "ME" if (offset - onset + 1) / fps <= cfg.me_max_seconds else "MaE"
            if kind != name and cfg.bounds == "motion":
                continue  # the baseline's length filter: each scale keeps the intervals of its own type
            strength = (float(c[i]) - mean) / (top - mean) if top > mean else 1.0
            kept.append(Interval(onset, offset, name if cfg.bounds == "window" else kind, int(i), None,
                                 round(strength, 4)))  # fmt: skip
    return SpotResult(sorted(kept, key=lambda iv: iv.onset), scales, fps, cfg)


def required_windows(fps: float, n_frames: int | None = None, cfg: BaselineConfig | None = None) -> list[int]:
    """The k values (frames) `extract_features` must compute for `spot_baseline` on `n_frames` at `fps`."""
    return sorted(set((cfg or BaselineConfig()).windows(fps, n_frames).values()))
