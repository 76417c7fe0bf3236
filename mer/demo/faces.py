"""Faces of the demo corpus: public-domain photo bases, synthetic identities, landmark-driven expression warps.

Faces come from public-domain photos that installed packages ship (scikit-image's astronaut and camera, matplotlib's
Grace Hopper). MTCNN finds each photo's 5 landmarks once; every synthetic subject is an identity variation of one
photo (similarity transform, mirror, gamma, contrast, shading, a smooth per-identity shape field) and every sample is
a clip whose expression warp (Gaussian displacement bumps at brows and mouth) rises from neutral to an apex and falls
back (`micro_levels`, `macro_levels`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from mer.demo.spec import NEG, POS, SUR, DemoSpec
from mer.errors import DataError

# Expression warps in the face frame: (landmark anchor, offset from it, displacement direction), both in units of
# the face scale (≈ eye distance), x along the eye line (left → right in the image) and y down the face.
# Anchors: le/re eyes, ml/mr mouth corners, mc mouth centre (as MTCNN's 5 landmarks give them).
_Bump = tuple[str, tuple[float, float], tuple[float, float]]
EXPRESSIONS: dict[str, list[_Bump]] = {
    POS: [  # AU12 + AU6: mouth corners up and outward, cheeks raised
        ("ml", (-0.05, 0.0), (-0.55, -0.85)),
        ("mr", (0.05, 0.0), (0.55, -0.85)),
        ("le", (0.0, 0.6), (0.0, -0.45)),
        ("re", (0.0, 0.6), (0.0, -0.45)),
    ],
    NEG: [  # AU4 + AU15: inner brows down and together, lip corners down
        ("le", (0.25, -0.35), (0.6, 0.8)),
        ("re", (-0.25, -0.35), (-0.6, 0.8)),
        ("ml", (0.0, 0.02), (-0.1, 1.0)),
        ("mr", (0.0, 0.02), (0.1, 1.0)),
    ],
    SUR: [  # AU1 + AU2 + AU26: inner and outer brows up, lower lip and jaw down
        ("le", (0.25, -0.35), (0.0, -1.0)),
        ("re", (-0.25, -0.35), (0.0, -1.0)),
        ("le", (-0.2, -0.4), (0.0, -0.9)),
        ("re", (0.2, -0.4), (0.0, -0.9)),
        ("mc", (0.0, 0.12), (0.0, 1.0)),
        ("mc", (0.0, 0.5), (0.0, 0.8)),
    ],
}


@dataclass
class _Base:
    """One photo with its MTCNN landmarks and face scale."""

    name: str
    image: np.ndarray  # float32 H×W×3 RGB in [0, 1]
    landmarks: np.ndarray  # (5, 2) MTCNN landmarks in photo pixels
    unit: float  # face scale in photo pixels: max(eye distance, eyes-to-mouth distance), robust to yaw


@dataclass
class Identity:
    """One synthetic subject: its pose into the canonical image, shape field, lighting and re-toned photo."""

    base: _Base
    size: int
    inv_affine: np.ndarray  # 2×3: canonical image → photo
    landmarks: np.ndarray  # (5, 2) in the canonical image, left/right as seen in the image
    unit: float  # face unit in canonical pixels
    shape_centres: np.ndarray  # (k, 2) identity shape-field bumps
    shape_vectors: np.ndarray  # (k, 2)
    shape_sigma: np.ndarray  # (k,)
    photo: np.ndarray  # the base photo after this identity's gamma and contrast (float32 RGB)
    brightness: float
    gain: np.ndarray  # (3,) colour tint
    shading: np.ndarray  # S×S additive shading (linear gradient + smooth blotches)


def _photos() -> dict[str, np.ndarray]:
    """The public-domain photos, uint8 RGB: NASA's astronaut portrait, the cameraman, Grace Hopper (US Navy)."""
    import matplotlib.cbook  # local, as below: the photos are loaded only when a corpus is generated
    from skimage import data

    grace = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), cv2.IMREAD_COLOR)
    if grace is None:
        raise DataError("cannot read matplotlib's sample image grace_hopper.jpg (is matplotlib installed fully?)")
    camera = data.camera()
    return {
        "astronaut": data.astronaut()[:, :, :3],
        "camera": np.repeat(camera[:, :, None], 3, axis=2),
        "grace_hopper": cv2.cvtColor(grace, cv2.COLOR_BGR2RGB),
    }


@functools.lru_cache(maxsize=1)
def photo_bases() -> tuple[_Base, ...]:
    """Detect the 5 landmarks of each photo's face with MTCNN (once per process; ~1 s in all on a CPU)."""
    from mer.face.detect import FaceDetector, pick_face  # local: MTCNN loads torch; a reused corpus needs none

    photos = _photos()
    detector = FaceDetector(device="cpu", min_face_size=20)
    found = []
    for name, image in photos.items():
        face, _ = pick_face(detector.detect_one(image))
        if face is None:
            raise DataError(f"MTCNN found no face in the {name} sample photo; the demo corpus needs it")
        lm = np.round(face.landmarks, 1)  # rounding keeps tiny float differences between machines out of the corpus
        eyes_to_mouth = float(np.linalg.norm(lm[:2].mean(0) - lm[3:].mean(0)))
        unit = max(float(np.linalg.norm(lm[1] - lm[0])), eyes_to_mouth)
        found.append(_Base(name, image.astype(np.float32) / 255.0, lm, unit))
    return tuple(found)


def _similarity(angle_deg: float, scale: float, centre: np.ndarray, target: np.ndarray, mirror: bool) -> np.ndarray:
    """3×3 matrix: move `centre` to the origin, mirror, rotate + scale, move to `target`."""
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]]) * np.array(
        [[scale, scale, 1], [scale, scale, 1], [0, 0, 1]]
    )
    flip = np.diag([-1.0 if mirror else 1.0, 1.0, 1.0])
    to_origin = np.array([[1, 0, -centre[0]], [0, 1, -centre[1]], [0, 0, 1]], dtype=np.float64)
    to_target = np.array([[1, 0, target[0]], [0, 1, target[1]], [0, 0, 1]], dtype=np.float64)
    return to_target @ rot @ flip @ to_origin


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 3×3 (or 2×3) affine matrix to (n, 2) points."""
    return points @ matrix[:2, :2].T + matrix[:2, 2]


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """A smooth random field in about [-1, 1]: cells×cells Gaussian noise upsampled with cubic interpolation."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC) / 1.5


def make_identity(base: _Base, size: int, rng: np.random.Generator, spec: DemoSpec) -> Identity:
    """One synthetic subject: a similarity-transformed, mirrored or not, re-lit and subtly re-shaped base face."""
    scale = rng.uniform(0.9, 1.1)
    angle = rng.uniform(-6.0, 6.0)
    mirror = bool(rng.random() < 0.5)
    shift = rng.uniform(-0.04, 0.04, 2) * size
    lm = base.landmarks
    centre = (lm[:2].mean(0) + lm[3:].mean(0)) / 2
    s = size / (spec.face_span * base.unit) * scale
    affine = _similarity(angle, s, centre, np.array([size / 2, size / 2]) + shift, mirror)
    points = _apply(affine, lm)
    if mirror:  # keep "left" = left in the image after the flip
        points = points[[1, 0, 2, 4, 3]]
    unit = base.unit * s
    # identity shape: bumps at the landmarks (feature spacing) plus a few broad ones elsewhere on the face
    broad = points[2] + rng.uniform(-0.9, 0.9, (6, 2)) * unit
    centres = np.vstack([points, broad])
    vectors = rng.normal(0.0, spec.identity_shape, (len(centres), 2)) * unit
    sigma = np.concatenate([np.full(5, 0.3), np.full(len(broad), 0.5)]) * unit
    # lighting: a linear gradient in a random direction plus smooth blotches
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    direction = rng.uniform(0, 2 * math.pi)
    gradient = (xx * math.cos(direction) + yy * math.sin(direction)) * rng.uniform(0.0, 0.2)
    shading = gradient + 0.035 * _smooth_noise(rng, size, 5)
    return Identity(
        base=base,
        size=size,
        inv_affine=np.linalg.inv(affine)[:2],
        landmarks=points,
        unit=unit,
        shape_centres=centres,
        shape_vectors=vectors,
        shape_sigma=sigma,
        photo=((base.image ** rng.uniform(0.8, 1.25) - 0.5) * rng.uniform(0.85, 1.15) + 0.5).astype(np.float32),
        brightness=float(rng.uniform(-0.06, 0.06)),
        gain=rng.uniform(0.92, 1.08, 3).astype(np.float32),
        shading=shading.astype(np.float32),
    )


def _field(size: int, centres: np.ndarray, vectors: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Sum of isotropic Gaussian displacement bumps on the size×size pixel grid → (size, size, 2) float32.

    Each bump is separable (a product of an x and a y Gaussian), so the field costs k outer products.
    """
    axis = np.arange(size, dtype=np.float32)
    s2 = (2 * sigma**2).astype(np.float32)[:, None]
    gx = np.exp(-((axis[None, :] - centres[:, :1].astype(np.float32)) ** 2) / s2)
    gy = np.exp(-((axis[None, :] - centres[:, 1:].astype(np.float32)) ** 2) / s2)
    return np.einsum("ky,kx,kc->yxc", gy, gx, vectors.astype(np.float32), optimize=True)


def _expression(ident: Identity, label: str, amplitude: float, sigma: float, rng: np.random.Generator):
    """Centres, vectors (pixels) and widths of one sample's expression bumps around the identity's landmarks."""
    le, re_, _, ml, mr = ident.landmarks
    anchors = {"le": le, "re": re_, "ml": ml, "mr": mr, "mc": (ml + mr) / 2}
    ex = (re_ - le) / np.linalg.norm(re_ - le)
    ey = np.array([-ex[1], ex[0]])
    u = ident.unit
    centres, vectors = [], []
    for anchor, (ox, oy), (vx, vy) in EXPRESSIONS[label]:
        centres.append(anchors[anchor] + (ox * ex + oy * ey) * u)
        weight = rng.uniform(0.75, 1.0)
        vectors.append((vx * ex + vy * ey) * amplitude * u * weight)
    return np.array(centres), np.array(vectors), np.full(len(centres), sigma * u)


def render(
    ident: Identity,
    label: str | None,
    levels: np.ndarray,
    amplitude: float,
    spec: DemoSpec,
    rng: np.random.Generator,
    gray: bool,
) -> list[np.ndarray]:
    """Frames of one sample: expression level `levels[t]` (0 neutral … 1 apex) → uint8 images (RGB or gray)."""
    size = ident.size
    # a small per-sample head pose / framing change (canonical → output), constant over the clip
    scale = rng.uniform(0.98, 1.02)
    jitter = _similarity(
        rng.uniform(-1.5, 1.5), scale, np.array([size / 2, size / 2]),
        np.array([size / 2, size / 2]) + rng.uniform(-2, 2, 2) * size / 200, False,
    )  # fmt: skip
    linear = jitter[:2, :2]
    # the identity's shape field and the expression field, carried into the output frame by the jitter
    shape = _field(size, _apply(jitter, ident.shape_centres), ident.shape_vectors @ linear.T, ident.shape_sigma * scale)
    expr = np.zeros_like(shape)
    if label is not None and np.any(levels > 0):
        centres, vectors, sigma = _expression(ident, label, amplitude, spec.sigma, rng)
        expr = _field(size, _apply(jitter, centres), vectors @ linear.T, sigma * scale)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    neutral = np.stack([xx, yy], axis=2) - shape  # output pixel → where its content sits before the expression
    to_photo = (np.vstack([ident.inv_affine, [0, 0, 1]]) @ np.linalg.inv(jitter))[:2]
    light = (ident.shading + ident.brightness + rng.normal(0.0, 0.015))[..., None]
    frames = []
    for level in levels:
        where = cv2.transform(neutral - np.float32(level) * expr, to_photo)  # output pixel → photo coordinates
        img = cv2.remap(ident.photo, where[..., 0], where[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        img = (img + light) * ident.gain
        if gray:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(spec.noise / 255.0)
        frames.append(np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8))
    return frames


def micro_levels(n: int, onset: int, apex: int, offset: int) -> np.ndarray:
    """Expression level per frame: 0 up to the onset, a raised-cosine rise to 1 at the apex, back to 0 at the offset."""
    t = np.arange(n, dtype=np.float64)
    up = 0.5 * (1 - np.cos(np.pi * np.clip((t - onset) / max(apex - onset, 1), 0, 1)))
    down = 0.5 * (1 - np.cos(np.pi * np.clip((offset - t) / max(offset - apex, 1), 0, 1)))
    return np.where(t <= apex, up, down)


def macro_levels(n: int) -> np.ndarray:
    """CK+ sequence levels: neutral first frame rising to the full expression at the last frame."""
    return np.sin(0.5 * np.pi * np.arange(n) / (n - 1))
