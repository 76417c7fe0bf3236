"""Spot-then-recognize on datasets: each fold's recogniser is trained without its held-out subject, labels reach the
STR metric, and the subject bootstrap's counts give back the point estimate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mer.data.intervals import Interval
from mer.spotting.evaluate import SpotVideo, evaluate_spotter
from mer.spotting.metrics import str_scores
from mer.spotting.recognise import (
    STR_KINDS,
    _str_from_counts,
    bootstrap_str,
    recognise_loso,
    str_labels,
    str_row,
    subject_str_counts,
)

CLASSES = ("negative", "positive", "surprise")


def labelled_videos(subjects: int = 4, seed: int = 0) -> list[SpotVideo]:
    """One video per subject, three ME and one MaE with classes; feature column 0 holds the class index + 1 over
    each interval (a recogniser can learn the code from training subjects), 0 elsewhere."""
    rng = np.random.default_rng(seed)
    videos = []
    for s in range(subjects):
        x = np.zeros((200, 2), np.float32)
        truth = []
        for j, (start, kind) in enumerate(((10, "ME"), (50, "ME"), (90, "MaE"), (150, "ME"))):
            label = CLASSES[(s + j + int(rng.integers(0, 3))) % 3]
            length = 8 if kind == "ME" else 30
            x[start : start + length, 0] = CLASSES.index(label) + 1
            truth.append(Interval(start, start + length - 1, kind, apex=start + length // 2, label=label))
        videos.append(SpotVideo(("d", f"d/s{s}", f"v{s}"), "d", f"d/s{s}", 30.0, x, truth))
    return videos


class CodeRecogniser:
    """Learns which feature code means which class from its training videos; remembers what it was trained on."""

    trained: list[list[str]] = []

    def __init__(self) -> None:
        self.subjects: list[str] = []
        self.codes: dict[int, str] = {}

    def fit(self, videos, seed):
        self.subjects = sorted({v.subject for v in videos})
        CodeRecogniser.trained.append(self.subjects)
        for v in videos:
            for i in v.truth:
                self.codes[int(v.features[i.apex, 0])] = i.label

    def predict(self, video, intervals):
        assert video.subject not in self.subjects
        return [self.codes.get(int(video.features[i.apex, 0])) for i in intervals]


class TruthSpotter:
    """Spots every truth interval (labels removed), and one false ME in each video."""

    def fit(self, videos, seed):
        pass

    def predict(self, video):
        out = [dataclasses.replace(i, label=None) for i in video.truth]
        return [*out, Interval(180, 187, "ME", apex=183)]


def test_each_fold_recogniser_excludes_its_held_out_subject_and_labels_reach_strs() -> None:
    videos = labelled_videos()
    CodeRecogniser.trained = []
    result = evaluate_spotter(videos, TruthSpotter, seeds=(0, 1), n_resamples=50, recognise=CodeRecogniser)
    assert len(CodeRecogniser.trained) == 2 * len(videos)
    for seed in (0, 1):
        folds = result["str"]["recognisers"][seed]
        assert set(folds) == {v.subject for v in videos}
        for held_out, info in folds.items():
            assert held_out not in info["subjects"] and len(info["subjects"]) == len(videos) - 1
    me = result["str"]["scores"]["ME"]
    # ME: 12 truths all spotted, 4 false MEs → F1_spot 2·12 / (2·12 + 4) = 6/7; every TP labelled right → analysis 1
    assert me["summary"]["f1_spot"] == pytest.approx(6 / 7)
    assert me["summary"]["f1_analysis"] == pytest.approx(1.0) and me["summary"]["uf1"] == pytest.approx(1.0)
    assert me["summary"]["strs"] == pytest.approx(6 / 7) and me["summary"]["strs_sd"] == pytest.approx(0.0)
    assert me["kinds"] == ["ME"] and result["str"]["scores"]["all"]["kinds"] == ["ME", "MaE"]
    # the predictions handed back carry the labels
    assert all(i.label is not None for v in videos for i in result["predictions"][v.key] if i.onset != 180)


def test_recognise_loso_refuses_a_recogniser_trained_on_its_held_out_subject() -> None:
    class Leaky(CodeRecogniser):
        def fit(self, videos, seed):
            self.subjects = ["d/s0", "d/s1", "d/s2"]

    videos = labelled_videos(3)
    with pytest.raises(RuntimeError, match="trained on d/s0"):
        recognise_loso(videos, {v.key: v.truth for v in videos}, Leaky)


def test_subject_counts_give_back_the_pooled_str_scores() -> None:
    videos = labelled_videos(5, seed=3)
    rng = np.random.default_rng(1)
    truth = {v.key: v.truth for v in videos}
    # spotted: every other truth, labels right or wrong at random, plus a false positive per video
    spotted = {v.key: [dataclasses.replace(i, label=CLASSES[int(rng.integers(0, 3))]) for i in v.truth[::2]]
               + [Interval(180, 187, "ME", label="negative")] for v in videos}  # fmt: skip
    for kinds in STR_KINDS.values():
        labels = str_labels(videos, kinds)
        counts = subject_str_counts(videos, spotted, kinds, labels)
        subjects = sorted(counts)
        spot = np.array([[getattr(counts[x][0], f) for x in subjects] for f in ("tp", "fp", "fn")], float)
        per = np.array([[[getattr(counts[x][1][y], f) for x in subjects] for f in ("tp", "fp", "fn")]
                        for y in labels], float)  # fmt: skip
        pooled = _str_from_counts(spot.sum(axis=1, keepdims=True), per.sum(axis=2, keepdims=True))
        expected = str_row(str_scores(spotted, truth, labels, kinds))
        for metric, value in expected.items():
            assert pooled[metric][0] == pytest.approx(value), metric
        # every subject alike → every resample gives the point estimate
        same = {(d, f"{s}{k}"): counts[subjects[0]] for k in range(4) for d, s in [subjects[0]]}
        one = str_row(str_scores({videos[0].key: spotted[videos[0].key]}, {videos[0].key: videos[0].truth}, labels,
                                 kinds))  # fmt: skip
        interval = bootstrap_str([same], labels, n_resamples=100)
        assert interval["strs"] == pytest.approx([one["strs"], one["strs"]])
