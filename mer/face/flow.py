"""Onset→apex motion on aligned faces: dense optical flow, optical strain, and one alignment for both frames.

The project's only optical-flow code: the apex spotter (`mer.face.spot`) and the motion inputs use it.

* `optical_flow(onset, apex)`: dense flow (H, W, 2) float32 in pixels, OpenCV's convention
  ``apex[y + v, x + u] ≈ onset[y, x]`` (u = flow[..., 0] horizontal, positive right; v vertical, positive down).
  ``method="farneback"`` (default, OpenCV core) or ``"tvl1"`` (Dual TV-L1, ``cv2.optflow`` from
  opencv-contrib-python-headless: ``pip install 'mer-lightning[flow-tvl1]'``).
* `optical_strain(flow)`: magnitude of the strain tensor ε = ½(∇w + ∇wᵀ) of the flow field w = (u, v),
  ``|ε| = sqrt(εxx² + εyy² + 2·εxy²)`` with ``εxx = ∂u/∂x``, ``εyy = ∂v/∂y``, ``εxy = εyx = ½(∂u/∂y + ∂v/∂x)``.
  This is Shreve et al.'s optical strain as Bi-WOOF (Liong et al. 2018) and STSTNet (Liong et al. 2019) feed it
  (OFF-ApexNet, Gan et al. 2019, takes u and v only); public re-implementations compute
  ``sqrt(u_x² + v_y² + 2·(½(u_y + v_x))²)``, the same expression.
  Derivatives here are central differences (one-sided at the border), so an affine flow gives its exact strain
  everywhere.
* `align_pair(onset, apex, landmarks, cfg)`: both frames cropped with ONE transform, the apex's alignment (its
  landmarks, roll refinement included), so landmark jitter between frames does not become flow. Rigid head motion
  between the frames (a turn or tilt of the whole head) is then removed by an ECC fit (Euclidean: rotation +
  translation) of the onset crop onto the apex crop over the inner face, composed into the onset's warp: the onset
  is still warped once, from the source image. Expression motion is local and sub-pixel to a few pixels, so the
  global rigid fit leaves it in place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from mer.config import FLOW_METHODS, FaceConfig, tvl1_available  # noqa: F401 - re-exported for the flow's users
from mer.errors import MerError
from mer.face.align import Aligned, align, canonical_landmarks, to_gray, warp_face

# OpenCV's Farneback arguments (the values the apex spotter has always used); see cv2.calcOpticalFlowFarneback.
FARNEBACK: dict[str, Any] = {
    "pyr_scale": 0.5,
    "levels": 3,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 5,
    "poly_sigma": 1.2,
    "flags": 0,
}
# OpenCV's Dual TV-L1 defaults (cv2.optflow.DualTVL1OpticalFlow_create), named as in its Python signature.
TVL1: dict[str, Any] = {
    "tau": 0.25,
    "lambda_": 0.15,
    "theta": 0.3,
    "nscales": 5,
    "warps": 5,
    "epsilon": 0.01,
    "innnerIterations": 30,
    "outerIterations": 10,
    "scaleStep": 0.8,
    "gamma": 0.0,
    "medianFiltering": 5,
}
TVL1_EXTRA = "flow-tvl1"  # the pyproject extra that brings cv2.optflow
REGISTER_MAX_DEG = 15.0  # a larger rigid correction between onset and apex is not trusted (the fit failed)


def _gray_pair(onset: np.ndarray, apex: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = to_gray(np.asarray(onset)), to_gray(np.asarray(apex))
    if a.shape != b.shape:
        raise ValueError(f"optical_flow: onset {a.shape} and apex {b.shape} differ in size (align them first)")
    if min(a.shape) < 8:
        raise ValueError(f"optical_flow: frames of {a.shape} pixels are too small for a flow field")
    return a, b


def _params(defaults: dict[str, Any], given: dict[str, Any], method: str) -> dict[str, Any]:
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"optical_flow({method}): unknown parameter(s) {unknown}; known: {sorted(defaults)}")
    return {**defaults, **given}


def optical_flow(onset: np.ndarray, apex: np.ndarray, method: str = "farneback", **params: Any) -> np.ndarray:
    """Dense onset→apex flow (H, W, 2) float32 in pixels on two aligned faces (uint8 gray/RGB; same size).

    `params` override `FARNEBACK` or `TVL1` (OpenCV's argument names). TV-L1 needs the `flow-tvl1` extra.
    """
    a, b = _gray_pair(onset, apex)
    if method == "farneback":
        p = _params(FARNEBACK, params, method)
        flow = cv2.calcOpticalFlowFarneback(a, b, None, **p)
    elif method == "tvl1":
        if not tvl1_available():
            raise MerError(
                "optical flow method 'tvl1' needs OpenCV's contrib module cv2.optflow: "
                f"pip install 'mer-lightning[{TVL1_EXTRA}]' (opencv-contrib-python-headless, the same OpenCV "
                "version as opencv-python-headless), or use method 'farneback'"
            )
        p = _params(TVL1, params, method)
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(**p)
        flow = tvl1.calc(a, b, None)
    else:
        raise ValueError(f"optical_flow: unknown method '{method}' (choose one of: {', '.join(FLOW_METHODS)})")
    return np.ascontiguousarray(flow, dtype=np.float32)


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """Optical-strain magnitude (H, W) float32 of a flow field (H, W, 2): sqrt(εxx² + εyy² + 2·εxy²).

    See the module docstring for the definition (Shreve et al., as STSTNet and Bi-WOOF use it).
    """
    w = np.asarray(flow, dtype=np.float64)
    if w.ndim != 3 or w.shape[2] != 2 or min(w.shape[:2]) < 2:
        raise ValueError(f"optical_strain: expected an (H, W, 2) flow field with H, W >= 2, got {w.shape}")
    u_y, u_x = np.gradient(w[..., 0])  # np.gradient returns d/drow (y) first, then d/dcol (x)
    v_y, v_x = np.gradient(w[..., 1])
    e_xy = 0.5 * (u_y + v_x)
    return np.sqrt(u_x**2 + v_y**2 + 2.0 * e_xy**2).astype(np.float32)


def flow_strain(onset: np.ndarray, apex: np.ndarray, method: str = "farneback", **params: Any) -> np.ndarray:
    """(H, W, 3) float32: u, v and the optical-strain magnitude of the onset→apex flow (STSTNet's input channels)."""
    flow = optical_flow(onset, apex, method, **params)
    return np.concatenate([flow, optical_strain(flow)[..., None]], axis=2)


@dataclass(frozen=True)
class AlignedPair:
    """Onset and apex crops made with one alignment; `onset_matrix` = the apex's matrix ∘ the rigid head-motion fix."""

    onset: np.ndarray
    apex: np.ndarray
    apex_matrix: np.ndarray  # 2×3 source→crop matrix of the apex (mer.face.align)
    onset_matrix: np.ndarray  # 2×3 source→crop matrix used for the onset
    registered: bool  # whether the rigid onset→apex fit was applied (False: disabled, or the fit failed)
    head_motion: tuple[float, float, float]  # rigid fit: (dx, dy) of the crop centre in crop pixels, rotation (°)


def _registration_mask(n: int) -> np.ndarray:
    """uint8 ellipse over the inner face of an n² crop (brows to chin), away from the replicated crop border."""
    lm = canonical_landmarks(FaceConfig(size=n, margin=0.0))
    u = float(lm[1, 0] - lm[0, 0])
    mask = np.zeros((n, n), dtype=np.uint8)
    centre = (round((n - 1) / 2), round(float(lm[0, 1]) + 0.45 * u))
    axes = (min(round(1.15 * u), n // 2 - 2), min(round(1.35 * u), n // 2 - 2))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 255, thickness=-1)
    return mask


def _rigid_fit(template: np.ndarray, moving: np.ndarray) -> np.ndarray | None:
    """2×3 Euclidean warp W with moving(W(x)) ≈ template(x) (cv2.findTransformECC), or None when the fit fails."""
    n = template.shape[0]
    t = cv2.GaussianBlur(template.astype(np.float32), (0, 0), 1.0)
    m = cv2.GaussianBlur(moving.astype(np.float32), (0, 0), 1.0)
    warp = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-6)
    try:
        _, warp = cv2.findTransformECC(t, m, warp, cv2.MOTION_EUCLIDEAN, criteria, _registration_mask(n), 5)
    except cv2.error:
        return None
    deg = math.degrees(math.atan2(float(warp[1, 0]), float(warp[0, 0])))
    if not np.all(np.isfinite(warp)) or abs(deg) > REGISTER_MAX_DEG or np.abs(warp[:, 2]).max() > 0.25 * n:
        return None
    return warp.astype(np.float64)


def align_pair(
    onset: np.ndarray,
    apex: np.ndarray,
    landmarks: np.ndarray,
    cfg: FaceConfig,
    box: np.ndarray | None = None,
    register: bool = True,
) -> AlignedPair:
    """Crop onset and apex with the apex's alignment (`landmarks`, `box`: the apex's detection), see module docstring.

    `register=False` applies the apex's matrix to the onset unchanged (then head motion shows up as flow).
    The eye mask, if configured, is drawn at the same place in both crops.
    """
    a: Aligned = align(apex, landmarks, cfg, box)
    plain = replace(cfg, eye_mask="none")
    onset_matrix = a.matrix
    registered, motion = False, (0.0, 0.0, 0.0)
    if register:
        apex_plain = warp_face(apex, a.matrix, plain) if cfg.eye_mask != "none" else a.crop
        warp = _rigid_fit(apex_plain, warp_face(onset, a.matrix, plain))
        if warp is not None:
            # onset_crop(W(x)) ≈ apex_crop(x), onset_crop = onset ∘ M⁻¹  ⇒  corrected source→crop matrix W⁻¹ ∘ M
            w3 = np.vstack([warp, [0.0, 0.0, 1.0]])
            m3 = np.vstack([a.matrix, [0.0, 0.0, 1.0]])
            onset_matrix = (np.linalg.inv(w3) @ m3)[:2]
            registered = True
            c = (cfg.size - 1) / 2.0
            dx, dy = warp[:, :2] @ np.array([c, c]) + warp[:, 2] - c  # where the crop centre moved to
            motion = (float(dx), float(dy), math.degrees(math.atan2(warp[1, 0], warp[0, 0])))
    onset_crop = warp_face(onset, onset_matrix, cfg, a.landmarks[:2])
    return AlignedPair(
        onset=onset_crop,
        apex=a.crop,
        apex_matrix=a.matrix,
        onset_matrix=onset_matrix,
        registered=registered,
        head_motion=motion,
    )


MOTION_VERSION = 1  # bump when `motion_channels` or `align_pair` change what a cached motion input holds


def motion_channels(onset: np.ndarray, apex: np.ndarray, mode: str, method: str = "farneback") -> np.ndarray:
    """(H, W, C) float32 network input of an aligned onset/apex pair for `data.input` = `mode`.

    ``apex_minus_onset``: apex − onset grey levels (C = 1); ``flow``: u, v in crop pixels (C = 2); ``flow_strain``:
    u, v and the optical-strain magnitude (C = 3, STSTNet's input). Scaling to the network's range happens at load.
    """
    if mode == "apex_minus_onset":
        a, b = _gray_pair(onset, apex)
        return (b.astype(np.float32) - a.astype(np.float32))[..., None]
    if mode == "flow":
        return optical_flow(onset, apex, method)
    if mode == "flow_strain":
        return flow_strain(onset, apex, method)
    raise ValueError(f"motion_channels: unknown input '{mode}' (apex_minus_onset, flow or flow_strain)")
