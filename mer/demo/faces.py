"""Faces of the demo corpus: public-domain photo bases, synthetic person-like identities, expression warps.

Faces come from the two frontal public-domain portraits that installed packages ship (scikit-image's astronaut,
matplotlib's Grace Hopper); the cameraman is not used (a three-quarter profile whose aligned crop is mostly camera).
MTCNN finds each photo's 5 landmarks once. An identity (`make_identity`) is a morph of the two photos (one weight for
the upper and one for the lower face) warped by a thin-plate spline through landmark-anchored control points to its
own geometry (face width, jaw, chin, eye spacing, brow height, nose and mouth size, a slight yaw), with its own skin
tone, skin texture, background, gamma and contrast, and its own head pose. Every sample is then rendered
(`render`) as a clip whose expression warp (Gaussian displacement bumps on the action units of its class) rises from
neutral to an apex and falls back (`micro_levels`, `macro_levels`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from mer.demo.spec import NEG, POS, SUR, DemoSpec
from mer.errors import DataError

BASE_PHOTOS = ("astronaut", "grace_hopper")  # frontal portraits; the cameraman (a profile) is left out on purpose

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

# Each class's bumps in action-unit groups (indices into EXPRESSIONS[label]); a micro clip may show only some groups
# (`DemoSpec.au_dropout`), as real ones often do (AU12 without AU6, AU4 without AU15, brows without the jaw).
AU_GROUPS: dict[str, tuple[tuple[int, ...], ...]] = {
    POS: ((0, 1), (2, 3)),
    NEG: ((0, 1), (2, 3)),
    SUR: ((0, 1, 2, 3), (4, 5)),
}
# Movements that belong to no class (`DemoSpec.distractors` per micro clip on average): blinks, lid and nose
# movements, chin and dimpler, one-sided brow and lip-corner movements, inner brows. Some rise with the expression,
# others are still fading at the onset, so the onset → apex motion carries them as well as the apex frame: real onsets
# are rarely a still, neutral face.
DISTRACTORS: dict[str, list[_Bump]] = {
    "AU45 blink": [("le", (0.0, -0.1), (0.0, 1.0)), ("re", (0.0, -0.1), (0.0, 1.0))],
    "AU5 lids up": [("le", (0.0, -0.12), (0.0, -0.8)), ("re", (0.0, -0.12), (0.0, -0.8))],
    "AU9 nose wrinkle": [("no", (-0.15, -0.2), (0.2, -0.8)), ("no", (0.15, -0.2), (-0.2, -0.8))],
    "AU14 dimpler": [("ml", (-0.05, 0.0), (-1.0, 0.0)), ("mr", (0.05, 0.0), (1.0, 0.0))],
    "AU17 chin up": [("mc", (0.0, 0.45), (0.0, -1.0))],
    "AU4 one brow": [("le", (0.25, -0.35), (0.6, 0.8))],
    "AU2 one brow": [("re", (0.2, -0.4), (0.0, -0.9))],
    "AU1 inner brows": [("le", (0.25, -0.35), (0.0, -0.8)), ("re", (-0.25, -0.35), (0.0, -0.8))],
    "AU12 one side": [("mr", (0.05, 0.0), (0.55, -0.85))],
    "AU15 one side": [("ml", (0.0, 0.02), (-0.1, 1.0))],
}

# Talking-like mouth movement of the long videos (`mer.demo.longvideos`): lower lip and jaw down, lips narrowing; its
# level oscillates at a syllable rate, so it moves the mouth as strongly as an expression but belongs to no class.
TALKING: list[_Bump] = [
    ("mc", (0.0, 0.14), (0.0, 1.0)),
    ("mc", (0.0, 0.5), (0.0, 0.9)),
    ("ml", (-0.05, 0.0), (0.6, 0.0)),
    ("mr", (0.05, 0.0), (-0.6, 0.0)),
]

# Control points of the identity geometry, (anchor, offset in face units in the eye frame). The thin-plate spline
# moves them by the identity's geometry parameters (GEOMETRY) and carries the face along; a ring of far points stays.
CONTROL: dict[str, tuple[str, tuple[float, float]]] = {
    "le": ("le", (0.0, 0.0)), "re": ("re", (0.0, 0.0)), "nose": ("nose", (0.0, 0.0)),
    "ml": ("ml", (0.0, 0.0)), "mr": ("mr", (0.0, 0.0)),
    "brow_lo": ("le", (-0.25, -0.36)), "brow_li": ("le", (0.22, -0.38)),
    "brow_ri": ("re", (-0.22, -0.38)), "brow_ro": ("re", (0.25, -0.36)),
    "temple_l": ("le", (-0.62, -0.2)), "temple_r": ("re", (0.62, -0.2)),
    "cheek_l": ("le", (-0.55, 0.5)), "cheek_r": ("re", (0.55, 0.5)),
    "wing_l": ("nose", (-0.22, -0.02)), "wing_r": ("nose", (0.22, -0.02)),
    "lip_top": ("mc", (0.0, -0.1)), "lip_low": ("mc", (0.0, 0.14)),
    "jaw_l": ("ml", (-0.38, 0.42)), "jaw_r": ("mr", (0.38, 0.42)), "chin": ("mc", (0.0, 0.68)),
    "forehead": ("eyes", (0.0, -0.95)),
}  # fmt: skip
# Identity geometry parameters: name → (std in face units, {control point: (dx, dy) per unit of the parameter}).
GEOMETRY: dict[str, tuple[float, dict[str, tuple[float, float]]]] = {
    "face_width": (0.07, {"temple_l": (-1, 0), "temple_r": (1, 0), "cheek_l": (-1, 0), "cheek_r": (1, 0)}),
    "jaw_width": (0.07, {"jaw_l": (-1, 0), "jaw_r": (1, 0)}),
    "chin_length": (0.07, {"chin": (0, 1), "jaw_l": (0, 0.4), "jaw_r": (0, 0.4)}),
    "eye_spacing": (0.045, {"le": (-1, 0), "re": (1, 0), "brow_lo": (-1, 0), "brow_li": (-1, 0),
                            "brow_ri": (1, 0), "brow_ro": (1, 0)}),
    "brow_height": (0.05, {"brow_lo": (0, -1), "brow_li": (0, -1), "brow_ri": (0, -1), "brow_ro": (0, -1)}),
    "nose_length": (0.05, {"nose": (0, 1), "wing_l": (0, 1), "wing_r": (0, 1)}),
    "nose_width": (0.04, {"wing_l": (-1, 0), "wing_r": (1, 0)}),
    "mouth_width": (0.05, {"ml": (-1, 0), "mr": (1, 0)}),
    "mouth_height": (0.04, {"ml": (0, 1), "mr": (0, 1), "lip_top": (0, 1), "lip_low": (0, 1)}),
    "lip_fullness": (0.03, {"lip_top": (0, -1), "lip_low": (0, 1)}),
    "yaw": (0.04, {"nose": (1, 0), "wing_l": (1, 0), "wing_r": (1, 0), "lip_top": (1, 0), "lip_low": (1, 0),
                   "chin": (0.8, 0), "forehead": (0.5, 0)}),
}  # fmt: skip


@dataclass
class _Base:
    """One photo with its MTCNN landmarks and face scale."""

    name: str
    image: np.ndarray  # float32 H×W×3 RGB in [0, 1]
    landmarks: np.ndarray  # (5, 2) MTCNN landmarks in photo pixels
    unit: float  # face scale in photo pixels: max(eye distance, eyes-to-mouth distance), robust to yaw


@dataclass
class Identity:
    """One synthetic person: its face image in its own frame, its pose into the output image and its lighting.

    `params` lists what makes it who it is (morph weights, geometry, tone, pose), for the corpus summary.
    """

    ident: int  # generator id: unique across every dataset of a corpus
    size: int
    photo: np.ndarray  # size×size float32 RGB: the identity's neutral face, upright and centred (its own frame)
    inv_affine: np.ndarray  # 2×3: output image → the identity's frame (its head pose)
    landmarks: np.ndarray  # (5, 2) in the output image, left/right as seen in the image
    unit: float  # face unit in output pixels
    brightness: float
    gain: np.ndarray  # (3,) colour tint of the camera
    shading: np.ndarray  # S×S additive shading (linear gradient + smooth blotches)
    params: dict[str, float] = field(default_factory=dict)


def _photos() -> dict[str, np.ndarray]:
    """The frontal public-domain photos, uint8 RGB: NASA's astronaut portrait, Grace Hopper (US Navy)."""
    import matplotlib.cbook  # local, as below: the photos are loaded only when a corpus is generated
    from skimage import data

    grace = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), cv2.IMREAD_COLOR)
    if grace is None:
        raise DataError("cannot read matplotlib's sample image grace_hopper.jpg (is matplotlib installed fully?)")
    return {"astronaut": data.astronaut()[:, :, :3], "grace_hopper": cv2.cvtColor(grace, cv2.COLOR_BGR2RGB)}


@functools.lru_cache(maxsize=1)
def photo_bases() -> tuple[_Base, ...]:
    """Detect the 5 landmarks of each photo's face with MTCNN (once per process; ~1 s in all on a CPU)."""
    from mer.face.detect import FaceDetector, pick_face  # local: MTCNN loads torch; a reused corpus needs none

    photos = _photos()
    detector = FaceDetector(device="cpu", min_face_size=20)
    found = []
    for name in BASE_PHOTOS:
        image = photos[name]
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


def _eye_frame(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(centre between eyes and mouth, unit x along the eye line, unit y down the face, face unit) of 5 landmarks."""
    ex = (lm[1] - lm[0]) / np.linalg.norm(lm[1] - lm[0])
    ey = np.array([-ex[1], ex[0]])
    unit = max(float(np.linalg.norm(lm[1] - lm[0])), float(np.linalg.norm(lm[:2].mean(0) - lm[3:].mean(0))))
    return (lm[:2].mean(0) + lm[3:].mean(0)) / 2, ex, ey, unit


def control_points(lm: np.ndarray) -> dict[str, np.ndarray]:
    """The identity-geometry control points (CONTROL) of a face with landmarks `lm` (le, re, nose, ml, mr)."""
    _, ex, ey, unit = _eye_frame(lm)
    anchors = {"le": lm[0], "re": lm[1], "nose": lm[2], "ml": lm[3], "mr": lm[4], "mc": (lm[3] + lm[4]) / 2,
               "eyes": (lm[0] + lm[1]) / 2}  # fmt: skip
    return {k: anchors[a] + (ox * ex + oy * ey) * unit for k, (a, (ox, oy)) in CONTROL.items()}


def _tps(src: np.ndarray, dst: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Thin-plate spline through src → dst (k, 2), evaluated at query (n, 2): a smooth interpolating warp."""

    def kernel(r2: np.ndarray) -> np.ndarray:
        return np.where(r2 > 0, 0.5 * r2 * np.log(np.maximum(r2, 1e-12)), 0.0)

    k = len(src)
    scale = float(np.ptp(src, axis=0).max()) or 1.0  # conditioning: solve in units of the control span
    s, q = src / scale, query / scale
    system = np.zeros((k + 3, k + 3))
    system[:k, :k] = kernel(((s[:, None] - s[None]) ** 2).sum(-1)) + 1e-8 * np.eye(k)
    system[:k, k] = system[k, :k] = 1.0
    system[:k, k + 1 :] = s
    system[k + 1 :, :k] = s.T
    rhs = np.zeros((k + 3, 2))
    rhs[:k] = dst
    coef = np.linalg.solve(system, rhs)
    return kernel(((q[:, None] - s[None]) ** 2).sum(-1)) @ coef[:k] + coef[k] + q @ coef[k + 1 :]


@functools.lru_cache(maxsize=8)
def canonical_landmarks(size: int, face_span: float) -> np.ndarray:
    """The mean landmark layout of the photo bases, upright and centred in a size×size image (face unit size/span)."""
    shapes = []
    for base in photo_bases():
        centre, ex, ey, unit = _eye_frame(base.landmarks)
        shapes.append(np.stack([((p - centre) @ ex, (p - centre) @ ey) for p in base.landmarks]) / unit)
    unit = size / face_span
    return np.mean(shapes, axis=0) * unit + size / 2


def _draw(rng: np.random.Generator, std: float) -> float:
    return float(np.clip(rng.normal(0.0, std), -2 * std, 2 * std))


def make_identity(ident: int, size: int, rng: np.random.Generator, spec: DemoSpec) -> Identity:
    """One synthetic person: a morph of the photo bases with its own geometry, skin, background, lighting and pose."""
    bases = photo_bases()
    unit = size / spec.face_span
    canon = canonical_landmarks(size, spec.face_span)
    ctrl = control_points(canon)
    params: dict[str, float] = {}
    geometry = spec.identity_geometry
    targets = {k: p.copy() for k, p in ctrl.items()}
    for name, (std, moves) in GEOMETRY.items():
        value = _draw(rng, std * geometry)
        params[name] = round(value, 4)
        for point, (dx, dy) in moves.items():
            targets[point] = targets[point] + np.array([dx, dy]) * value * unit
    names = list(ctrl)
    ring = np.stack(
        [size / 2 + 1.1 * size * np.array([math.cos(a), math.sin(a)]) for a in np.linspace(0, 2 * math.pi, 12, False)]
    )
    own = np.vstack([np.stack([targets[k] for k in names]), ring])  # control points in the identity's frame
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
    # morph weights: one for the upper face, one for the lower face, blended across the nose
    upper, lower = (float(rng.beta(0.7, 0.7)) for _ in range(2))
    params["morph_upper"], params["morph_lower"] = round(upper, 3), round(lower, 3)
    nose_y = targets["nose"][1]
    weight = upper + (lower - upper) / (1 + np.exp(-(yy - nose_y) / (0.12 * unit)))
    layers = []
    for base in bases:
        # pre-shrink the photo so one identity pixel covers about one photo pixel (area interpolation: no aliasing)
        shrink = min(1.0, 1.25 * unit / base.unit)
        photo = cv2.resize(base.image, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA) if shrink < 1 else (
            base.image)  # fmt: skip
        base_ctrl = control_points(base.landmarks * shrink)
        # the far ring maps with the similarity that takes the canonical layout onto this photo's landmarks
        sim, _ = cv2.estimateAffinePartial2D(canon.astype(np.float32), (base.landmarks * shrink).astype(np.float32))
        theirs = np.vstack([np.stack([base_ctrl[k] for k in names]), _apply(sim, ring)])
        where = _tps(own, theirs, grid).reshape(size, size, 2).astype(np.float32)
        layers.append(cv2.remap(photo, where[..., 0], where[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT))
    face = (layers[0] * (1 - weight[..., None]) + layers[1] * weight[..., None]).astype(np.float32)
    # skin: tone and texture inside a soft face ellipse; the background gets its own tint
    mid = (targets["forehead"] + targets["chin"]) / 2
    half_h = np.linalg.norm(targets["chin"] - targets["forehead"]) / 2 * 1.05
    half_w = np.linalg.norm(targets["cheek_r"] - targets["cheek_l"]) / 2 * 1.1
    mask = np.exp(-np.maximum(((xx - mid[0]) / half_w) ** 2 + ((yy - mid[1]) / half_h) ** 2 - 1, 0) * 6)
    mask = mask.astype(np.float32)[..., None]
    tone = float(rng.uniform(0.0, 1.0))  # 0: light ... 1: dark skin
    params["skin_tone"] = round(tone, 3)
    skin = np.array([1.06, 1.0, 0.96]) * (1 - tone) + np.array([0.62, 0.47, 0.38]) * tone
    texture_amp = float(rng.uniform(0.004, 0.025))
    fine = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), 0.8) * texture_amp * 2
    blotch = _smooth_noise(rng, size, 9) * float(rng.uniform(0.0, 0.05))
    texture = (1 + fine + blotch)[..., None]
    background = rng.uniform(0.75, 1.2, 3).astype(np.float32)
    face = face * (mask * skin.astype(np.float32) * texture + (1 - mask) * background)
    gamma, contrast = float(rng.uniform(0.8, 1.25)), float(rng.uniform(0.85, 1.15))
    face = ((np.clip(face, 0, 1) ** gamma - 0.5) * contrast + 0.5).astype(np.float32)
    # head pose into the output image: rotation, scale, shift, mirror
    scale = float(rng.uniform(0.93, 1.07))
    angle = float(rng.uniform(-5.0, 5.0))
    mirror = bool(rng.random() < 0.5)
    shift = rng.uniform(-0.04, 0.04, 2) * size
    centre = (canon[:2].mean(0) + canon[3:].mean(0)) / 2
    pose = _similarity(angle, scale, centre, np.array([size / 2, size / 2]) + shift, mirror)
    own_lm = np.stack([targets[k] for k in ("le", "re", "nose", "ml", "mr")])
    points = _apply(pose, own_lm)
    if mirror:  # keep "left" = left in the image after the flip
        points = points[[1, 0, 2, 4, 3]]
    params.update(angle=round(angle, 2), scale=round(scale, 3), mirror=float(mirror))
    # lighting: a linear gradient in a random direction plus smooth blotches
    gy, gx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    direction = rng.uniform(0, 2 * math.pi)
    gradient = (gx * math.cos(direction) + gy * math.sin(direction)) * rng.uniform(0.0, 0.25)
    shading = gradient + 0.035 * _smooth_noise(rng, size, 5)
    return Identity(
        ident=ident,
        size=size,
        photo=face,
        inv_affine=np.linalg.inv(pose)[:2],
        landmarks=points,
        unit=unit * scale,
        brightness=float(rng.uniform(-0.06, 0.06)),
        gain=rng.uniform(0.92, 1.08, 3).astype(np.float32),
        shading=shading.astype(np.float32),
        params=params,
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


def _bumps(
    landmarks: np.ndarray, unit: float, bumps: list[_Bump], amplitude: float, sigma: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres, vectors (pixels) and widths of displacement bumps placed around the face's landmarks."""
    le, re_, nose, ml, mr = landmarks
    anchors = {"le": le, "re": re_, "no": nose, "ml": ml, "mr": mr, "mc": (ml + mr) / 2}
    ex = (re_ - le) / np.linalg.norm(re_ - le)
    ey = np.array([-ex[1], ex[0]])
    centres, vectors = [], []
    for anchor, (ox, oy), (vx, vy) in bumps:
        centres.append(anchors[anchor] + (ox * ex + oy * ey) * unit)
        weight = rng.uniform(0.75, 1.0)
        vectors.append((vx * ex + vy * ey) * amplitude * unit * weight)
    return np.array(centres), np.array(vectors), np.full(len(centres), sigma * unit)


def _class_bumps(label: str, spec: DemoSpec, rng: np.random.Generator, nuisance: bool) -> list[_Bump]:
    """The bumps of a class; with `nuisance`, each action-unit group is left out with `spec.au_dropout` (never all)."""
    bumps = EXPRESSIONS[label]
    if not nuisance or spec.au_dropout <= 0:
        return bumps
    groups = AU_GROUPS[label]
    keep = rng.random(len(groups)) >= spec.au_dropout
    if not keep.any():
        keep[int(rng.integers(len(groups)))] = True
    return [bumps[i] for g, k in zip(groups, keep, strict=True) if k for i in g]


def _distractor_fields(
    size: int,
    landmarks: np.ndarray,
    unit: float,
    levels: np.ndarray,
    amplitude: float,
    spec: DemoSpec,
    rng: np.random.Generator,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(displacement field, level per frame) of each class-free movement of one micro clip (`DISTRACTORS`).

    Their number is Poisson(`spec.distractors`), their strength `spec.distractor_strength` times the clip's amplitude
    (× 0.5 … 1.5); a share `spec.distractor_rising` rises and falls with the expression, the others fade from full
    at the onset to nothing at the apex (they move the onset → apex motion but leave the apex frame alone).
    """
    count = int(rng.poisson(spec.distractors)) if spec.distractors > 0 else 0
    names = sorted(DISTRACTORS)
    apex = int(np.argmax(levels))
    t = np.arange(len(levels))
    out = []
    for _ in range(count):
        name = names[int(rng.integers(len(names)))]
        strength = amplitude * spec.distractor_strength * rng.uniform(0.5, 1.5)
        centres, vectors, sigma = _bumps(landmarks, unit, DISTRACTORS[name], strength, spec.sigma, rng)
        curve = levels if rng.random() < spec.distractor_rising else np.where(t <= apex, 1.0 - levels, 0.0)
        out.append((_field(size, centres, vectors, sigma), curve.astype(np.float32)))
    return out


def render(
    ident: Identity,
    label: str | None,
    levels: np.ndarray,
    amplitude: float,
    spec: DemoSpec,
    rng: np.random.Generator,
    gray: bool,
    nuisance: bool = False,
) -> list[np.ndarray]:
    """Frames of one sample: expression level `levels[t]` (0 neutral … 1 apex) → uint8 images (RGB or gray).

    `nuisance` (micro clips of the corpus): some action-unit groups left out and class-free movements added
    (`_class_bumps`, `_distractor_fields`), so that neither the apex frame nor the onset → apex motion is a clean
    copy of the class.
    """
    size = ident.size
    # a small per-sample head pose / framing change (canonical → output), constant over the clip
    scale = rng.uniform(0.98, 1.02)
    jitter = _similarity(
        rng.uniform(-1.5, 1.5), scale, np.array([size / 2, size / 2]),
        np.array([size / 2, size / 2]) + rng.uniform(-2, 2, 2) * size / 200, False,
    )  # fmt: skip
    landmarks = _apply(jitter, ident.landmarks)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    grid = np.stack([xx, yy], axis=2)
    expr = np.zeros_like(grid)
    unit = ident.unit * scale
    if label is not None and np.any(levels > 0):
        bumps = _class_bumps(label, spec, rng, nuisance)
        centres, vectors, sigma = _bumps(landmarks, unit, bumps, amplitude, spec.sigma, rng)
        expr = _field(size, centres, vectors, sigma)
    others = _distractor_fields(size, landmarks, unit, levels, amplitude, spec, rng) if nuisance else []
    to_photo = (np.vstack([ident.inv_affine, [0, 0, 1]]) @ np.linalg.inv(jitter))[:2]
    light = (ident.shading + ident.brightness + rng.normal(0.0, 0.015))[..., None]
    frames = []
    for t, level in enumerate(levels):
        moved = grid - np.float32(level) * expr
        for field_, curve in others:
            moved -= curve[t] * field_
        where = cv2.transform(moved, to_photo)  # output pixel → identity-frame coordinates
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


def movement_field(ident: Identity, bumps: list[_Bump], amplitude: float, spec: DemoSpec, rng: np.random.Generator
                   ) -> np.ndarray:  # fmt: skip
    """The displacement field (size, size, 2) of a list of bumps on an identity at its own pose, at `amplitude`."""
    centres, vectors, sigma = _bumps(ident.landmarks, ident.unit, bumps, amplitude, spec.sigma, rng)
    return _field(ident.size, centres, vectors, sigma)


def class_bumps(label: str) -> list[_Bump]:
    """The bumps of an expression class (all its action-unit groups)."""
    return EXPRESSIONS[label]


def render_timeline(
    ident: Identity,
    layers: list[tuple[np.ndarray, np.ndarray]],
    poses: np.ndarray,
    spec: DemoSpec,
    rng: np.random.Generator,
    gray: bool,
) -> Iterator[np.ndarray]:
    """Frames of a long video, one at a time: each layer is (displacement field, level per frame), summed, and the head
    pose of the frame (`poses[t]`, a 2×3 affine of the output image) moves the face; light and noise as `render`."""
    size = ident.size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    grid = np.stack([xx, yy], axis=2)
    to_photo = ident.inv_affine.astype(np.float32)
    light = (ident.shading + ident.brightness + rng.normal(0.0, 0.015))[..., None]
    for t in range(len(poses)):
        # output pixel → the face at rest (inverse head pose) → displaced by the movements → the identity's photo; the
        # fields are sampled at the output pixel (head movements are a few pixels, the fields smooth)
        moved = cv2.transform(grid, cv2.invertAffineTransform(poses[t]).astype(np.float32))
        for field_, curve in layers:
            if curve[t] != 0.0:
                moved -= np.float32(curve[t]) * field_
        where = cv2.transform(moved, to_photo)
        img = cv2.remap(ident.photo, where[..., 0], where[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        img = (img + light) * ident.gain
        if gray:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(spec.noise / 255.0)
        yield np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
