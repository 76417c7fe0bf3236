"""MEGC spotting and STR metrics against hand-worked examples (intervals are inclusive 0-based frame positions)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from mer.data.intervals import Interval
from mer.spotting.metrics import Counts, match, spotting_scores, str_scores


def me(onset: int, offset: int, label: str | None = None) -> Interval:
    return Interval(onset, offset, "ME", label=label)


def mae(onset: int, offset: int, label: str | None = None) -> Interval:
    return Interval(onset, offset, "MaE", label=label)


def approx(x: Fraction | float) -> float:
    return pytest.approx(float(x), abs=1e-12)


def test_iou_by_hand() -> None:
    # [10, 19] and [12, 21]: 8 shared frames (12..19) of 12 (10..21)
    assert me(10, 19).iou(me(12, 21)) == approx(Fraction(8, 12))
    # [10, 19] and [15, 24]: 5 shared of 15
    assert me(10, 19).iou(me(15, 24)) == approx(Fraction(1, 3))
    # touching: [0, 4] ends where [5, 9] begins, no frame shared
    assert me(0, 4).iou(me(5, 9)) == 0.0
    # sharing exactly one frame (inclusive ends): [0, 4] and [4, 8] share frame 4 of 9
    assert me(0, 4).iou(me(4, 8)) == approx(Fraction(1, 9))
    # a single-frame interval is one frame long
    assert me(7, 7).length == 1 and me(7, 7).iou(me(7, 7)) == 1.0


def test_iou_exactly_half_is_a_true_positive() -> None:
    # truth [0, 5] (6 frames), spotted [2, 7] (6 frames): 4 shared (2..5) of 8 (0..7) = 0.5 exactly
    assert me(0, 5).iou(me(2, 7)) == 0.5
    s = spotting_scores({"v": [me(2, 7)]}, {"v": [me(0, 5)]})
    assert (s["ME"]["tp"], s["ME"]["fp"], s["ME"]["fn"]) == (1, 0, 0)
    # one frame less overlap: [3, 8] vs [0, 5] shares 3 of 9 = 1/3 → FP and FN
    s = spotting_scores({"v": [me(3, 8)]}, {"v": [me(0, 5)]})
    assert (s["ME"]["tp"], s["ME"]["fp"], s["ME"]["fn"]) == (0, 1, 1)


def test_touching_intervals_do_not_match() -> None:
    s = spotting_scores({"v": [me(5, 9)]}, {"v": [me(0, 4)]})
    assert (s["ME"]["tp"], s["ME"]["fp"], s["ME"]["fn"]) == (0, 1, 1)
    assert s["ME"]["f1"] == 0.0


def test_one_prediction_covering_two_truths_counts_once() -> None:
    # [0, 9] has IoU 5/10 = 0.5 with both [0, 4] and [5, 9]: one-to-one, it takes the first truth only
    # (the STRS reference script, which never stops after a match, would count 2 TPs here).
    spotted, truth = [me(0, 9)], [me(5, 9), me(0, 4)]
    assert match(spotted, truth) == [(0, 1)]  # the truth with the earlier onset, whatever the given order
    s = spotting_scores({"v": spotted}, {"v": truth})["ME"]
    assert (s["tp"], s["fp"], s["fn"]) == (1, 0, 1)
    assert s["precision"] == 1.0 and s["recall"] == 0.5
    assert s["f1"] == approx(Fraction(2, 3))


def test_two_predictions_for_one_truth_one_is_a_false_positive() -> None:
    s = spotting_scores({"v": [me(1, 9), me(0, 9)]}, {"v": [me(0, 9)]})["ME"]
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 0)
    assert s["precision"] == 0.5 and s["recall"] == 1.0


def test_types_are_matched_separately() -> None:
    # a MaE spotted exactly on an ME truth matches nothing: FP of MaE, FN of ME
    s = spotting_scores({"v": [mae(0, 9)]}, {"v": [me(0, 9)]})
    assert (s["MaE"]["tp"], s["MaE"]["fp"], s["MaE"]["fn"]) == (0, 1, 0)
    assert (s["ME"]["tp"], s["ME"]["fp"], s["ME"]["fn"]) == (0, 0, 1)
    assert s["overall"]["tp"] == 0 and s["overall"]["f1"] == 0.0


def test_empty_predictions_and_empty_truth() -> None:
    s = spotting_scores({}, {"v": [me(0, 9), mae(20, 60)]})
    assert s["ME"] == {"tp": 0, "fp": 0, "fn": 1, "spotted": 0, "truth": 1, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert s["overall"]["fn"] == 2
    s = spotting_scores({"v": [me(0, 9)]}, {})
    assert (s["ME"]["tp"], s["ME"]["fp"], s["ME"]["fn"]) == (0, 1, 0)
    s = spotting_scores({}, {})
    assert s["overall"] == Counts().as_dict()
    # a video in the truth with an empty list of spotted intervals is the same as a missing one
    assert spotting_scores({"v": []}, {"v": [me(0, 9)]}) == spotting_scores({}, {"v": [me(0, 9)]})


def test_counts_are_pooled_over_videos_then_scored() -> None:
    spotted = {
        "a": [me(0, 9), me(100, 109), mae(200, 259)],  # ME TP + ME FP; MaE TP
        "b": [mae(0, 39)],  # MaE TP
        "c": [me(50, 59)],  # a video without truth: an ME FP
    }
    truth = {
        "a": [me(1, 10), mae(200, 249)],  # [0,9]~[1,10] 9/11; [200,259]~[200,249] 50/60
        "b": [me(300, 309), mae(5, 40), mae(500, 560)],  # ME FN; MaE TP ([0,39]~[5,40] 35/41); MaE FN
        "d": [mae(0, 30)],  # nothing spotted there: MaE FN
    }
    s = spotting_scores(spotted, truth)
    # ME: TP 1, FP 2 (a, c), FN 1 (b) → P 1/3, R 1/2, F1 2/5
    assert (s["ME"]["tp"], s["ME"]["fp"], s["ME"]["fn"]) == (1, 2, 1)
    assert s["ME"]["f1"] == approx(Fraction(2, 5))
    # MaE: TP 2, FP 0, FN 2 → P 1, R 1/2, F1 2/3
    assert (s["MaE"]["tp"], s["MaE"]["fp"], s["MaE"]["fn"]) == (2, 0, 2)
    assert s["MaE"]["f1"] == approx(Fraction(2, 3))
    # overall: the counts added (TP 3, FP 2, FN 3) → P 3/5, R 1/2, F1 6/11, not the mean of the two F1s
    assert (s["overall"]["tp"], s["overall"]["fp"], s["overall"]["fn"]) == (3, 2, 3)
    assert s["overall"]["f1"] == approx(Fraction(6, 11))
    # pooled, not averaged per video: video a alone has ME F1 2/3, b 0, c 0
    assert s["ME"]["f1"] != approx(Fraction(2, 9))


def test_matching_is_one_to_one_in_onset_order() -> None:
    # truths [0, 9] and [4, 13]; spotted [2, 11] has IoU 8/12 with both, [4, 13] IoU 6/14 with [0, 9] and 1 with
    # [4, 13]. Onset order: [2, 11] takes [0, 9] (first truth by onset), then [4, 13] takes [4, 13].
    spotted, truth = [me(4, 13), me(2, 11)], [me(4, 13), me(0, 9)]
    assert sorted(match(spotted, truth)) == [(0, 0), (1, 1)]


def test_str_scores_by_hand() -> None:
    N, P, S = "negative", "positive", "surprise"
    truth = {
        "v1": [me(0, 9, N), me(20, 29, P), me(40, 49, S), me(60, 69, N), mae(100, 150, P)],
    }
    spotted = {
        "v1": [
            me(0, 9, N),  # TP, right emotion
            me(20, 29, N),  # TP, wrong emotion (negative for positive)
            me(41, 49, S),  # TP (IoU 9/10), right emotion
            me(80, 89, P),  # FP
            mae(100, 150, P),  # a macro-expression: not part of ME-only STR
        ],
    }
    r = str_scores(spotted, truth)
    assert r["kinds"] == ["ME"] and r["labels"] == [N, P, S]
    # spotting (ME): TP 3, FP 1, FN 1 → F1 3/4
    assert (r["spotting"]["tp"], r["spotting"]["fp"], r["spotting"]["fn"]) == (3, 1, 1)
    assert r["spotting"]["f1"] == approx(Fraction(3, 4))
    a = r["analysis"]
    # TP pairs (spotted, truth): (N, N), (N, P), (S, S)
    #   negative: TP 1, FP 1, FN 0 → P 1/2, R 1, F1 2/3
    #   positive: TP 0, FP 0, FN 1 → P 0,   R 0, F1 0
    #   surprise: TP 1, FP 0, FN 0 → P 1,   R 1, F1 1
    assert (a["per_label"][N]["tp"], a["per_label"][N]["fp"], a["per_label"][N]["fn"]) == (1, 1, 0)
    assert (a["per_label"][P]["tp"], a["per_label"][P]["fp"], a["per_label"][P]["fn"]) == (0, 0, 1)
    assert a["mean_precision"] == approx(Fraction(1, 2))
    assert a["mean_recall"] == approx(Fraction(2, 3)) and a["uar"] == a["mean_recall"]
    # F1_analysis = 2 · 1/2 · 2/3 / (1/2 + 2/3) = 4/7; UF1 = (2/3 + 0 + 1) / 3 = 5/9
    assert a["f1"] == approx(Fraction(4, 7))
    assert a["uf1"] == approx(Fraction(5, 9))
    # STRS = 3/4 · 4/7 = 3/7
    assert r["strs"] == approx(Fraction(3, 7))
    # with macro-expressions too, the MaE pair joins the spotting counts and the analysis
    both = str_scores(spotted, truth, kinds=("ME", "MaE"))
    assert (both["spotting"]["tp"], both["spotting"]["fp"], both["spotting"]["fn"]) == (4, 1, 1)
    assert both["analysis"]["n"] == 4


def test_str_with_nothing_spotted_is_zero() -> None:
    r = str_scores({}, {"v": [me(0, 9, "negative")]})
    assert r["strs"] == 0.0 and r["analysis"]["f1"] == 0.0 and r["analysis"]["n"] == 0


def test_str_ignores_pairs_whose_truth_label_is_not_scored() -> None:
    truth = {"v": [me(0, 9, "negative"), me(20, 29, "others")]}
    spotted = {"v": [me(0, 9, "negative"), me(20, 29, "negative")]}
    r = str_scores(spotted, truth, labels=["negative"])
    # the "others" pair is a spotting TP but is not scored by the analysis
    assert r["spotting"]["tp"] == 2 and r["analysis"]["n"] == 1
    assert r["analysis"]["f1"] == 1.0 and r["strs"] == 1.0
