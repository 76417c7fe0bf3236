"""Face pipeline on real photos shipped by installed packages: MTCNN → roll → crop → eye mask, cache, apex spotting.

MTCNN runs on the CPU (~0.05–0.5 s a call); detections are shared through module-scoped fixtures.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import cv2
import matplotlib.cbook as cbook
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from mer.config import FaceConfig
from mer.data.prepared import REBUILD_HINT
from mer.errors import DataError
from mer.face.align import (
    MASK_VALUE,
    align,
    align_face,
    aligned_landmarks,
    alignment_matrix,
    canonical_landmarks,
    region_mask,
    transform_points,
    warp_face,
)
from mer.face.cache import CropCache, config_hash, detection_hash
from mer.face.detect import FaceDetector
from mer.face.spot import spot_apex
from mer.files import read_gray

ALPHAS = (-20.0, -15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0)


def _rotate(image: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate about the image centre (counter-clockwise on screen); returns the image and its 2×3 matrix."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT), m


def _eye_angle(landmarks: np.ndarray) -> float:
    v = landmarks[1] - landmarks[0]
    return math.degrees(math.atan2(v[1], v[0]))


def _rotation_of(matrix: np.ndarray) -> float:
    return math.degrees(math.atan2(matrix[1, 0], matrix[0, 0]))


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector("cpu", min_face_size=40, batch_size=16)


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        grace = np.asarray(Image.open(fh).convert("RGB"))
    return {"astronaut": skdata.astronaut(), "grace_hopper": grace}


@pytest.fixture(scope="module")
def rotated(photos, detector) -> dict[str, dict]:
    """Each photo rotated by ALPHAS, detected in one batch; `roll` = the photo's eye-line angle, averaged over all
    rotations from MTCNN landmarks alone (an estimate independent of the symmetry refinement being tested)."""
    out = {}
    for name, img in photos.items():
        pairs = [_rotate(img, a) for a in ALPHAS]
        faces = detector.detect([p[0] for p in pairs])
        assert all(len(f) == 1 for f in faces), f"{name}: expected one face in every rotation"
        roll = float(np.mean([_eye_angle(f[0].landmarks) + a for f, a in zip(faces, ALPHAS, strict=True)]))
        out[name] = {
            "images": [p[0] for p in pairs],
            "matrices": [p[1] for p in pairs],
            "faces": [f[0] for f in faces],
            "roll": roll,
        }
    return out


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_alignment_levels_rotated_photos_within_one_degree(rotated, name):
    cfg = FaceConfig(eye_mask="none")
    r = rotated[name]
    for alpha, img, m_rot, face in zip(ALPHAS, r["images"], r["matrices"], r["faces"], strict=True):
        if alpha == 0:
            continue
        result = align(img, face.landmarks, cfg, face.box)
        # rotation from the original photo into the crop, applied to the photo's eye line
        full = np.vstack([result.matrix, [0, 0, 1]]) @ np.vstack([m_rot, [0, 0, 1]])
        residual = r["roll"] + _rotation_of(full)
        assert abs(residual) < 1.0, f"{name} rotated {alpha}°: eye line at {residual:.2f}° in the crop"
        assert result.refined
    # without the pipeline the eye line would be far from level
    assert max(abs(r["roll"] - a) for a in ALPHAS) > 15


def test_crop_is_square_uint8_gray_for_colour_and_gray_input(rotated):
    face = rotated["astronaut"]["faces"][4]
    img = rotated["astronaut"]["images"][4]
    cfg = FaceConfig()
    colour = align_face(img, face.landmarks, cfg, face.box)
    gray = align_face(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), face.landmarks, cfg, face.box)
    for crop in (colour, gray):
        assert crop.shape == (256, 256) and crop.dtype == np.uint8
    assert np.abs(colour.astype(int) - gray.astype(int)).mean() < 1.0
    small = align_face(img, face.landmarks, replace(cfg, size=112), face.box)
    assert small.shape == (112, 112)


@pytest.mark.parametrize("shape", ["rectangle", "ellipse"])
def test_eye_mask_covers_both_eyes(rotated, shape):
    r = rotated["grace_hopper"]
    img, face = r["images"][2], r["faces"][2]  # rotated by -10°
    cfg = FaceConfig(eye_mask=shape, eye_mask_width=0.4, eye_mask_height=0.2)
    masked = align(img, face.landmarks, cfg, face.box)
    plain = align(img, face.landmarks, replace(cfg, eye_mask="none"), face.box)
    d = float(np.linalg.norm(masked.landmarks[1] - masked.landmarks[0]))
    for x, y in masked.landmarks[:2]:
        xi, yi = round(x), round(y)
        patch = masked.crop[yi - 3 : yi + 4, xi - 3 : xi + 4]
        assert np.all(patch == MASK_VALUE), f"eye at ({x:.1f}, {y:.1f}) not masked"
        assert np.any(plain.crop[yi - 3 : yi + 4, xi - 3 : xi + 4] != MASK_VALUE)
        # the mask reaches eye_mask_width × d to the sides and eye_mask_height × d up and down, not further
        assert masked.crop[yi, round(x + 0.35 * d)] == MASK_VALUE and masked.crop[round(y + 0.17 * d), xi] == MASK_VALUE
        assert masked.crop[round(y + 0.3 * d), xi] == plain.crop[round(y + 0.3 * d), xi]
    # nose and mouth untouched
    changed = masked.crop != plain.crop
    assert not changed[round(masked.landmarks[2, 1]) :, :].any()
    area = changed.sum() / (d * d)
    expected = 2 * (0.8 * 0.4 if shape == "rectangle" else math.pi * 0.4 * 0.2)
    assert expected * 0.85 < area < expected * 1.15


def test_geometry_is_centred_and_scale_normalised_without_mtcnn():
    """Pure function: a tilted, scaled synthetic landmark set lands on the canonical positions."""
    cfg = FaceConfig(size=200, margin=0.1)
    base = canonical_landmarks(FaceConfig(size=100, margin=0.0))
    theta = math.radians(12)
    rot = 3.0 * np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    lm = base @ rot.T + np.array([400.0, 250.0])
    out = aligned_landmarks(lm, cfg)
    expected = canonical_landmarks(cfg)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert abs(_eye_angle(out)) < 1e-9
    # rotate=False keeps the tilt but the same eye midpoint and scale
    flat = aligned_landmarks(lm, replace(cfg, rotate=False))
    assert abs(_eye_angle(flat) - 12.0) < 1e-6
    np.testing.assert_allclose(flat[:2].mean(axis=0), expected[:2].mean(axis=0), atol=1e-6)
    # a bigger margin shrinks the face in the crop by (1 + 2·margin)
    wide = aligned_landmarks(lm, replace(cfg, margin=0.5))
    ratio = np.linalg.norm(out[1] - out[0]) / np.linalg.norm(wide[1] - wide[0])
    assert ratio == pytest.approx(2.0 / 1.2)


def test_downscaled_warp_matches_native_resolution(photos, rotated):
    """The anti-aliased path for big images gives the same crop as the native one (geometry is exact)."""
    img = photos["astronaut"]
    face = rotated["astronaut"]["faces"][4]
    cfg = FaceConfig(size=128, eye_mask="none")
    m1 = alignment_matrix(face.landmarks, cfg)
    big = cv2.resize(img, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    lm4 = (face.landmarks + 0.5) * 4 - 0.5
    m4 = alignment_matrix(lm4, cfg)
    np.testing.assert_allclose(transform_points(m4, lm4), transform_points(m1, face.landmarks), atol=1e-6)
    a, b = warp_face(img, m1, cfg), warp_face(big, m4, cfg)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 3.0


def test_box_fallback_and_degenerate_input():
    img = skdata.astronaut()
    nan = np.full((5, 2), np.nan)
    crop = align_face(img, nan, FaceConfig(size=64), box=np.array([180.0, 60.0, 268.0, 172.0]))
    assert crop.shape == (64, 64) and crop.dtype == np.uint8
    with pytest.raises(ValueError, match="degenerate landmarks"):
        align_face(img, nan, FaceConfig(size=64))


# ---------------------------------------------------------------- cache


def _write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok = cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image)
    assert ok
    return path


class CountingDetector(FaceDetector):
    """A real MTCNN detector that counts the images it is asked about."""

    def __init__(self, shared: FaceDetector) -> None:
        super().__init__("cpu", shared.min_face_size, shared.batch_size)
        self._mtcnn = shared.mtcnn
        self.images = 0

    def detect(self, images):
        self.images += len(images)
        return super().detect(images)


@pytest.fixture(scope="module")
def image_files(tmp_path_factory, photos) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("images")
    astro = photos["astronaut"]
    two = np.full((600, 1100, 3), 128, dtype=np.uint8)
    two[:, :512] = photos["grace_hopper"]
    two[44:556, 560:1072] = astro
    return {
        "astronaut": _write(root / "astronaut.png", astro),
        "astronaut_copy": _write(root / "sub" / "same_bytes.png", astro),
        "grace": _write(root / "grace.jpg", photos["grace_hopper"]),
        "brick": _write(root / "brick.png", skdata.brick()),
        "two_faces": _write(root / "two.png", two),
        "not_an_image": root / "broken.png",
        "missing": root / "missing.png",
    }


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, detector, image_files):
    """One cold run over every kind of input; the detector counts its images."""
    (image_files["not_an_image"]).write_bytes(b"this is not a png")
    cache_dir = tmp_path_factory.mktemp("cache")
    cfg = FaceConfig(size=128)
    counting = CountingDetector(detector)
    cache = CropCache(cache_dir, cfg, detector=counting, progress=False)
    paths = [
        image_files[k]
        for k in ("astronaut", "grace", "brick", "two_faces", "astronaut_copy", "not_an_image", "missing")
    ]
    results = cache.get_or_make(paths)
    return cache_dir, cfg, counting, paths, results


def test_cache_cold_run_results_and_reasons(first_run):
    _, cfg, counting, paths, results = first_run
    astro, grace, brick, two, copy, broken, missing = results
    assert counting.images == 4  # the copy with identical bytes is detected once; unreadable files never
    for r in (astro, grace, two, copy):
        assert r.ok and r.crop is not None and r.crop.is_file()
        crop = read_gray(r.crop)
        assert crop.shape == (128, 128) and crop.dtype == np.uint8
    assert copy.crop == astro.crop and copy.source == str(paths[4])
    assert not brick.ok and brick.reason == "no face found" and brick.crop is None
    assert two.ok and two.n_faces == 2 and "2 faces found; used the largest" in two.note
    # the largest face is Grace Hopper's, on the left half
    assert two.box is not None and two.box[2] < 512
    assert not broken.ok and "cannot decode image" in broken.reason
    assert not missing.ok and missing.reason == "file not found"


def test_cache_hit_path_runs_no_detection(first_run, monkeypatch):
    cache_dir, cfg, _, paths, cold = first_run

    def refuse(self, images):
        raise AssertionError("MTCNN called on a warm cache")

    monkeypatch.setattr(FaceDetector, "detect", refuse)
    warm = CropCache(cache_dir, cfg, progress=False)  # builds no detector unless needed
    results = warm.get_or_make(paths[:5])
    assert warm._detector is None
    assert all(r.cached for r in results)
    for a, b in zip(cold[:5], results, strict=True):
        assert (a.ok, a.crop, a.reason, a.note) == (b.ok, b.crop, b.reason, b.note)
    assert warm.stats["hits"] == 5 and warm.stats["detected"] == 0


def test_changing_alignment_setting_reuses_detections_but_makes_new_crops(first_run, monkeypatch):
    cache_dir, cfg, _, paths, cold = first_run
    calls = []
    monkeypatch.setattr(FaceDetector, "detect", lambda self, images: calls.append(len(images)))
    changed = replace(cfg, eye_mask="ellipse", workers=2)  # workers: decode/align in a thread pool
    assert config_hash(changed) != config_hash(cfg) and detection_hash(changed) == detection_hash(cfg)
    cache = CropCache(cache_dir, changed, progress=False)
    res = cache.get_or_make(paths[:4])
    assert calls == [] and not any(r.cached for r in res)
    assert [r.ok for r in res] == [c.ok for c in cold[:4]]
    assert res[0].crop != cold[0].crop
    assert not np.array_equal(read_gray(res[0].crop), read_gray(cold[0].crop))
    assert cache.stats == {"hits": 0, "detected": 0, "aligned": 3, "failed": 1}


def test_changing_detection_setting_reruns_detection(first_run, detector):
    cache_dir, cfg, _, paths, _ = first_run
    changed = replace(cfg, min_face_size=60)
    assert detection_hash(changed) != detection_hash(cfg)
    counting = CountingDetector(detector)
    counting.min_face_size = 60
    res = CropCache(cache_dir, changed, detector=counting, progress=False).get_or_make([paths[0]])[0]
    assert counting.images == 1 and res.ok


def test_missing_crop_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="re-run `mer prepare`") as err:
        read_gray(tmp_path / "nope.png", hint=REBUILD_HINT)
    assert str(err.value).startswith(f"{tmp_path / 'nope.png'}: file not found")


# ---------------------------------------------------------------- apex spotting


def make_clip(
    face: np.ndarray,
    mouth: np.ndarray,
    eye_distance: float,
    n: int,
    k: int,
    amplitude: float,
    noise: float,
    seed: int = 0,
    burst_at: int | None = None,
) -> list[np.ndarray]:
    """A clip of a face whose mouth corners rise and spread smoothly, strongest at frame k, with per-frame noise
    (and optionally one very noisy frame) and sub-pixel head jitter."""
    rng = np.random.default_rng(seed)
    h, w = face.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sigma = 0.25 * eye_distance
    bumps = [
        (np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)), side)
        for (x, y), side in zip(mouth, (-1, 1), strict=True)
    ]
    frames = []
    for t in range(n):
        amp = amplitude * math.exp(-((t - k) ** 2) / (2 * 2.5**2))
        dx = sum(side * 0.5 * amp * g for g, side in bumps)
        dy = sum(-amp * g for g, _ in bumps)
        jitter = rng.uniform(-0.5, 0.5, size=2)
        map_x = (xx - dx + jitter[0]).astype(np.float32)
        map_y = (yy - dy + jitter[1]).astype(np.float32)
        frame = cv2.remap(face.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        sd = 4 * noise if t == burst_at else noise
        frames.append(np.clip(frame + rng.normal(0, sd, frame.shape), 0, 255).astype(np.uint8))
    return frames


@pytest.fixture(scope="module")
def aligned_astronaut(rotated):
    face = rotated["astronaut"]["faces"][4]
    cfg = FaceConfig()
    return align(rotated["astronaut"]["images"][4], face.landmarks, cfg, face.box), cfg


@pytest.mark.parametrize(("k", "burst"), [(7, None), (12, 3), (18, 14)])
def test_spot_apex_finds_the_strongest_warp(aligned_astronaut, k, burst):
    a, cfg = aligned_astronaut
    d = float(np.linalg.norm(a.landmarks[1] - a.landmarks[0]))
    clip = make_clip(a.crop, a.landmarks[3:], d, n=25, k=k, amplitude=2.5, noise=5.0, seed=k, burst_at=burst)
    idx, scores = spot_apex(clip, region_mask(cfg))
    assert abs(idx - k) <= 1, f"spotted {idx}, warp strongest at {k}"
    assert scores.shape == (25,) and scores[idx] == scores.max()
    # also without a region mask
    assert abs(spot_apex(clip)[0] - k) <= 1


def test_spot_apex_input_checks():
    with pytest.raises(ValueError, match="at least one frame"):
        spot_apex([])
    frame = np.zeros((32, 32), np.uint8)
    idx, scores = spot_apex([frame, frame])
    assert idx in (0, 1) and len(scores) == 2
