"""The demo's long videos: written in the CAS(ME)^2 and SAMM-LV layouts and read back by the long-video readers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mer.data.datasets.long_videos import read_long
from mer.data.longvideo import FIXED, KEPT, intervals_table
from mer.demo import DemoSpec, DemoSummary, generate_corpus, load_summary
from mer.demo.corpus import _write_long_videos
from mer.demo.longvideos import LONG
from mer.spotting.metrics import spotting_scores


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    """The quick corpus with its long videos (2 subjects per set, one video each)."""
    return generate_corpus(tmp_path_factory.mktemp("demo") / "data", seed=0, quick=True)


def read_both(corpus: DemoSummary) -> tuple[list, pd.DataFrame]:
    videos, reports = [], []
    for name in LONG:
        v, r = read_long(name, corpus.long_roots[name])
        videos += v
        reports.append(r)
    return videos, pd.concat(reports, ignore_index=True)


def test_round_trip_readers_give_back_the_planted_truth(corpus: DemoSummary) -> None:
    videos, report = read_both(corpus)
    got = intervals_table(videos).sort_values(["dataset", "subject", "video", "onset"]).reset_index(drop=True)
    want = corpus.long_intervals
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    spec = corpus.spec
    assert len(videos) == 2 * spec.long_subjects * spec.long_videos
    assert (want["kind"] == "ME").sum() == len(videos) * spec.long_micro
    assert (want["kind"] == "MaE").sum() == len(videos) * spec.long_macro
    # frame rates and lengths as the real sets' (30 fps, 200 fps)
    rates = {v.dataset: v.fps for v in videos}
    assert rates == {"casme_sq": 30.0, "samm_lv": 200.0}
    assert {v.n_frames for v in videos if v.dataset == "casme_sq"} == {int(spec.long_seconds[0] * 30)}
    # the errata written on purpose come back as fixes, nothing is skipped, every video has intervals
    fixes = [r for r in report["reason"] if r.startswith(FIXED)]
    assert any("offset 0: the apex" in r for r in fixes)
    assert any("apex -1: no apex" in r for r in fixes)
    assert any("fractional onset" in r for r in fixes)
    assert all(r.startswith(FIXED) for r in report["reason"]) and not any(r.startswith(KEPT) for r in report["reason"])
    # the truth scores itself perfectly
    truth = {v.key: v.intervals for v in videos}
    assert spotting_scores(truth, truth)["overall"]["f1"] == 1.0


def test_macro_moves_more_than_micro_and_nothing_moves_at_rest(corpus: DemoSummary) -> None:
    videos, _ = read_both(corpus)

    def gray(path: str) -> np.ndarray:
        return cv2.imread(path, cv2.IMREAD_GRAYSCALE).astype(np.float32)

    motion: dict[str, list[float]] = {"ME": [], "MaE": []}
    for v in videos:
        for i in v.intervals:
            if i.apex is not None:
                motion[i.kind].append(float(np.abs(gray(v.frames[i.apex]) - gray(v.frames[i.onset])).mean()))
    assert motion["ME"] and motion["MaE"]
    assert np.median(motion["MaE"]) > 1.5 * np.median(motion["ME"]) > 0
    # two consecutive frames differ by noise and head drift only, far less than a macro-expression's apex
    v = videos[0]
    still = float(np.abs(gray(v.frames[1]) - gray(v.frames[0])).mean())
    assert still < 0.5 * np.median(motion["MaE"])


def test_reused_corpus_keeps_its_long_videos(corpus: DemoSummary) -> None:
    again = load_summary(corpus.root)
    assert again.long_roots == corpus.long_roots
    pd.testing.assert_frame_equal(again.long_intervals, corpus.long_intervals, check_dtype=False)
    assert "long videos (spotting): casme_sq 2 videos of 2 subjects" in again.describe()


def test_no_long_videos_when_switched_off(tmp_path: Path) -> None:
    spec = DemoSpec(**{**DemoSpec.quick().__dict__, "long_subjects": 0})
    videos, intervals = _write_long_videos(tmp_path, spec, seed=0)
    assert videos.empty and intervals.empty and not any(tmp_path.iterdir())
