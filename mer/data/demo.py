"""The generated demo corpus: CASME II, SAMM, SMIC-HS, CK+ and JAFFE look-alikes written in the real folder layouts.

Faces come from public-domain photos that installed packages ship (scikit-image's astronaut and camera, matplotlib's
Grace Hopper). MTCNN finds each photo's 5 landmarks once; every synthetic subject is an identity variation of one
photo (similarity transform, mirror, gamma, contrast, shading, a smooth per-identity shape field) and every sample is
a clip whose landmark-driven expression warp (Gaussian displacement bumps at brows and mouth) rises from neutral to
an apex and falls back: strong for the macro sets, a few pixels for the micro sets. The coding sheets (xlsx), frame
numbering, emotion files and deliberate unusable rows follow the real datasets, so the demo runs the real readers.
The corpus is deterministic from its seed (byte-identical files) and a marker file makes re-runs instant.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import re
import shutil
import time
import zipfile
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from mer.config import CLASSES
from mer.errors import ConfigError, DataError

GENERATOR_VERSION = 1
MARKER = "demo_corpus.json"
PREVIEW = "demo_preview.png"
DATASETS = ("casme2", "samm", "smic", "ckplus", "jaffe")
MICRO = ("casme2", "samm", "smic")
MACRO = ("ckplus", "jaffe")
FOLDERS = {"casme2": "CASME2", "samm": "SAMM", "smic": "SMIC", "ckplus": "CK+", "jaffe": "JAFFE"}
CASME2_XLSX = "CASME2-coding-20140508.xlsx"
SAMM_XLSX = "SAMM_Micro_FACS_Codes_v2.xlsx"
FIXED_TIME = datetime(2014, 5, 8, 12, 0, 0)  # stamped into the xlsx files so they are byte-identical across runs
NEG, POS, SUR = CLASSES

# Original emotion labels written for each class (negatives cycle through the dataset's negative emotions).
EMOTIONS: dict[str, dict[str, list[str]]] = {
    "casme2": {NEG: ["disgust", "repression"], POS: ["happiness"], SUR: ["surprise"]},
    "samm": {NEG: ["Anger", "Contempt", "Disgust", "Fear", "Sadness"], POS: ["Happiness"], SUR: ["Surprise"]},
    "smic": {NEG: ["negative"], POS: ["positive"], SUR: ["surprise"]},
    "ckplus": {NEG: ["1", "2", "3", "4", "6"], POS: ["5"], SUR: ["7"]},  # CK+ codes: 1 anger ... 7 surprise
    "jaffe": {NEG: ["AN", "DI", "FE", "SA"], POS: ["HA"], SUR: ["SU"]},
}
ACTION_UNITS = {NEG: "4+15", POS: "6+12", SUR: "1+2+26"}
SMIC_SHORT = {NEG: "ne", POS: "po", SUR: "sur"}
JAFFE_CODES = ("KA", "KL", "KM", "KR", "MK", "NA", "NM", "TM", "UY", "YM")

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


@dataclass(frozen=True)
class DemoSpec:
    """Sizes and calibration of the demo corpus; the defaults train end to end in minutes on 2 CPU cores."""

    micro_subjects: int = 3  # subjects per micro dataset (CASME II, SAMM, SMIC)
    micro_per_class: int = 3  # clips per class per micro subject
    micro_frames: int = 9  # frames per micro clip (odd: SMIC's reader takes the middle frame as apex)
    micro_size: int = 200  # micro frame side in pixels
    ckplus_subjects: int = 8
    ckplus_per_class: int = 10  # labelled sequences per class per CK+ subject
    ckplus_unlabelled: int = 1  # sequences per CK+ subject without an emotion file (the reader skips them)
    ckplus_frames: tuple[int, int] = (6, 9)  # min, max frames per CK+ sequence (neutral → apex)
    jaffe_subjects: int = 4
    jaffe_per_class: int = 6  # labelled images per class per JAFFE subject
    jaffe_neutral: int = 2  # NE images per JAFFE subject (dropped by the protocol)
    macro_size: int = 200  # CK+ and JAFFE image side in pixels
    face_span: float = 3.8  # image side in face units (≈ eye distance): room for MTCNN's box plus the crop margin
    macro_amplitude: float = 0.12  # peak expression displacement, in face units
    micro_amplitude: float = 0.04
    amplitude_jitter: float = 0.3  # ± relative random change of the amplitude per sample
    sigma: float = 0.18  # width of each displacement bump, in face units
    identity_shape: float = 0.015  # std of the per-identity feature displacements, in face units (< micro_amplitude)
    noise: float = 2.0  # per-frame Gaussian pixel noise (0-255 scale)
    jpeg_quality: int = 92

    @classmethod
    def quick(cls) -> DemoSpec:
        """The tests' tiny corpus: 2 subjects per micro set, 2 clips per class, 7 frames, 54 macro images."""
        return cls(
            micro_subjects=2,
            micro_per_class=2,
            micro_frames=7,
            micro_size=160,
            ckplus_subjects=4,
            ckplus_per_class=1,
            ckplus_frames=(5, 7),
            jaffe_subjects=3,
            jaffe_per_class=2,
            jaffe_neutral=1,
            macro_size=160,
        )

    def validate(self) -> None:
        """ConfigError for sizes the generator or the readers cannot use."""
        problems = []
        if self.micro_frames < 5 or self.micro_frames % 2 == 0:
            problems.append(f"micro_frames={self.micro_frames} (need an odd number ≥ 5)")
        lo, hi = self.ckplus_frames
        if not 4 <= lo <= hi:
            problems.append(f"ckplus_frames={self.ckplus_frames} (need 4 ≤ min ≤ max)")
        for name in ("micro_subjects", "micro_per_class", "ckplus_subjects", "ckplus_per_class", "jaffe_subjects"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} (need ≥ 1)")
        if self.micro_subjects > 20 or self.jaffe_subjects > len(JAFFE_CODES) or self.ckplus_subjects > 90:
            problems.append("too many subjects (at most 20 per micro set, 90 CK+, 10 JAFFE)")
        if min(self.micro_size, self.macro_size) < 96:
            problems.append("micro_size/macro_size below 96 px (MTCNN needs the face larger than 40 px)")
        if problems:
            raise ConfigError("DemoSpec: " + "; ".join(problems))

    def digest(self, seed: int) -> str:
        """Hash of the generator version, the spec and the seed: names one exact corpus."""
        text = json.dumps({"version": GENERATOR_VERSION, "spec": asdict(self), "seed": seed}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class DemoSummary:
    """What was generated: dataset roots, the per-dataset × class counts a reader keeps, subjects and ground truth.

    `counts` counts manifest rows (micro: clips; CK+: the last 3 frames of each labelled sequence; JAFFE: each
    labelled image). `samples` lists every generated sample, kept or deliberately unusable (`keep`, `reason`),
    with onset/apex/offset as indices into its numerically sorted frames; `apex` maps (dataset, sample_id) of each
    kept micro clip to its true apex index.
    """

    root: Path
    roots: dict[str, Path]
    counts: pd.DataFrame
    subjects: dict[str, list[str]]
    skipped_expected: int
    seed: int
    quick: bool
    spec: DemoSpec
    samples: pd.DataFrame
    apex: dict[tuple[str, str], int]
    preview: Path
    reused: bool = False
    seconds: float = 0.0
    skipped: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """A short table for the terminal: samples per dataset and class, subjects, skips and the preview path."""
        how = "reused (same seed and spec)" if self.reused else f"generated in {self.seconds:.1f} s"
        size = "quick" if self.quick else "default"
        row = "{:<8} {:<6} {:>8} {:>9} {:>9} {:>9} {:>6} {:>8}"
        lines = [f"Demo corpus in {self.root} (seed {self.seed}, {size} size, {how})"]
        lines.append(row.format("dataset", "kind", "subjects", *CLASSES, "total", "skipped"))
        for dataset, counts in self.counts.iterrows():
            kind = "micro" if dataset in MICRO else "macro"
            values = [int(counts[c]) for c in CLASSES]
            skipped = self.skipped.get(dataset, 0)
            lines.append(row.format(dataset, kind, len(self.subjects[dataset]), *values, sum(values), skipped))
        lines += [
            "micro counts are clips, macro counts are images (CK+: the last 3 frames of each labelled sequence); "
            f"{self.skipped_expected} samples are unusable on purpose and the readers report them as skipped.",
            f"preview: {self.preview}",
        ]
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# Base faces and identities


@dataclass
class _Base:
    name: str
    image: np.ndarray  # float32 H×W×3 RGB in [0, 1]
    landmarks: np.ndarray  # (5, 2) MTCNN landmarks in photo pixels
    unit: float  # face scale in photo pixels: max(eye distance, eyes-to-mouth distance), robust to yaw


@dataclass
class _Identity:
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
    import matplotlib.cbook
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
def _bases() -> tuple[_Base, ...]:
    """Detect the 5 landmarks of each photo's face with MTCNN (once per process; ~1 s in all on a CPU)."""
    from mer.face.detect import FaceDetector, pick_face

    photos = _photos()
    detector = FaceDetector(device="cpu", min_face_size=20)
    bases = []
    for name, image in photos.items():
        face, _ = pick_face(detector.detect_one(image))
        if face is None:
            raise DataError(f"MTCNN found no face in the {name} sample photo; the demo corpus needs it")
        lm = np.round(face.landmarks, 1)  # rounding keeps tiny float differences between machines out of the corpus
        eyes_to_mouth = float(np.linalg.norm(lm[:2].mean(0) - lm[3:].mean(0)))
        unit = max(float(np.linalg.norm(lm[1] - lm[0])), eyes_to_mouth)
        bases.append(_Base(name, image.astype(np.float32) / 255.0, lm, unit))
    return tuple(bases)


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


def _make_identity(base: _Base, size: int, rng: np.random.Generator, spec: DemoSpec) -> _Identity:
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
    return _Identity(
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


def _expression(ident: _Identity, label: str, amplitude: float, sigma: float, rng: np.random.Generator):
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


def _render(
    ident: _Identity,
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


def _micro_levels(n: int, onset: int, apex: int, offset: int) -> np.ndarray:
    """Expression level per frame: 0 up to the onset, a raised-cosine rise to 1 at the apex, back to 0 at the offset."""
    t = np.arange(n, dtype=np.float64)
    up = 0.5 * (1 - np.cos(np.pi * np.clip((t - onset) / max(apex - onset, 1), 0, 1)))
    down = 0.5 * (1 - np.cos(np.pi * np.clip((offset - t) / max(offset - apex, 1), 0, 1)))
    return np.where(t <= apex, up, down)


def _macro_levels(n: int) -> np.ndarray:
    """CK+ sequence levels: neutral first frame rising to the full expression at the last frame."""
    return np.sin(0.5 * np.pi * np.arange(n) / (n - 1))


# ----------------------------------------------------------------------------------------------------------------
# Writers


def _write_image(path: Path, image: np.ndarray, spec: DemoSpec) -> None:
    """JPEG (fixed quality), PNG or TIFF by extension; colour arrays are RGB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    params = [cv2.IMWRITE_JPEG_QUALITY, spec.jpeg_quality] if path.suffix == ".jpg" else []
    if not cv2.imwrite(str(path), out, params):
        raise DataError(f"cannot write {path} (is the folder writable?)")


def _write_xlsx(path: Path, header: list[str], rows: list[list[Any]], preamble: list[list[Any]] = ()) -> None:
    """An xlsx coding sheet (openpyxl) with fixed timestamps inside and in the zip, so the bytes are reproducible."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    for line in preamble:
        ws.append(line)
    ws.append(header)
    for line in rows:
        ws.append(line)
    wb.properties.creator = "mer demo generator"
    wb.properties.created = FIXED_TIME
    buffer = io.BytesIO()
    wb.save(buffer)
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = io.BytesIO()
    with zipfile.ZipFile(buffer) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", lambda m: m.group(1) + stamp.encode(), data)
            dst.writestr(zipfile.ZipInfo(info.filename, date_time=FIXED_TIME.timetuple()[:6]), data,
                         compress_type=zipfile.ZIP_DEFLATED)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out.getvalue())


# ----------------------------------------------------------------------------------------------------------------
# The corpus plan: every sample with its layout, label and timing, before any pixel is drawn


@dataclass
class _Sample:
    dataset: str
    subject: str  # prefixed, as the readers write it (casme2/sub01)
    sample_id: str  # as the readers name it (sub01_EP02_01f, 006_1_2, s1_ne_01, S005_001, KA.HA1.39)
    label: str | None  # class of the warp; None = neutral
    emotion: str
    files: list[str]  # paths relative to the corpus root
    onset: int
    apex: int
    offset: int
    levels: np.ndarray
    amplitude: float
    identity: int
    gray: bool
    keep: bool = True
    reason: str = ""
    rows: int = 1  # manifest rows a reader makes from it when kept


def _class_plan(per_class: int, rng: np.random.Generator) -> list[str]:
    """per_class labels of each class in a shuffled order."""
    labels = [c for c in CLASSES for _ in range(per_class)]
    return [labels[i] for i in rng.permutation(len(labels))]


def _amp(base: float, spec: DemoSpec, rng: np.random.Generator) -> float:
    return base * rng.uniform(1 - spec.amplitude_jitter, 1 + spec.amplitude_jitter)


def _micro_timing(n: int, onset: int, offset: int, rng: np.random.Generator, middle: bool) -> tuple[int, np.ndarray]:
    apex = (n - 1) // 2 if middle else int(rng.integers(onset + 1, offset))
    return apex, _micro_levels(n, onset, apex, offset)


def _plan_casme2(spec: DemoSpec, rng: np.random.Generator, ids: list[int]) -> tuple[list[_Sample], list[list[Any]]]:
    n = spec.micro_frames
    numbers = sorted(rng.choice(np.arange(1, 27), spec.micro_subjects, replace=False).tolist())
    samples, sheet = [], []
    cycle = 0
    for number, ident in zip(numbers, ids, strict=True):
        sub = f"sub{number:02d}"
        labels = _class_plan(spec.micro_per_class, rng)
        episodes = rng.choice(np.arange(1, max(20, len(labels) + 3)), len(labels) + 2, replace=False)
        for k, label in enumerate([*labels, "skip_apex", "skip_fear"] if number == numbers[0] else labels):
            filename = f"EP{episodes[k]:02d}_{int(rng.integers(1, 10)):02d}{'f' if rng.random() < 0.3 else ''}"
            start = int(rng.integers(20, 300))
            apex, levels = _micro_timing(n, 0, n - 1, rng, middle=False)
            warp, keep, reason = label, True, ""
            if label == "skip_apex":  # a real CASME II quirk: the apex cell holds "/"
                warp, emotion, apex_cell = POS, "happiness", "/"
                keep, reason = False, "apex '/' is not a frame number"
            elif label == "skip_fear":  # an emotion the MEGC2019 protocol drops
                warp, emotion, apex_cell = NEG, "fear", start + apex
                keep, reason = False, "emotion 'fear' is not in the MEGC2019 3-class protocol"
            else:
                choices = EMOTIONS["casme2"][label]
                emotion = choices[cycle % len(choices)]
                cycle += 1
                apex_cell = start + apex
            files = [f"CASME2_RAW_selected/{sub}/{filename}/img{start + i}.jpg" for i in range(n)]
            samples.append(
                _Sample(
                    dataset="casme2",
                    subject=f"casme2/{sub}",
                    sample_id=f"{sub}_{filename}",
                    label=warp,
                    emotion=emotion,
                    files=files,
                    onset=0,
                    apex=apex,
                    offset=n - 1,
                    levels=levels,
                    amplitude=_amp(spec.micro_amplitude, spec, rng),
                    identity=ident,
                    gray=False,
                    keep=keep,
                    reason=reason,
                )
            )
            sheet.append([number, filename, start, apex_cell, start + n - 1, ACTION_UNITS[warp], emotion])
    return samples, sheet


def _plan_samm(spec: DemoSpec, rng: np.random.Generator, ids: list[int]) -> tuple[list[_Sample], list[list[Any]]]:
    n = spec.micro_frames
    numbers = sorted(rng.choice(np.arange(6, 38), spec.micro_subjects, replace=False).tolist())
    samples, sheet = [], []
    cycle = 0
    for number, ident in zip(numbers, ids, strict=True):
        sub = f"{number:03d}"
        labels = _class_plan(spec.micro_per_class, rng)
        if number == numbers[-1]:
            labels.append("skip_apex")
        clips = rng.choice(np.arange(10, max(80, len(labels) + 11)), len(labels), replace=False)
        for k, label in enumerate(labels):
            filename = f"{sub}_{clips[k] // 10}_{clips[k] % 10 + 1}"
            start = int(rng.integers(1000, 9000))
            onset, offset = 1, n - 2  # SAMM folders hold a neutral frame before the onset and after the offset
            apex, levels = _micro_timing(n, onset, offset, rng, middle=False)
            warp, keep, reason, apex_cell = label, True, "", start + apex
            if label == "skip_apex":  # a real SAMM quirk: apex -1 when the coders marked none
                warp, emotion, apex_cell = SUR, "Surprise", -1
                keep, reason = False, "apex frame '-1' is not a frame number"
            else:
                choices = EMOTIONS["samm"][label]
                emotion = choices[cycle % len(choices)]
                cycle += 1
            files = [f"SAMM/{sub}/{filename}/{sub}_{start + i:05d}.jpg" for i in range(n)]
            samples.append(
                _Sample(
                    dataset="samm",
                    subject=f"samm/{sub}",
                    sample_id=filename,
                    label=warp,
                    emotion=emotion,
                    files=files,
                    onset=onset,
                    apex=apex,
                    offset=offset,
                    levels=levels,
                    amplitude=_amp(spec.micro_amplitude, spec, rng),
                    identity=ident,
                    gray=True,
                    keep=keep,
                    reason=reason,
                )
            )
            sheet.append([sub, filename, f"{sub}_{k + 1}", start + onset, apex_cell, start + offset, offset - onset + 1,
                          "Micro - 1/2", ACTION_UNITS[warp], "", emotion])  # fmt: skip
    return samples, sheet


def _plan_smic(spec: DemoSpec, rng: np.random.Generator, ids: list[int]) -> list[_Sample]:
    n = spec.micro_frames
    numbers = sorted(rng.choice(np.arange(1, 21), spec.micro_subjects, replace=False).tolist())
    samples = []
    for number, ident in zip(numbers, ids, strict=True):
        sub = f"s{number}"
        seen = dict.fromkeys(CLASSES, 0)
        for label in _class_plan(spec.micro_per_class, rng):
            seen[label] += 1
            clip = f"{sub}_{SMIC_SHORT[label]}_{seen[label]:02d}"
            start = int(rng.integers(10000, 900000))
            apex, levels = _micro_timing(n, 0, n - 1, rng, middle=True)  # SMIC has no apex label: the middle frame
            files = [f"HS/{sub}/micro/{label}/{clip}/image{start + i:06d}.jpg" for i in range(n)]
            samples.append(
                _Sample(
                    dataset="smic",
                    subject=f"smic/{sub}",
                    sample_id=clip,
                    label=label,
                    emotion=label,
                    files=files,
                    onset=0,
                    apex=apex,
                    offset=n - 1,
                    levels=levels,
                    amplitude=_amp(spec.micro_amplitude, spec, rng),
                    identity=ident,
                    gray=False,
                )
            )
    return samples


def _plan_ckplus(spec: DemoSpec, rng: np.random.Generator, ids: list[int]) -> list[_Sample]:
    numbers = sorted(rng.choice(np.arange(5, 140), spec.ckplus_subjects, replace=False).tolist())
    samples = []
    cycle = 0
    lo, hi = spec.ckplus_frames
    for number, ident in zip(numbers, ids, strict=True):
        sub = f"S{number:03d}"
        labels: list[str | None] = list(_class_plan(spec.ckplus_per_class, rng))
        labels += [None] * spec.ckplus_unlabelled
        labels = [labels[i] for i in rng.permutation(len(labels))]
        for seq_i, label in enumerate(labels, start=1):
            seq = f"{seq_i:03d}"
            n = int(rng.integers(lo, hi + 1))
            stem = f"{sub}_{seq}"
            files = [f"cohn-kanade-images/{sub}/{seq}/{stem}_{i:08d}.png" for i in range(1, n + 1)]
            warp = label if label is not None else CLASSES[int(rng.integers(0, 3))]
            if label is None:  # CK+ labels only some sequences; the others have an empty Emotion folder
                emotion, keep, reason = "", False, "no emotion file (sequence not labelled)"
            else:
                choices = EMOTIONS["ckplus"][label]
                emotion = choices[cycle % len(choices)]
                cycle += 1
                keep, reason = True, ""
            samples.append(
                _Sample(
                    dataset="ckplus",
                    subject=f"ckplus/{sub}",
                    sample_id=stem,
                    label=warp,
                    emotion=emotion,
                    files=files,
                    onset=0,
                    apex=n - 1,
                    offset=n - 1,
                    levels=_macro_levels(n),
                    amplitude=_amp(spec.macro_amplitude, spec, rng),
                    identity=ident,
                    gray=True,
                    keep=keep,
                    reason=reason,
                    rows=min(3, n),
                )
            )
    return samples


def _plan_jaffe(spec: DemoSpec, rng: np.random.Generator, ids: list[int]) -> list[_Sample]:
    codes = sorted(rng.choice(np.array(JAFFE_CODES), spec.jaffe_subjects, replace=False).tolist())
    number = int(rng.integers(1, 30))
    samples = []
    for code, ident in zip(codes, ids, strict=True):
        plan: list[tuple[str | None, str]] = []
        for label in CLASSES:
            choices = EMOTIONS["jaffe"][label]
            plan += [(label, choices[i % len(choices)]) for i in range(spec.jaffe_per_class)]
        plan += [(None, "NE")] * spec.jaffe_neutral
        seen: dict[str, int] = {}
        for label, emo in sorted(plan, key=lambda p: p[1]):  # real JAFFE numbers expressions in alphabetical runs
            seen[emo] = seen.get(emo, 0) + 1
            stem = f"{code}.{emo}{seen[emo]}.{number}"
            number += 1
            keep = label is not None
            reason = "" if keep else "emotion 'neutral' is not in the MEGC2019 3-class protocol"
            levels = np.array([1.0 if keep else 0.0])
            samples.append(
                _Sample(
                    dataset="jaffe",
                    subject=f"jaffe/{code}",
                    sample_id=stem,
                    label=label,
                    emotion=emo,
                    files=[f"{stem}.tiff"],
                    onset=0,
                    apex=0,
                    offset=0,
                    levels=levels,
                    amplitude=_amp(spec.macro_amplitude, spec, rng),
                    identity=ident,
                    gray=True,
                    keep=keep,
                    reason=reason,
                )
            )
    return samples


CASME2_HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]
SAMM_HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
               "Type", "Action Units", "Notes", "Estimated Emotion"]  # fmt: skip
SAMM_PREAMBLE: list[list[Any]] = [
    ["SAMM Micro-Movement Database: FACS codes (mer demo corpus: generated, not real data)"],
    [],
    ["Onset, Apex and Offset Frame are frame numbers as in the image file names (006_05562.jpg -> 5562)."],
    ["Apex Frame -1: no apex was coded for the movement."],
    ["Estimated Emotion: Anger, Contempt, Disgust, Fear, Happiness, Sadness, Surprise, Other."],
    [],
    ["Action Units follow FACS."],
    ["Inducement Code names the stimulus video."],
    ["Duration is Offset Frame - Onset Frame + 1."],
    [],
    ["The header row is row 14, as in SAMM_Micro_FACS_Codes_v2.xlsx."],
    [],
    [],
]


def _streams(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    plan, idents, render = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    return plan, idents, render


# ----------------------------------------------------------------------------------------------------------------
# Public API


def generate_corpus(out: str | Path, seed: int = 0, quick: bool = False, spec: DemoSpec | None = None) -> DemoSummary:
    """Write the demo corpus under `out` (CASME2/, SAMM/, SMIC/, CK+/, JAFFE/, demo_preview.png) and summarise it.

    `spec` sets the sizes (default: `DemoSpec()`, or `DemoSpec.quick()` when `quick`). The same seed and spec give
    byte-identical files; when `out` already holds exactly that corpus (marker file `demo_corpus.json`), nothing is
    regenerated. A folder holding other data under those names is refused rather than overwritten.
    """
    started = time.perf_counter()
    spec = spec or (DemoSpec.quick() if quick else DemoSpec())
    spec.validate()
    out = Path(out)
    digest = spec.digest(seed)
    marker = out / MARKER
    existing = _read_marker(marker)
    if existing is not None and existing.get("digest") == digest:
        summary = _summary_from_marker(out, existing)
        if summary is not None:
            return summary
    _clear(out, existing is not None)
    out.mkdir(parents=True, exist_ok=True)
    # mark the folder as ours before writing, so an interrupted run is cleared (not refused) by the next one
    marker.write_text(json.dumps({"digest": digest, "complete": False}))

    plan_rng, ident_rng, render_rng = _streams(seed)
    bases = _bases()
    n_micro = spec.micro_subjects
    micro_ids = {d: list(range(i * n_micro, (i + 1) * n_micro)) for i, d in enumerate(MICRO)}
    first = 3 * n_micro
    macro_ids = {
        "ckplus": list(range(first, first + spec.ckplus_subjects)),
        "jaffe": list(range(first + spec.ckplus_subjects, first + spec.ckplus_subjects + spec.jaffe_subjects)),
    }
    sizes = {**dict.fromkeys(MICRO, spec.micro_size), **dict.fromkeys(MACRO, spec.macro_size)}
    identities = {
        i: _make_identity(bases[i % len(bases)], sizes[dataset], ident_rng, spec)
        for dataset, ids in {**micro_ids, **macro_ids}.items()
        for i in ids
    }

    casme2, casme2_sheet = _plan_casme2(spec, plan_rng, micro_ids["casme2"])
    samm, samm_sheet = _plan_samm(spec, plan_rng, micro_ids["samm"])
    samples = [
        *casme2,
        *samm,
        *_plan_smic(spec, plan_rng, micro_ids["smic"]),
        *_plan_ckplus(spec, plan_rng, macro_ids["ckplus"]),
        *_plan_jaffe(spec, plan_rng, macro_ids["jaffe"]),
    ]
    roots = {d: out / FOLDERS[d] for d in DATASETS}
    _write_xlsx(roots["casme2"] / CASME2_XLSX, CASME2_HEADER, casme2_sheet)
    _write_xlsx(roots["samm"] / SAMM_XLSX, SAMM_HEADER, samm_sheet, SAMM_PREAMBLE)

    from tqdm.auto import tqdm

    preview_frames: dict[int, list[np.ndarray]] = {}
    wanted = _preview_picks(samples)
    for k, sample in enumerate(tqdm(samples, desc="demo corpus", unit="sample", leave=False)):
        rng = np.random.default_rng(render_rng.integers(0, 2**63))
        frames = _render(identities[sample.identity], sample.label, sample.levels, sample.amplitude, spec, rng,
                         sample.gray)  # fmt: skip
        root = roots[sample.dataset]
        for rel, frame in zip(sample.files, frames, strict=True):
            _write_image(root / rel, frame, spec)
        if sample.dataset == "ckplus":
            seq_dir = Path(sample.files[-1]).parent.relative_to("cohn-kanade-images")
            emo_dir = root / "Emotion" / seq_dir
            emo_dir.mkdir(parents=True, exist_ok=True)
            if sample.keep:
                name = Path(sample.files[-1]).stem + "_emotion.txt"
                (emo_dir / name).write_text(f"   {float(sample.emotion):.7e}\n")
        if k in wanted:
            preview_frames[k] = frames

    table = _samples_table(samples)
    preview = _write_preview(out / PREVIEW, samples, preview_frames, wanted)
    record = {
        "digest": digest,
        "complete": True,
        "generator": GENERATOR_VERSION,
        "seed": seed,
        "quick": quick,
        "spec": asdict(spec),
        "samples": json.loads(table.to_json(orient="records")),
    }
    marker.write_text(json.dumps(record, indent=1))
    return _summary(out, table, spec, seed, quick, preview, reused=False, seconds=time.perf_counter() - started)


def load_summary(out: str | Path) -> DemoSummary:
    """The summary of a corpus generated earlier into `out` (read from its marker file), without regenerating."""
    out = Path(out)
    record = _read_marker(out / MARKER)
    summary = None if record is None else _summary_from_marker(out, record)
    if summary is None:
        raise DataError(f"no complete demo corpus in {out} (missing or stale {MARKER}); run `mer demo --data-only`")
    return summary


# ----------------------------------------------------------------------------------------------------------------
# Summary, marker and preview helpers


def _samples_table(samples: list[_Sample]) -> pd.DataFrame:
    rows = []
    for s in samples:
        folder = str(Path(s.files[0]).parent) if len(s.files) > 1 else s.files[0]
        emotion = s.emotion
        if s.dataset == "ckplus" and emotion:
            emotion = str(int(float(emotion)))
        rows.append(
            {
                "dataset": s.dataset,
                "subject": s.subject,
                "sample_id": s.sample_id,
                "kind": "micro" if s.dataset in MICRO else "macro",
                "emotion": emotion,
                "label": s.label if s.keep else "",
                "keep": s.keep,
                "reason": s.reason,
                "path": f"{FOLDERS[s.dataset]}/{folder}",
                "n_frames": len(s.files),
                "onset": s.onset,
                "apex": s.apex,
                "offset": s.offset,
                "rows": s.rows if s.keep else 0,
            }  # fmt: skip
        )
    return pd.DataFrame(rows)


def _summary(
    out: Path, table: pd.DataFrame, spec: DemoSpec, seed: int, quick: bool, preview: Path, reused: bool, seconds: float
) -> DemoSummary:
    kept = table[table["keep"]]
    counts = (
        kept.pivot_table(index="dataset", columns="label", values="rows", aggfunc="sum", fill_value=0)
        .reindex(index=list(DATASETS), columns=list(CLASSES), fill_value=0)
        .astype(int)
    )
    counts.index.name, counts.columns.name = "dataset", "label"
    subjects = {d: sorted(table.loc[table["dataset"] == d, "subject"].unique().tolist()) for d in DATASETS}
    micro = kept[kept["kind"] == "micro"]
    apex = {(d, sid): int(a) for d, sid, a in zip(micro["dataset"], micro["sample_id"], micro["apex"], strict=True)}
    skipped = {d: int(((table["dataset"] == d) & ~table["keep"]).sum()) for d in DATASETS}
    return DemoSummary(
        root=out,
        roots={d: out / FOLDERS[d] for d in DATASETS},
        counts=counts,
        subjects=subjects,
        skipped_expected=sum(skipped.values()),
        seed=seed,
        quick=quick,
        spec=spec,
        samples=table,
        apex=apex,
        preview=preview,
        reused=reused,
        seconds=seconds,
        skipped=skipped,
    )


def _read_marker(marker: Path) -> dict[str, Any] | None:
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return {}


def _summary_from_marker(out: Path, record: dict[str, Any]) -> DemoSummary | None:
    """The summary stored in the marker, or None when the corpus on disk is incomplete (then it is regenerated)."""
    if not record.get("complete"):
        return None
    try:
        table = pd.DataFrame(record["samples"])
        spec_dict = dict(record["spec"])
        spec_dict["ckplus_frames"] = tuple(spec_dict["ckplus_frames"])
        spec = DemoSpec(**{f.name: spec_dict[f.name] for f in fields(DemoSpec)})
    except (KeyError, TypeError, ValueError):
        return None
    table["keep"] = table["keep"].astype(bool)
    if not all((out / p).exists() for p in table["path"]) or not (out / PREVIEW).is_file():
        return None
    return _summary(out, table, spec, int(record["seed"]), bool(record["quick"]), out / PREVIEW, True, 0.0)


def _clear(out: Path, ours: bool) -> None:
    """Remove an older demo corpus (one with our marker); refuse to touch dataset folders we did not write."""
    present = [out / FOLDERS[d] for d in DATASETS if (out / FOLDERS[d]).exists()]
    if not present:
        return
    if not ours:
        names = ", ".join(p.name for p in present)
        raise DataError(
            f"{out} already holds {names} without a {MARKER} marker (not a mer demo corpus); "
            "choose an empty folder for the demo so real data is never overwritten"
        )
    (out / MARKER).unlink(missing_ok=True)
    for path in present:
        shutil.rmtree(path)
    (out / PREVIEW).unlink(missing_ok=True)


def _preview_picks(samples: list[_Sample]) -> dict[int, str]:
    """Indices of the samples shown in the preview, with their class: one per class per dataset from different
    subjects (JAFFE: a neutral image and one per class for each of two subjects)."""
    picks: dict[int, str] = {}
    for dataset in DATASETS:
        mine = [i for i, s in enumerate(samples) if s.dataset == dataset]
        subjects = list(dict.fromkeys(samples[i].subject for i in mine))
        if dataset == "jaffe":
            for subject in subjects[:2]:
                for label in (None, *CLASSES):
                    hit = next((i for i in mine if samples[i].subject == subject and samples[i].label == label), None)
                    if hit is not None:
                        picks[hit] = label or "neutral"
            continue
        for ci, label in enumerate(CLASSES):
            kept = [i for i in mine if samples[i].keep and samples[i].label == label]
            wanted = [i for i in kept if samples[i].subject == subjects[(ci + DATASETS.index(dataset)) % len(subjects)]]
            if kept:
                picks[(wanted or kept)[0]] = label
    return picks


def _write_preview(
    path: Path, samples: list[_Sample], frames: dict[int, list[np.ndarray]], picks: dict[int, str]
) -> Path:
    """Contact sheet, one row per dataset: micro onset / apex / |apex − onset| ×8 per class (CK+: first / last /
    |last − first| ×2); JAFFE neutral and each class for two subjects."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows: dict[str, list[tuple[str, np.ndarray, bool]]] = {d: [] for d in DATASETS}
    order = {"neutral": -1, **{c: k for k, c in enumerate(CLASSES)}}
    for i in sorted(
        picks, key=lambda k: (samples[k].subject if samples[k].dataset == "jaffe" else "", order[picks[k]])
    ):
        s, clip, label = samples[i], frames[i], picks[i]
        short = f"{s.subject.split('/')[1]} {label[:3]}"
        if s.dataset == "jaffe":
            rows[s.dataset].append((f"{s.subject.split('/')[1]} {label} ({s.emotion})", clip[0], False))
            continue
        first, peak, gain = (s.onset, s.apex, 8) if s.dataset in MICRO else (0, len(clip) - 1, 2)
        diff = np.abs(clip[peak].astype(np.float32) - clip[first].astype(np.float32))
        diff = diff.mean(axis=2) if diff.ndim == 3 else diff
        names = ("onset", f"apex #{s.apex}") if s.dataset in MICRO else ("first", "last")
        rows[s.dataset] += [
            (f"{short} {names[0]}", clip[first], False),
            (f"{short} {names[1]}", clip[peak], False),
            (f"|Δ|×{gain}", np.clip(diff * gain, 0, 255).astype(np.uint8), True),
        ]
    ncols = max(len(r) for r in rows.values())
    fig, axes = plt.subplots(len(DATASETS), ncols, figsize=(1.5 * ncols, 1.75 * len(DATASETS)), squeeze=False)
    for r, dataset in enumerate(DATASETS):
        for c in range(ncols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(rows[dataset]):
                title, image, is_diff = rows[dataset][c]
                ax.imshow(image, cmap="magma" if is_diff else "gray", vmin=0, vmax=255)
                ax.set_title(title, fontsize=6.5, pad=2)
        axes[r][0].set_ylabel(FOLDERS[dataset], fontsize=9)
    fig.suptitle("mer demo corpus (generated: public-domain photos + synthetic expression warps)", fontsize=8)
    fig.tight_layout(pad=0.3, h_pad=0.5, w_pad=0.2, rect=(0, 0, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path
