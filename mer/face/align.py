"""Face alignment: one affine warp from an image + 5 MTCNN landmarks to a square, eye-levelled grayscale crop.

Geometry (all rotation-invariant, measured from the landmarks, so every frame of a clip is cropped alike):

* eye midpoint ``E``, inter-eye distance ``d``, eye-line angle ``θ`` (from left to right eye);
* ``m`` = distance from ``E`` to the mouth midpoint; face scale unit ``u = max(d, m)`` (robust to yaw, which
  shortens ``d``, and to pitch, which shortens ``m``);
* the *face square* has side ``S0 = FACE_SCALE · u`` with the eye line ``EYE_LINE · S0`` below its top edge and
  its vertical centre line through ``E``. On frontal faces it matches the MTCNN box (≈ brows to chin);
* ``cfg.margin`` adds ``margin · S0`` on every side, so the crop side is ``S = S0 · (1 + 2 · margin)``;
* roll refinement (``cfg.refine_roll``, default on): MTCNN's eye landmarks come from a 48-pixel network and tilt the
  eye line by ±1–2° at random; the residual roll is then measured from the face's left-right symmetry — the rotation
  that best maps a coarse, eye-levelled face crop onto its own mirror image is twice the residual roll
  (``cv2.findTransformECC``, Euclidean motion, inner-face mask). Corrections above ``MAX_REFINE_DEG`` or a failed fit
  keep the landmark angle. On the test photos rotated by ±5–20° the eye line ends within 0.25° of level (landmark
  angle alone: up to 2.4° off). A strongly one-sided expression or side light can bias it by a fraction of a degree;
* the image is rotated about ``E`` by ``-θ`` (when ``cfg.rotate``), cropped to that square and resized to
  ``cfg.size`` — composed into one matrix and applied with a single ``cv2.warpAffine``;
* eye mask (``cfg.eye_mask``: none | rectangle | ellipse): one patch per eye, centred on the eye landmark, half-width
  ``eye_mask_width · d'`` and half-height ``eye_mask_height · d'`` where ``d'`` is the inter-eye distance in the
  crop, aligned with the eye line, filled with ``MASK_VALUE`` (0, black).

Pixels outside the source image are filled by replicating its border. When the crop is much larger than the output
the region is first shrunk with area interpolation (anti-aliasing); the geometry is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from mer.config import FaceConfig

FACE_SCALE = 2.3  # face square side in units of u = max(eye distance, eye-to-mouth distance)
EYE_LINE = 0.37  # eye line position from the top of the face square, as a fraction of its side
MASK_VALUE = 0  # grey level that fills the eye mask
REFINE_SIZE = 96  # side of the coarse crop the symmetry fit runs on
MAX_REFINE_DEG = 6.0  # larger symmetry corrections are not trusted


@dataclass(frozen=True)
class Aligned:
    """One aligned face: the crop, the source→crop matrix, the 5 landmarks in crop pixels and the roll used."""

    crop: np.ndarray
    matrix: np.ndarray
    landmarks: np.ndarray
    roll: float  # degrees the face was rotated by (eye-line angle in the source image, after refinement)
    refined: bool  # whether the symmetry fit adjusted the landmark angle


def _geometry(landmarks: np.ndarray, box: np.ndarray | None) -> tuple[np.ndarray, float, float, float]:
    """(eye midpoint, eye distance, eye angle in radians, face square side S0) from landmarks, or the box fallback."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    left, right = lm[0], lm[1]
    d = float(np.linalg.norm(right - left))
    if np.all(np.isfinite(lm)) and d >= 1.0:
        eye_mid = (left + right) / 2.0
        mouth_mid = (lm[3] + lm[4]) / 2.0
        m = float(np.linalg.norm(mouth_mid - eye_mid))
        theta = math.atan2(right[1] - left[1], right[0] - left[0])
        return eye_mid, d, theta, FACE_SCALE * max(d, m)
    if box is None:
        raise ValueError(f"degenerate landmarks (eye distance {d:.2f} px) and no box to fall back on")
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    s0 = math.sqrt(max(x2 - x1, 1.0) * max(y2 - y1, 1.0))
    # put the virtual eye line where it would sit in the face square, so the box maps to the same crop
    eye_mid = np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0 - (0.5 - EYE_LINE) * s0])
    return eye_mid, s0 / FACE_SCALE, 0.0, s0


def alignment_matrix(
    landmarks: np.ndarray, cfg: FaceConfig, box: np.ndarray | None = None, roll: float | None = None
) -> np.ndarray:
    """The 2×3 affine matrix mapping source pixel (x, y) to crop pixel coordinates (see the module docstring).

    `roll` (degrees) replaces the eye-landmark angle when given (e.g. the refined one). `box` (x1, y1, x2, y2) is
    used only when the landmarks are unusable (non-finite or eyes < 1 px apart).
    """
    eye_mid, _, theta, s0 = _geometry(landmarks, box)
    if roll is not None:
        theta = math.radians(roll)
    if not cfg.rotate:
        theta = 0.0
    n = float(cfg.size)
    side = s0 * (1.0 + 2.0 * cfg.margin)
    k = n / side
    c, s = math.cos(theta), math.sin(theta)
    rot = k * np.array([[c, s], [-s, c]])  # rotation by -θ, then scale
    centre = np.array([(n - 1.0) / 2.0, k * s0 * (cfg.margin + EYE_LINE) - 0.5])
    return np.hstack([rot, (centre - rot @ eye_mid)[:, None]])


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine matrix to (N, 2) points."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def aligned_landmarks(
    landmarks: np.ndarray, cfg: FaceConfig, box: np.ndarray | None = None, roll: float | None = None
) -> np.ndarray:
    """Where the 5 landmarks land in a crop made with `roll` (None: the eye-landmark angle), as (5, 2) (x, y)."""
    return transform_points(alignment_matrix(landmarks, cfg, box, roll), landmarks)


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 gray, RGB or RGBA image → uint8 H×W gray (ITU-R 601 weights, RGB channel order)."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return img
    if img.shape[2] == 1:
        return img[:, :, 0]
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_RGBA2GRAY)
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def _warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp only the source region the crop needs; pre-shrink it with area interpolation when downscaling > 1.25×."""
    h, w = image.shape[:2]
    inv = cv2.invertAffineTransform(matrix)
    corners = transform_points(inv, np.array([[-1, -1], [size, -1], [-1, size], [size, size]], dtype=np.float64))
    x0 = int(np.clip(math.floor(corners[:, 0].min()) - 2, 0, w - 1))
    y0 = int(np.clip(math.floor(corners[:, 1].min()) - 2, 0, h - 1))
    x1 = int(np.clip(math.ceil(corners[:, 0].max()) + 3, x0 + 1, w))
    y1 = int(np.clip(math.ceil(corners[:, 1].max()) + 3, y0 + 1, h))
    roi = to_gray(image[y0:y1, x0:x1])
    scale = math.hypot(matrix[0, 0], matrix[0, 1])  # output pixels per source pixel
    # source coords of the ROI: x = x0 + x_roi
    to_src = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    if scale < 0.8:
        p = 1.25 * scale
        rw, rh = max(1, round(roi.shape[1] * p)), max(1, round(roi.shape[0] * p))
        px, py = rw / roi.shape[1], rh / roi.shape[0]
        roi = cv2.resize(roi, (rw, rh), interpolation=cv2.INTER_AREA)
        # pixel-centre convention of cv2.resize: x_roi = (x_small + 0.5) / p - 0.5
        to_src = to_src @ np.array([[1 / px, 0.0, 0.5 / px - 0.5], [0.0, 1 / py, 0.5 / py - 0.5], [0.0, 0.0, 1.0]])
    full = np.vstack([matrix, [0.0, 0.0, 1.0]]) @ to_src
    return cv2.warpAffine(roi, full[:2], (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def draw_eye_mask(crop: np.ndarray, eyes: np.ndarray, cfg: FaceConfig, value: int = MASK_VALUE) -> np.ndarray:
    """Fill one rectangle or ellipse per eye (centres `eyes` (2, 2) in crop pixels) in place; returns `crop`."""
    if cfg.eye_mask == "none":
        return crop
    left, right = np.asarray(eyes, dtype=np.float64)[:2]
    d = float(np.linalg.norm(right - left))
    angle = math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))
    half_w, half_h = cfg.eye_mask_width * d, cfg.eye_mask_height * d
    shift = 4  # sub-pixel precision for OpenCV drawing: coordinates × 2**shift
    f = 1 << shift
    for centre in (left, right):
        if cfg.eye_mask == "ellipse":
            cv2.ellipse(
                crop,
                (round(centre[0] * f), round(centre[1] * f)),
                (round(half_w * f), round(half_h * f)),
                angle,
                0,
                360,
                int(value),
                thickness=-1,
                lineType=cv2.LINE_8,
                shift=shift,
            )
        elif cfg.eye_mask == "rectangle":
            pts = cv2.boxPoints(((float(centre[0]), float(centre[1])), (2 * half_w, 2 * half_h), angle))
            cv2.fillPoly(crop, [np.round(pts * f).astype(np.int32)], int(value), lineType=cv2.LINE_8, shift=shift)
        else:
            raise ValueError(f"face.eye_mask: unknown shape '{cfg.eye_mask}' (none, rectangle, ellipse)")
    return crop


def refine_roll(image: np.ndarray, landmarks: np.ndarray) -> tuple[float, bool]:
    """Eye-line angle in degrees, refined by the face's left-right symmetry; (angle, whether the fit was used)."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    base = math.degrees(math.atan2(lm[1, 1] - lm[0, 1], lm[1, 0] - lm[0, 0]))
    n = REFINE_SIZE
    work = FaceConfig(size=n, margin=0.0, rotate=True, eye_mask="none")
    crop = cv2.GaussianBlur(_warp(image, alignment_matrix(lm, work, roll=base), n).astype(np.float32), (0, 0), 1.0)
    mirror = np.ascontiguousarray(crop[:, ::-1])
    warp = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
    try:
        _, warp = cv2.findTransformECC(crop, mirror, warp, cv2.MOTION_EUCLIDEAN, criteria, _inner_face_mask(n), 5)
    except cv2.error:
        return base, False
    # crop ≈ mirror warped by ψ; a crop still rolled by φ has ψ = -2φ, so the source angle is base - ψ/2
    correction = -0.5 * math.degrees(math.atan2(float(warp[1, 0]), float(warp[0, 0])))
    if not math.isfinite(correction) or abs(correction) > MAX_REFINE_DEG:
        return base, False
    return base + correction, True


def _inner_face_mask(n: int) -> np.ndarray:
    """uint8 ellipse over brows, eyes, nose and mouth of an n² margin-0 crop (where a face is left-right symmetric)."""
    lm = canonical_landmarks(FaceConfig(size=n, margin=0.0))
    u = float(lm[1, 0] - lm[0, 0])
    mask = np.zeros((n, n), dtype=np.uint8)
    centre = (round((n - 1) / 2), round(float(lm[0, 1]) + 0.4 * u))
    cv2.ellipse(mask, centre, (round(0.95 * u), round(1.05 * u)), 0, 0, 360, 255, thickness=-1)
    return mask


def warp_face(image: np.ndarray, matrix: np.ndarray, cfg: FaceConfig, eyes: np.ndarray | None = None) -> np.ndarray:
    """Apply an alignment matrix to an image and draw the eye mask at `eyes` (crop pixels; default: canonical)."""
    crop = _warp(np.asarray(image), matrix, int(cfg.size))
    if cfg.eye_mask != "none":
        draw_eye_mask(crop, canonical_landmarks(cfg)[:2] if eyes is None else eyes, cfg)
    return crop


def align(image: np.ndarray, landmarks: np.ndarray, cfg: FaceConfig, box: np.ndarray | None = None) -> Aligned:
    """Like `align_face`, but also returns the matrix, the landmarks in the crop and the roll used."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    usable = bool(np.all(np.isfinite(lm)) and np.linalg.norm(lm[1] - lm[0]) >= 1.0)
    roll, refined = None, False
    if cfg.rotate and usable and cfg.refine_roll:
        roll, refined = refine_roll(image, lm)
    matrix = alignment_matrix(lm, cfg, box, roll)
    crop_lm = transform_points(matrix, lm) if usable else canonical_landmarks(cfg)
    crop = warp_face(image, matrix, cfg, crop_lm[:2])
    if roll is None:
        roll = math.degrees(math.atan2(lm[1, 1] - lm[0, 1], lm[1, 0] - lm[0, 0])) if usable and cfg.rotate else 0.0
    return Aligned(crop=crop, matrix=matrix, landmarks=crop_lm, roll=float(roll), refined=refined)


def align_face(image: np.ndarray, landmarks: np.ndarray, cfg: FaceConfig, box: np.ndarray | None = None) -> np.ndarray:
    """Image (uint8 gray/RGB) + 5 landmarks → `cfg.size`² uint8 gray crop: eye line levelled, face centred, eyes masked.

    See the module docstring for the exact geometry. `box` is a fallback for unusable landmarks only.
    """
    return align(image, landmarks, cfg, box).crop


def canonical_landmarks(cfg: FaceConfig) -> np.ndarray:
    """Where eyes and mouth land in the crop for a frontal face with mouth distance = eye distance, (5, 2)."""
    n = float(cfg.size)
    k_s0 = n / (1.0 + 2.0 * cfg.margin)  # face square side in crop pixels
    u = k_s0 / FACE_SCALE
    cx, ey = (n - 1.0) / 2.0, k_s0 * (cfg.margin + EYE_LINE) - 0.5
    return np.array(
        [[cx - u / 2, ey], [cx + u / 2, ey], [cx, ey + 0.55 * u], [cx - 0.4 * u, ey + u], [cx + 0.4 * u, ey + u]]
    )


def region_mask(cfg: FaceConfig) -> np.ndarray:
    """Boolean `cfg.size`² mask of the brow and mouth regions in a crop (for apex spotting), from the canonical face."""
    n = int(cfg.size)
    lm = canonical_landmarks(cfg)
    u = float(lm[1, 0] - lm[0, 0])
    cx, ey = float(lm[:2, 0].mean()), float(lm[0, 1])
    mask = np.zeros((n, n), dtype=bool)

    def band(x0: float, x1: float, y0: float, y1: float) -> None:
        mask[max(0, round(y0)) : min(n, round(y1)), max(0, round(x0)) : min(n, round(x1))] = True

    band(cx - 1.05 * u, cx + 1.05 * u, ey - 0.75 * u, ey - 0.2 * u)  # brows, above the eye mask
    band(cx - 0.85 * u, cx + 0.85 * u, ey + 0.6 * u, ey + 1.4 * u)  # mouth and chin
    return mask
