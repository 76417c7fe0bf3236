"""Subject-wise spotting evaluation: LOSO never fits on the held-out subject, settings are chosen on training subjects,
the learned spotter finds synthetic expressions, the subject bootstrap and the seed summary."""

from __future__ import annotations

import numpy as np
import pytest

from mer.data.intervals import Interval
from mer.spotting.evaluate import (
    LearnedConfig,
    LearnedSpotter,
    SpotVideo,
    ThresholdSpotter,
    bootstrap_f1,
    evaluate_spotter,
    run_loso,
    seed_summary,
    subject_counts,
)
from mer.spotting.metrics import Counts


def synthetic_videos(subjects: int = 4, n: int = 240, fps: float = 30.0, seed: int = 0) -> list[SpotVideo]:
    """One video per subject: noise features; an ME is a short small bump on column 0, a MaE a long large one on 1."""
    rng = np.random.default_rng(seed)
    videos = []
    for s in range(subjects):
        x = rng.normal(0, 0.2, (n, 4)).astype(np.float32)
        truth = []
        t = np.arange(n)
        for kind, centre, half, col, amp in (("ME", 50, 4, 0, 2.0), ("MaE", 120, 15, 1, 4.0), ("ME", 200, 4, 0, 2.0)):
            c = centre + int(rng.integers(-5, 6))
            x[:, col] += amp * np.exp(-0.5 * ((t - c) / (half / 2)) ** 2)
            truth.append(Interval(c - half, c + half, kind, apex=c))
        x[rng.integers(0, n, 5), 2] = np.nan  # frames without a face
        key = ("synthetic", f"synthetic/s{s}", f"v{s}")
        videos.append(SpotVideo(key, "synthetic", f"synthetic/s{s}", fps, x, truth))
    return videos


class Recorder:
    """A spotter that remembers which subjects it was fitted on and spots nothing."""

    fitted: list[set[str]] = []

    def fit(self, videos, seed):
        Recorder.fitted.append({v.subject for v in videos})

    def predict(self, video):
        assert video.subject not in Recorder.fitted[-1]
        return []


def test_loso_never_fits_on_the_held_out_subject() -> None:
    videos = synthetic_videos(3)
    Recorder.fitted = []
    predictions, _ = run_loso(videos, Recorder)
    assert len(Recorder.fitted) == 3 and all(len(f) == 2 for f in Recorder.fitted)
    assert set(predictions) == {v.key for v in videos}
    with pytest.raises(ValueError, match="at least 2 subjects"):
        run_loso(videos[:1], Recorder)


def test_threshold_spotter_chooses_its_setting_on_training_videos() -> None:
    videos = synthetic_videos(3)

    # a spot function that is right only at setting 0.3 and spots one wrong interval at the others
    def spot(video: SpotVideo, value: float) -> list[Interval]:
        return list(video.truth) if value == 0.3 else [Interval(0, 3, "ME")]

    predictions, chosen = run_loso(videos, lambda: ThresholdSpotter(spot, [0.1, 0.3, 0.5]))
    assert set(chosen.values()) == {0.3}
    assert all(predictions[v.key] == v.truth for v in videos)


def test_learned_spotter_finds_synthetic_expressions() -> None:
    videos = synthetic_videos(4)
    cfg = LearnedConfig(channels=16, layers=3, epochs=25, crop_seconds=8.0)
    result = evaluate_spotter(videos, lambda: LearnedSpotter(cfg), seeds=(0,), n_resamples=50)
    s = result["summary"]
    assert s["overall"]["f1"] >= 0.6, result["per_seed"]
    chosen = result["chosen"][0]
    assert set(chosen) == {v.subject for v in videos}
    # interval lengths come from the training truth (ME: ±4 frames at 30 fps)
    assert all(abs(c["lengths_s"]["ME"][0] * 30 - 4) < 0.5 for c in chosen.values())


def test_subject_bootstrap_and_seed_summary() -> None:
    def counts(tp: int, fp: int, fn: int) -> dict[str, Counts]:
        return {"ME": Counts(tp, fp, fn), "MaE": Counts(), "overall": Counts(tp, fp, fn)}

    same = {("d", "a"): counts(1, 1, 0), ("d", "b"): counts(1, 1, 0)}
    interval = bootstrap_f1([same], n_resamples=200)
    # every subject alike: every resample has F1 2·2 / (2·2 + 2 + 0) = 2/3
    assert interval["ME"] == pytest.approx([2 / 3, 2 / 3])
    mixed = {("d", "a"): counts(2, 0, 0), ("d", "b"): counts(0, 2, 2)}
    low, high = bootstrap_f1([mixed], n_resamples=500)["overall"]
    assert low == 0.0 and high == 1.0  # resamples of b twice (F1 0) and a twice (F1 1) both occur
    scores = [{k: {"precision": p, "recall": p, "f1": p} for k in ("ME", "MaE", "overall")} for p in (0.2, 0.4)]
    summary = seed_summary(scores)
    assert summary["ME"]["f1"] == pytest.approx(0.3) and summary["ME"]["f1_sd"] == pytest.approx(np.sqrt(0.02))
    assert seed_summary(scores[:1])["ME"]["f1_sd"] is None


def test_subject_counts_pool_each_subjects_videos() -> None:
    videos = synthetic_videos(2)
    predictions = {v.key: v.truth[:1] for v in videos}
    counts = subject_counts(videos, predictions)
    assert counts[("synthetic", "synthetic/s0")]["overall"] == Counts(1, 0, 2)
