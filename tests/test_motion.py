"""Motion inputs and the field's baselines: optical flow and strain (mer.face.flow), onset/apex alignment, STSTNet and
OFF-ApexNet (mer.models), LBP-TOP (mer.face.lbptop).

Flow accuracy is measured on a smooth random texture (σ = 2 px Gaussian-filtered noise, 128², uint8) warped with
cubic interpolation by a known displacement field; errors are taken 16 px inside the border. Tolerances: Farneback
0.06 px per pixel for translations and 0.15 px (mean 0.05) for the affine field; TV-L1, which OpenCV's defaults
bias by a few hundredths of a pixel on these images, 0.1 px and 0.15 px (mean 0.06).
"""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import data as skdata

from mer.config import FaceConfig, load_config
from mer.errors import MerError
from mer.face.align import region_mask, transform_points
from mer.face.detect import FaceDetector
from mer.face.flow import align_pair, flow_strain, optical_flow, optical_strain, tvl1_available
from mer.face.lbptop import feature_length, lbp_top, n_bins, settings
from mer.models.off_apexnet import OFFApexNet
from mer.models.ststnet import STSTNet

N = 128
BORDER = 16
TVL1 = pytest.param(
    "tvl1",
    marks=pytest.mark.skipif(
        not tvl1_available(), reason="TV-L1 needs opencv-contrib-python-headless (pip install '.[flow-tvl1]')"
    ),
)
METHODS = ["farneback", TVL1]


def texture(n: int = N, sigma: float = 2.0, seed: int = 0) -> np.ndarray:
    """Smooth random texture in [0, 1]."""
    t = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=(n, n)), sigma)
    return (t - t.min()) / (t.max() - t.min())


def displaced(img: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The image whose pixel x + d(x) shows img(x), d(x) = a·x + b (x = (col, row)); uint8."""
    n = img.shape[0]
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    x, y = xx.copy(), yy.copy()
    for _ in range(30):  # fixed point of x = x' - d(x)
        x = xx - (a[0, 0] * x + a[0, 1] * y + b[0])
        y = yy - (a[1, 0] * x + a[1, 1] * y + b[1])
    out = ndimage.map_coordinates(img, [y, x], order=3, mode="reflect")
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def to_u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def inner(a: np.ndarray) -> np.ndarray:
    return a[BORDER:-BORDER, BORDER:-BORDER]


# ---------------------------------------------------------------- optical flow


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shift", [0.5, 1.25])
def test_flow_recovers_a_subpixel_translation(method, shift):
    base = texture()
    dx, dy = shift, -0.5 * shift
    flow = optical_flow(to_u8(base), displaced(base, np.zeros((2, 2)), np.array([dx, dy])), method)
    assert flow.shape == (N, N, 2) and flow.dtype == np.float32
    tol = 0.06 if method == "farneback" else 0.1
    err_u, err_v = np.abs(inner(flow[..., 0]) - dx), np.abs(inner(flow[..., 1]) - dy)
    assert err_u.max() < tol and err_v.max() < tol, f"{method}: max error {err_u.max():.3f}, {err_v.max():.3f} px"


@pytest.mark.parametrize("method", METHODS)
def test_flow_recovers_an_affine_field(method):
    base = texture()
    a = np.array([[0.01, 0.004], [-0.006, -0.008]])  # up to 2.6 px displacement over the image
    b = np.array([0.3, 0.2])
    flow = optical_flow(to_u8(base), displaced(base, a, b), method)
    yy, xx = np.mgrid[0:N, 0:N]
    err = np.hypot(
        flow[..., 0] - (a[0, 0] * xx + a[0, 1] * yy + b[0]), flow[..., 1] - (a[1, 0] * xx + a[1, 1] * yy + b[1])
    )
    assert inner(err).mean() < (0.05 if method == "farneback" else 0.06)
    assert inner(err).max() < 0.15
    # the field is really recovered, not just a mean shift: the flow's own spatial gradient matches a
    gy, gx = np.gradient(ndimage.gaussian_filter(flow[..., 0].astype(np.float64), 4))
    assert np.median(inner(gx)) == pytest.approx(a[0, 0], abs=0.002)


def test_flow_of_identical_frames_is_zero_and_inputs_are_checked():
    img = to_u8(texture())
    assert np.abs(inner(optical_flow(img, img))).max() < 1e-3  # (Farneback drifts by ~0.1 px at the very border)
    rgb = np.repeat(img[..., None], 3, axis=2)
    np.testing.assert_array_equal(optical_flow(rgb, rgb), optical_flow(img, img))
    with pytest.raises(ValueError, match="differ in size"):
        optical_flow(img, img[:-1])
    with pytest.raises(ValueError, match="unknown method 'raft'"):
        optical_flow(img, img, "raft")
    with pytest.raises(ValueError, match="unknown parameter"):
        optical_flow(img, img, winsize_typo=3)
    slow = optical_flow(img, displaced(texture(), np.zeros((2, 2)), np.array([1.0, 0.0])), winsize=21, levels=4)
    assert abs(float(np.median(inner(slow[..., 0]))) - 1.0) < 0.06


def test_tvl1_missing_is_a_clear_error_naming_the_extra(monkeypatch):
    img = to_u8(texture())
    monkeypatch.delattr(cv2, "optflow", raising=False)  # as with opencv-python-headless alone
    assert not tvl1_available()
    with pytest.raises(MerError, match=r"flow-tvl1.*opencv-contrib-python-headless"):
        optical_flow(img, img, "tvl1")


# ---------------------------------------------------------------- optical strain


def _field(fu, fv, n: int = 40) -> np.ndarray:
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    return np.stack([fu(xx, yy), fv(xx, yy)], axis=2).astype(np.float32)


def test_strain_of_affine_fields_equals_the_analytic_value():
    a, b, c, d = 0.03, -0.01, 0.02, -0.015  # u = a·x + b·y + 0.7, v = c·x + d·y - 0.2
    s = optical_strain(_field(lambda x, y: a * x + b * y + 0.7, lambda x, y: c * x + d * y - 0.2))
    expected = math.sqrt(a**2 + d**2 + 2 * (0.5 * (b + c)) ** 2)
    assert s.shape == (40, 40) and s.dtype == np.float32
    np.testing.assert_allclose(s, expected, rtol=1e-5)  # everywhere, border included
    # a rigid rotation has no strain (the antisymmetric part of the gradient is dropped); pure shear does
    theta = 0.02
    np.testing.assert_allclose(optical_strain(_field(lambda x, y: -theta * y, lambda x, y: theta * x)), 0, atol=1e-7)
    shear = optical_strain(_field(lambda x, y: 0.04 * y, lambda x, y: 0 * x))
    np.testing.assert_allclose(shear, math.sqrt(2 * 0.02**2), rtol=1e-5)
    # a non-uniform field: u = k·x² → εxx = 2k·x (exact for central differences in the interior)
    k = 0.001
    quad = optical_strain(_field(lambda x, y: k * x**2, lambda x, y: 0 * y))
    np.testing.assert_allclose(quad[:, 1:-1], 2 * k * np.arange(1, 39)[None, :].repeat(40, 0), rtol=1e-5)
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        optical_strain(np.zeros((5, 5)))


def test_flow_strain_stacks_u_v_and_strain():
    base = texture()
    out = flow_strain(to_u8(base), displaced(base, np.diag([0.01, 0.01]), np.zeros(2)))
    assert out.shape == (N, N, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 2], optical_strain(out[..., :2]), rtol=1e-6)
    # isotropic expansion by 1 %: strain sqrt(2)·0.01 in the middle of the face-sized texture
    assert float(np.median(inner(out[..., 2]))) == pytest.approx(math.sqrt(2) * 0.01, rel=0.35)


# ---------------------------------------------------------------- onset/apex alignment


@pytest.fixture(scope="module")
def astronaut_face() -> tuple[np.ndarray, FaceDetector]:
    return skdata.astronaut(), FaceDetector("cpu", min_face_size=40, batch_size=4)


def _head_motion(img: np.ndarray, degrees: float, shift: tuple[float, float]) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2 + 20, h / 2 - 30), degrees, 1.0)
    m[:, 2] += shift
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize(("degrees", "shift", "cfg"), [
    (4.0, (3.0, -2.0), FaceConfig(size=128, eye_mask="none")),
    (-8.0, (0.0, 0.0), FaceConfig(size=256, eye_mask="rectangle")),
])  # fmt: skip
def test_head_motion_yields_near_zero_flow_after_alignment(astronaut_face, degrees, shift, cfg):
    onset, detector = astronaut_face
    apex = _head_motion(onset, degrees, shift)  # the whole head turned: no expression at all
    face = detector.detect([apex])[0][0]
    n = cfg.size
    pair = align_pair(onset, apex, face.landmarks, cfg, face.box)
    assert pair.registered and pair.onset.shape == pair.apex.shape == (n, n)
    assert pair.head_motion[2] == pytest.approx(degrees, abs=0.25)
    mag = np.hypot(*np.moveaxis(optical_flow(pair.onset, pair.apex), 2, 0))[n // 6 : -n // 6, n // 6 : -n // 6]
    assert np.median(mag) < 0.15 and np.percentile(mag, 95) < 0.3, f"median {np.median(mag):.3f} px"
    # the same crops without the rigid fit: the head motion is flow of pixels, not tenths of one
    raw = align_pair(onset, apex, face.landmarks, cfg, face.box, register=False)
    assert not raw.registered and np.allclose(raw.onset_matrix, raw.apex_matrix)
    mag_raw = np.hypot(*np.moveaxis(optical_flow(raw.onset, raw.apex), 2, 0))[n // 6 : -n // 6, n // 6 : -n // 6]
    assert np.median(mag_raw) > 1.0
    if cfg.eye_mask != "none":  # the eye mask sits at the same place in both crops
        unmasked = align_pair(onset, apex, face.landmarks, replace(cfg, eye_mask="none"), face.box)
        np.testing.assert_array_equal(pair.onset != unmasked.onset, pair.apex != unmasked.apex)
        assert (pair.apex != unmasked.apex).sum() > 0.02 * n * n


def test_alignment_keeps_the_expression_while_removing_head_motion(astronaut_face):
    onset, detector = astronaut_face
    lm = detector.detect([onset])[0][0].landmarks
    # mouth corners pulled up by 3 source pixels (a smile), then the whole head turned by 3°
    h, w = onset.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sigma = 0.2 * float(np.linalg.norm(lm[1] - lm[0]))
    lift = sum(3.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)) for x, y in lm[3:])
    smiling = cv2.remap(onset, xx, (yy + lift).astype(np.float32), cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    apex = _head_motion(smiling, 3.0, (1.5, 0.5))
    face = detector.detect([apex])[0][0]
    cfg = FaceConfig(size=128, eye_mask="none")
    pair = align_pair(onset, apex, face.landmarks, cfg, face.box)
    flow = optical_flow(pair.onset, pair.apex)
    scale = math.hypot(*pair.apex_matrix[0, :2])  # crop pixels per source pixel
    mouth = transform_points(pair.apex_matrix, face.landmarks[3:])
    v_mouth = [float(flow[round(y) - 2 : round(y) + 3, round(x) - 2 : round(x) + 3, 1].mean()) for x, y in mouth]
    for v in v_mouth:  # upward motion of about 3 source pixels at each mouth corner
        assert -3.0 * scale * 1.4 < v < -3.0 * scale * 0.6, f"mouth corner moved {v:.2f} px, expected {-3 * scale:.2f}"
    brows = region_mask(cfg) & (np.arange(128)[:, None] < mouth[:, 1].min() - 20)
    assert np.median(np.hypot(flow[..., 0], flow[..., 1])[brows]) < 0.2  # the rest of the face is still


# ---------------------------------------------------------------- models


def _check_interface(net: torch.nn.Module, in_chans: int, embed_dim: int) -> None:
    net.eval()
    x = torch.randn(5, in_chans, 28, 28, generator=torch.Generator().manual_seed(0))
    logits, emb = net.forward_both(x)
    assert logits.shape == (5, net.num_classes) and emb.shape == (5, embed_dim) == (5, net.embed_dim)
    torch.testing.assert_close(net(x), logits)
    torch.testing.assert_close(net.embed(x), emb)
    groups = net.stage_groups()
    names = [n for g in groups.values() for n in g]
    assert sorted(names) == sorted(n for n, _ in net.named_parameters())  # every parameter in exactly one stage
    assert list(groups)[0] == "stem" and list(groups)[-1] == "head"
    assert set(net.classifier_keys()) == set(groups["head"])
    assert all(net.stage_modules()[s] for s in groups)
    # the class count only changes the classifier's keys
    other = type(net)(num_classes=5)
    own, new = net.state_dict(), other.state_dict()
    changed = {k for k in own if own[k].shape != new[k].shape}
    assert changed == set(net.classifier_keys())
    # trainable: a few Adam steps fit a tiny batch
    net.train()
    y = torch.tensor([0, 1, 2, 0, 1])
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        first = float(loss) if first is None else first
    assert float(loss) < 0.5 * first


def test_ststnet_matches_the_authors_layers_and_parameter_count():
    torch.manual_seed(0)
    net = STSTNet()
    assert net.in_chans == 3 and net.image_size == 28 and net.backbone_name == "ststnet"
    assert [s[0].out_channels for s in net.features.streams] == [3, 5, 8]
    assert sum(p.numel() for p in net.parameters()) == 1683  # 448 conv + 32 BatchNorm + 1,203 classifier
    _check_interface(net, 3, 400)  # 16 channels × 5 × 5 after the 2×2 average pool


def test_off_apexnet_matches_the_paper_layers_and_parameter_count():
    torch.manual_seed(0)
    net = OFFApexNet()
    assert net.in_chans == 2 and net.backbone_name == "off_apexnet"
    assert sum(p.numel() for p in net.parameters()) == 2_664_475  # the 2.66 M comparisons list
    assert net.features.fc1.in_features == 2 * 16 * 7 * 7
    _check_interface(net, 2, 1024)
    # one stream per flow component: the u stream never sees v
    net.eval()
    x = torch.randn(2, 2, 28, 28)
    x2 = x.clone()
    x2[:, 1] += 1.0
    seen: list[torch.Tensor] = []  # what the u stream computes inside the whole network
    hook = net.features.streams[0].register_forward_hook(lambda module, args, out: seen.append(out.detach().clone()))
    changed = not torch.allclose(net(x), net(x2))
    hook.remove()
    assert len(seen) == 2
    torch.testing.assert_close(seen[0], seen[1])  # v changed, the u stream's output did not
    assert changed  # v reaches the classifier through its own stream


def test_off_apexnet_stages_fit_the_unfreeze_schedule():
    from mer.models.unfreeze import stages_for  # lightning import: only this test needs it

    net = OFFApexNet()
    assert stages_for(net, "top1") == ["stage2", "head"]
    assert stages_for(net, "head") == ["head"] and stages_for(net, "all")[0] == "stem"
    assert stages_for(STSTNet(), "all") == ["stem", "head"]


# ---------------------------------------------------------------- LBP-TOP


@pytest.mark.parametrize(("grid", "radius", "points", "method", "length"), [
    ((4, 4), 1, 8, "uniform", 4 * 4 * 3 * 10),
    ((5, 3), (1, 2, 2), (8, 4, 4), "nri_uniform", 15 * (59 + 15 + 15)),
    ((2, 2), 2, 4, "default", 4 * 3 * 16),
])  # fmt: skip
def test_lbp_top_feature_length_and_normalisation(grid, radius, points, method, length):
    clip = np.random.default_rng(1).integers(0, 256, size=(9, 64, 48), dtype=np.uint8)
    f = lbp_top(clip, grid, radius, points, method)
    assert f.shape == (length,) == (feature_length(grid, points, method),) and f.dtype == np.float32
    p = (points,) * 3 if isinstance(points, int) else points
    sizes = [n_bins(v, method) for v in p]
    per_block = f.reshape(grid[0] * grid[1], sum(sizes))
    for start, size in zip(np.cumsum([0, *sizes[:-1]]), sizes, strict=True):
        np.testing.assert_allclose(per_block[:, start : start + size].sum(axis=1), 1.0, rtol=1e-5)


def _patch() -> np.ndarray:
    """3×3×3 volume V[t, y, x], centre 100; the voxels on no plane through the centre hold 77."""
    v = np.full((3, 3, 3), 77, dtype=np.uint8)
    v[1] = [[200, 200, 200], [0, 100, 200], [0, 0, 0]]  # XY plane (t = 1)
    v[0, 1, :] = [0, 200, 200]  # XT plane (y = 1), row t = 0
    v[2, 1, :] = [200, 0, 200]  # XT plane, row t = 2
    v[0, 0, 1], v[0, 2, 1] = 200, 0  # YT plane (x = 1), row t = 0: [200, 200, 0]
    v[2, 0, 1], v[2, 2, 1] = 0, 0  # YT plane, row t = 2: [0, 0, 0]
    return v


def test_lbp_top_hand_computed_codes_of_a_3x3x3_patch():
    """Samples p = 0..7 counter-clockwise from 'right' (up = -row); a diagonal sample at distance 1 is the bilinear
    mix 0.0858·centre + 0.2071·(its two axis neighbours) + 0.5·corner, bit = sample ≥ centre (100).

    XY [[200,200,200],[0,·,200],[0,0,0]]: right 1, up-right 1, up 1, up-left (50 + 0.5·200 = 150) 1, left 0,
      down-left 0, down 0, down-right (50 + 0 = 50) 0 → 0b00001111 = 15; uniform (2 transitions, 4 ones) → bin 4.
    XT [[0,200,200],[0,·,200],[200,0,200]]: right 1, up-right 1, up 1, up-left (50) 0, left 0,
      down-left (8.6 + 100 = 108.6) 1, down 0, down-right (150) 1 → 1+2+4+32+128 = 167; 4 transitions → bin 9.
    YT [[200,200,0],[200,·,0],[0,0,0]]: right 0, up-right (50) 0, up 1, up-left 1, left 1, down-left (50) 0,
      down 0, down-right 0 → 4+8+16 = 28; uniform, 3 ones → bin 3.
    """
    v = _patch()
    f = lbp_top(v, grid=(1, 1), radius=1, points=8, method="default").reshape(3, 256)
    expected = np.zeros((3, 256), dtype=np.float32)
    expected[[0, 1, 2], [15, 167, 28]] = 1.0
    np.testing.assert_array_equal(f, expected)
    u = lbp_top(v, grid=(1, 1)).reshape(3, 10)
    assert [int(np.argmax(r)) for r in u] == [4, 9, 3] and np.all(u.sum(axis=1) == 1)
    # the eight cube corners lie on no plane through the centre
    w = v.copy()
    w[[0, 0, 0, 0, 2, 2, 2, 2], [0, 0, 2, 2, 0, 0, 2, 2], [0, 2, 0, 2, 0, 2, 0, 2]] = 255
    np.testing.assert_array_equal(lbp_top(w, (1, 1), method="default"), f.ravel())


def test_lbptop_method_is_the_casme2_baseline_feature_with_time_radius_4():
    """conf/method/lbptop.yaml computes LBP-TOP_{4,4,4,1,1,4} (uniform patterns u2, 5×5 blocks): on the XT and YT
    planes the time neighbours are 4 frames away. A 9×3×3 clip has one centre voxel (t 4, y 1, x 1), at 100; frames 0
    and 8 hold 200 there, frames 3 and 5 hold 0, everything else 50. Its four-point XT and YT codes (16-bin
    `default`) set exactly the two time bits (1 and 3) → 2 + 8 = 10; with time radius 1 they would read frames 3 and
    5 → 0. XY (the frame alone) is 0 either way."""
    lb = settings(load_config("method/lbptop").lbptop)
    assert lb == {"grid": (5, 5), "radius": (1.0, 1.0, 1.0), "points": (4, 4, 4), "method": "nri_uniform",
                  "time_radius": 4.0}  # fmt: skip
    assert feature_length(lb["grid"], lb["points"], lb["method"]) == 25 * 3 * 15 == 1125
    v = np.full((9, 3, 3), 50, dtype=np.uint8)
    v[4, 1, 1] = 100
    v[[0, 8], 1, 1] = 200
    v[[3, 5], 1, 1] = 0
    codes = lbp_top(v, (1, 1), 1, 4, "default", time_radius=4).reshape(3, 16)
    assert [int(np.argmax(r)) for r in codes] == [0, 10, 10] and np.all(codes.sum(axis=1) == 1)
    circle = lbp_top(v[3:6], (1, 1), 1, 4, "default").reshape(3, 16)  # time radius 1: frames 3 and 5, below
    assert [int(np.argmax(r)) for r in circle] == [0, 0, 0]
    with pytest.raises(ValueError, match="whole multiple"):
        lbp_top(v, (1, 1), 2, 4, time_radius=3)
    with pytest.raises(ValueError, match="no centre voxels"):
        lbp_top(v[:8], (1, 1), 1, 4, time_radius=4)  # 8 frames: none is 4 frames from both ends


def test_lbp_top_sees_motion_on_the_time_planes_only():
    """A texture sliding right by a pixel per frame vs. the same texture still: XY codes alike, XT codes differ."""
    base = to_u8(texture(64, sigma=1.5, seed=3))
    still = np.stack([base] * 9)
    moving = np.stack([np.roll(base, t, axis=1) for t in range(9)])
    fs, fm = lbp_top(still, (1, 1)).reshape(3, 10), lbp_top(moving, (1, 1)).reshape(3, 10)
    np.testing.assert_allclose(fs[0], fm[0], atol=0.02)  # XY: the same texture
    assert np.abs(fs[1] - fm[1]).sum() > 0.3  # XT: the motion
    with pytest.raises(ValueError, match="no centre voxels"):
        lbp_top(still[:2], (1, 1))
    with pytest.raises(ValueError, match="unknown method"):
        lbp_top(still, (1, 1), method="var")
