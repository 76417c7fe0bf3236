"""The MEGC baseline's arithmetic on hand-made curves, and the region statistics on hand-made flow fields."""

from __future__ import annotations

import numpy as np
import pytest

from mer.spotting.baseline import BaselineConfig, _bounds, contrast, spot_baseline, threshold
from mer.spotting.features import (
    FEATURES,
    NOSE,
    REGIONS,
    VideoFeatures,
    flow_stats,
    mdmd_regions,
    region_boxes,
)
from mer.spotting.track import TrackStats
from mer.spotting.video import fps_from_timestamps


def test_contrast_is_f_minus_the_mean_of_its_neighbours_m_equals_k_minus_1() -> None:
    f = np.array([0.0, 1.0, 4.0, 9.0, 16.0, 25.0, 36.0])
    c = contrast(f, k=3)  # m = 2: C_i = F_i - (F_{i-2} + F_{i+2}) / 2
    assert np.isnan(c[:2]).all() and np.isnan(c[-2:]).all()
    assert c[2:5] == pytest.approx([4 - (0 + 16) / 2, 9 - (1 + 25) / 2, 16 - (4 + 36) / 2])


def test_threshold_is_mean_plus_p_times_max_minus_mean() -> None:
    c = np.array([np.nan, 0.0, 1.0, 2.0, 5.0])
    t, mean, top = threshold(c, 0.25)
    assert (mean, top) == (2.0, 5.0) and t == pytest.approx(2.0 + 0.25 * 3.0)
    assert np.isnan(threshold(np.full(3, np.nan), 0.5)[0])


def test_windows_follow_fps_and_halve_for_short_videos() -> None:
    cfg = BaselineConfig()
    assert cfg.windows(30.0) == {"ME": 12, "MaE": 39}  # the MEGC2020 baseline's k on CAS(ME)^2
    assert cfg.windows(200.0) == {"ME": 80, "MaE": 260}  # and on SAMM-LV
    assert cfg.windows(30.0, n_frames=150) == {"ME": 12, "MaE": 20}  # 150 < 6 * 39: halved once (auto_k)
    with pytest.raises(ValueError, match="p must be"):
        BaselineConfig(p=1.0)


def test_window_bounds_are_head_and_tail_frames_and_motion_bounds_follow_the_motion() -> None:
    m = np.zeros(100)
    assert _bounds(50, 10, m, 100, "window") == (40, 60)
    m[30:45] = 1.0  # motion seen by the sliding window from frame 30 to 44 (k = 10)
    assert _bounds(38, 10, m, 100, "motion") == (29, 38)  # onset one frame before; offset = 44 - 10 < apex → apex
    m[46:70] = 1.0  # a dip of one frame (< k / 4) is bridged
    assert _bounds(38, 10, m, 100, "motion") == (29, 59)


def _features(mdmd: np.ndarray, magnitude: np.ndarray, fps: float, k: int) -> VideoFeatures:
    n = len(mdmd)
    values = np.full((n, len(REGIONS), len(FEATURES)), np.nan, dtype=np.float32)
    values[:, :, FEATURES.index("mdmd")] = mdmd[:, None]
    values[:, :, FEATURES.index("magnitude")] = magnitude[:, None]
    face = np.ones(n, dtype=bool)
    return VideoFeatures("x.mp4", fps, "given", np.arange(n) / fps, face, {k: values}, [(0, n - 1)], 1,
                         np.zeros((n, 5, 2)), np.zeros((n, 4)), TrackStats())  # fmt: skip


def test_baseline_spots_one_bump_as_an_me_with_its_apex() -> None:
    fps, n = 30.0, 200
    cfg = BaselineConfig(k_seconds={"ME": 0.2}, p=0.5, min_contrast=0.0)
    k = cfg.windows(fps)["ME"]  # 6 frames
    t = np.arange(n)
    mdmd = np.exp(-((t - 100) ** 2) / (2 * 2.0**2)) + 0.01 * np.sin(t)  # one MDMD bump at frame 100
    motion = ((t >= 96) & (t <= 108)).astype(float)  # the face moves from 96 to 102 (seen until 102 + k)
    res = spot_baseline(_features(mdmd, motion, fps, k), cfg)
    assert len(res.intervals) == 1
    iv = res.intervals[0]
    assert (iv.onset, iv.apex, iv.offset, iv.kind) == (95, 100, 102, "ME")
    # the same bump without a floor spotted; with a floor above it, nothing (a video without expression)
    assert spot_baseline(_features(mdmd, motion, fps, k), BaselineConfig(k_seconds={"ME": 0.2}, min_contrast=2.0)
                         ).intervals == []  # fmt: skip


def test_no_face_frames_are_never_an_apex() -> None:
    fps, n = 30.0, 200
    cfg = BaselineConfig(k_seconds={"ME": 0.2}, min_contrast=0.0, bounds="window")
    t = np.arange(n)
    feats = _features(np.exp(-((t - 100) ** 2) / 8.0), np.ones(n), fps, 6)
    feats.face[100] = False
    assert all(iv.apex != 100 for iv in spot_baseline(feats, cfg).intervals)


def test_region_statistics_remove_head_motion_and_mdmd_compares_head_to_current_and_tail() -> None:
    size = 96
    lm = np.array([[33.0, 38.0], [63.0, 38.0], [48.0, 55.0], [36.0, 70.0], [60.0, 70.0]])
    boxes = region_boxes(lm, size)
    assert boxes.shape == (len(REGIONS), 4) and (boxes[:, 1] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 2]).all()
    assert boxes[REGIONS.index("brow_left"), 1] <= boxes[REGIONS.index("eye_left"), 1]  # brows above the eyes
    head = np.zeros((size, size, 2), np.float32) + np.array([1.5, -0.5], np.float32)  # the whole head moved
    stats = flow_stats(head, boxes)
    assert stats[NOSE, :2] == pytest.approx([1.5, -0.5]) and np.delete(stats, NOSE, axis=0)[:, 2] == pytest.approx(0)
    d = head.copy()
    y0, y1, x0, x1 = boxes[REGIONS.index("mouth_left")]
    d[y0:y1, x0:x1] += np.array([-2.0, -1.0], np.float32)  # the left mouth corner moves out and up on top of it
    stats = flow_stats(d, boxes)
    assert stats[REGIONS.index("mouth_left")] == pytest.approx([-2.0, -1.0, np.hypot(2.0, 1.0)], abs=1e-5)
    md_back = mdmd_regions(d, head, boxes)  # tail frame = neutral again: |D| - |E| = |D| there
    md_held = mdmd_regions(d, d, boxes)  # tail frame still moved: no difference (a held expression)
    assert md_back[REGIONS.index("mouth_left")] == pytest.approx(np.hypot(2.0, 1.0), abs=1e-5)
    assert md_held[REGIONS.index("mouth_left")] == pytest.approx(0.0, abs=1e-5)


def test_fps_from_timestamps_uses_elapsed_time_and_refuses_broken_clocks() -> None:
    assert fps_from_timestamps([0.0, 0.04, 0.08, 0.12]) == pytest.approx(25.0)
    vfr = [i / 30 for i in range(10)] + [9 / 30 + j / 15 for j in range(1, 11)]  # 30 fps, then 15 fps
    assert fps_from_timestamps(vfr) == pytest.approx(19 / (9 / 30 + 10 / 15))
    assert fps_from_timestamps([0.0, 0.0, 0.0, 0.0]) is None and fps_from_timestamps([0.0, 0.1]) is None


def test_a_missing_window_falls_back_to_the_nearest_one_the_features_hold() -> None:
    fps, n = 30.0, 200
    t = np.arange(n)
    feats = _features(np.exp(-((t - 100) ** 2) / 8.0), np.ones(n), fps, 5)  # planned for k = 5, the config asks 6
    res = spot_baseline(feats, BaselineConfig(k_seconds={"ME": 0.2}, min_contrast=0.0, bounds="window"))
    assert res.scales["ME"].k == 5 and [iv.apex for iv in res.intervals] == [100]
