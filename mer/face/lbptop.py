"""LBP-TOP (Zhao & Pietikäinen 2007), the MEGC2019 baseline's feature: local binary patterns on Three Orthogonal
Planes of an aligned grayscale clip, histogrammed per spatial block and concatenated.

The clip is a volume ``V[t, y, x]`` (T, H, W). Every voxel far enough from the volume's faces (``ceil(r)`` of the
planes that sample along that axis) is a centre, and gets three codes from scikit-image's `local_binary_pattern`
(circular neighbourhood of `points` samples at `radius`, bilinear interpolation off the grid):

* **XY** — the frame ``V[t]`` (rows y, columns x): appearance;
* **XT** — the row ``V[:, y, :]`` (rows t, columns x): horizontal motion over time;
* **YT** — the column ``V[:, :, x]`` (rows t, columns y): vertical motion over time.

scikit-image's sample p (p = 0..P-1) sits at angle 2πp/P counter-clockwise from "right" (+column) with "up" being
−row (an earlier frame on the XT/YT planes); bit p of the code is 1 when that sample ≥ the centre. The frame is
cut into a ``grid = (rows, cols)`` of blocks (edges ``round(linspace(0, H, rows + 1))``); each block gets one
histogram per plane over its centres, normalised to sum 1. The feature is the blocks in row-major order, each as
[XY, XT, YT] histograms: length ``rows · cols · Σ_planes n_bins(points_plane, method)``.

`method` is scikit-image's: ``uniform`` (default: rotation-invariant uniform patterns, P + 2 bins), ``nri_uniform``
(uniform patterns, P(P−1) + 3 bins; 59 for P = 8: Zhao & Pietikäinen's u2), ``ror`` or ``default`` (2^P bins).

`time_radius` makes the XT and YT neighbourhoods ellipses, as in Zhao & Pietikäinen's LBP-TOP_{P_XY,P_XT,P_YT,R_X,
R_Y,R_T}: the plane's own radius along x (XT) or y (YT) and `time_radius` along t. It must be a whole multiple k of
the plane's radius; the plane is then cut into the k sub-planes of every k-th frame, on which the ellipse is a circle
of the plane's radius. Samples on the axes (all of them for P = 4) are exact; samples between the axes are
interpolated between frames k apart instead of adjacent ones.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from mer.config import FaceConfig, LbptopConfig
from mer.constraints import LBP_METHODS as METHODS
from mer.face.align import align, warp_face

PLANES = ("xy", "xt", "yt")


def n_bins(points: int, method: str = "uniform") -> int:
    """Number of distinct codes scikit-image's `local_binary_pattern` gives for `points` samples and `method`."""
    if method == "uniform":
        return points + 2
    if method == "nri_uniform":
        return points * (points - 1) + 3
    if method in ("ror", "default"):
        return 2**points
    raise ValueError(f"LBP-TOP: unknown method '{method}' (choose one of: {', '.join(METHODS)})")


def _per_plane(value: float | Sequence[float], name: str) -> tuple[float, float, float]:
    vals = (value, value, value) if np.isscalar(value) else tuple(value)  # type: ignore[arg-type]
    if len(vals) != 3:
        raise ValueError(f"LBP-TOP: {name} takes one value or three (XY, XT, YT), got {value!r}")
    return float(vals[0]), float(vals[1]), float(vals[2])


def feature_length(grid: tuple[int, int] = (4, 4), points: int | Sequence[int] = 8, method: str = "uniform") -> int:
    """Length of the `lbp_top` vector for a block grid, points per plane and method."""
    p = [int(v) for v in _per_plane(points, "points")]
    return int(grid[0]) * int(grid[1]) * sum(n_bins(v, method) for v in p)


def _codes(plane: np.ndarray, points: int, radius: float, method: str, stretch: int = 1) -> np.ndarray:
    """Codes of every pixel of a plane; `stretch` k > 1: rows (time) sampled k times further out than columns."""
    from skimage.feature import local_binary_pattern  # local: a warm `mer prepare` never computes LBP-TOP

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a constant plane is fine: every sample equals the centre
        if stretch == 1:
            return local_binary_pattern(plane, points, radius, method).astype(np.int64)
        out = np.zeros(plane.shape, np.int64)
        for r in range(stretch):  # every k-th row: the ellipse (radius along columns, k·radius along rows) is a circle
            out[r::stretch] = local_binary_pattern(plane[r::stretch], points, radius, method)
        return out


def _stretch(time_radius: float, radius: float) -> int:
    k = time_radius / radius
    if k < 1 or abs(k - round(k)) > 1e-9:
        raise ValueError(
            f"LBP-TOP: time_radius {time_radius} must be a whole multiple (≥ 1) of the plane's radius {radius}"
        )
    return int(round(k))


def lbp_top(
    clip: np.ndarray | Sequence[np.ndarray],
    grid: tuple[int, int] = (4, 4),
    radius: float | Sequence[float] = 1.0,
    points: int | Sequence[int] = 8,
    method: str = "uniform",
    time_radius: float | None = None,
) -> np.ndarray:
    """LBP-TOP feature (float32, `feature_length(grid, points, method)`) of an aligned gray clip (T, H, W).

    `radius` and `points`: one value for all planes or three (XY, XT, YT). `time_radius`: the XT/YT radius along t
    (None: the plane's radius, circles). Non-uint8 input is clipped to 0..255 and rounded first (LBP compares grey
    levels; float noise would flip codes).
    """
    vol = np.asarray(clip)
    if vol.ndim != 3:
        raise ValueError(f"LBP-TOP: expected a gray clip (T, H, W), got shape {vol.shape}")
    if vol.dtype != np.uint8:
        vol = np.clip(np.rint(vol.astype(np.float64)), 0, 255).astype(np.uint8)
    r_xy, r_xt, r_yt = _per_plane(radius, "radius")
    p_xy, p_xt, p_yt = (int(v) for v in _per_plane(points, "points"))
    bins = [n_bins(p_xy, method), n_bins(p_xt, method), n_bins(p_yt, method)]
    rows, cols = int(grid[0]), int(grid[1])
    t_len, h, w = vol.shape
    k_xt = 1 if time_radius is None else _stretch(time_radius, r_xt)
    k_yt = 1 if time_radius is None else _stretch(time_radius, r_yt)
    # borders: x is sampled by XY and XT, y by XY and YT, t by XT and YT (k times their radius)
    bx, by, bt = math.ceil(max(r_xy, r_xt)), math.ceil(max(r_xy, r_yt)), math.ceil(max(k_xt * r_xt, k_yt * r_yt))
    if rows < 1 or cols < 1 or h - 2 * by < rows or w - 2 * bx < cols or t_len - 2 * bt < 1:
        raise ValueError(
            f"LBP-TOP: a {t_len}×{h}×{w} clip has no centre voxels for radius {radius} and grid {grid} "
            f"(needs T > {2 * bt}, H ≥ {2 * by + rows}, W ≥ {2 * bx + cols})"
        )
    ts, ys, xs = slice(bt, t_len - bt), slice(by, h - by), slice(bx, w - bx)
    xy = np.stack([_codes(vol[t], p_xy, r_xy, method)[ys, xs] for t in range(bt, t_len - bt)])  # (T', H', W')
    xt = np.stack([_codes(vol[:, y, :], p_xt, r_xt, method, k_xt)[ts, xs] for y in range(by, h - by)], axis=1)
    yt = np.stack([_codes(vol[:, :, x], p_yt, r_yt, method, k_yt)[ts, ys] for x in range(bx, w - bx)], axis=2)
    # block index of every centre (y, x); blocks cut the whole frame, so the geometry does not depend on the radius
    y_edges = np.round(np.linspace(0, h, rows + 1)).astype(int)
    x_edges = np.round(np.linspace(0, w, cols + 1)).astype(int)
    row_of = np.searchsorted(y_edges, np.arange(by, h - by), side="right") - 1
    col_of = np.searchsorted(x_edges, np.arange(bx, w - bx), side="right") - 1
    block = (row_of[:, None] * cols + col_of[None, :])[None].repeat(xy.shape[0], axis=0).ravel()
    n_blocks = rows * cols
    hists = []
    for codes, nb in zip((xy, xt, yt), bins, strict=True):
        counts = np.bincount(block * nb + codes.ravel(), minlength=n_blocks * nb).reshape(n_blocks, nb)
        totals = counts.sum(axis=1, keepdims=True)
        hists.append(counts / np.maximum(totals, 1))
    return np.concatenate(hists, axis=1).ravel().astype(np.float32)


LBPTOP_VERSION = 2  # bump when the clip sampling or the feature code changes (the settings are in the cache key)


def settings(cfg: LbptopConfig) -> dict[str, object]:
    """`lbp_top` keyword arguments of an `lbptop` config: per-plane radii (XY: R_X, XT: R_X, YT: R_Y), R_T."""
    r_x, r_y, r_t = (float(v) for v in cfg.radius)
    return {
        "grid": (int(cfg.grid[0]), int(cfg.grid[1])),
        "radius": (r_x, r_x, r_y),
        "points": tuple(int(v) for v in cfg.points),
        "method": cfg.method,
        "time_radius": r_t,
    }


def min_frames(cfg: LbptopConfig) -> int:
    """Fewest frames a clip needs for one centre voxel: 2·ceil(R_T) + 1."""
    return 2 * math.ceil(float(cfg.radius[2])) + 1


def clip_indices(onset: int, offset: int, most: int = 30) -> list[int]:
    """Frame indices onset..offset, evenly thinned to at most `most` (both ends kept)."""
    n = offset - onset + 1
    if n <= most:
        return list(range(onset, offset + 1))
    return sorted({int(round(v)) for v in np.linspace(onset, offset, most)})


def aligned_clip_lbptop(
    frames: Sequence[np.ndarray], reference: np.ndarray, landmarks: np.ndarray, cfg: FaceConfig,
    box: np.ndarray | None = None, *, lbptop: LbptopConfig,
) -> np.ndarray:  # fmt: skip
    """LBP-TOP (the `lbptop` settings) of a clip, every frame warped with the transform that aligns the `reference`
    frame (the apex) from its 5 `landmarks`, then resized to at most `lbptop.size`: one geometry for the whole clip,
    so head jitter between frames is not read as texture change. Shared by `mer prepare` and STR."""
    import cv2

    ref = align(reference, landmarks, cfg, box)
    clip = [warp_face(frame, ref.matrix, cfg, ref.landmarks[:2]) for frame in frames]
    side = min(cfg.size, int(lbptop.size))
    if side != cfg.size:
        clip = [cv2.resize(c, (side, side), interpolation=cv2.INTER_AREA) for c in clip]
    return lbp_top(np.stack(clip), **settings(lbptop))  # type: ignore[arg-type]
