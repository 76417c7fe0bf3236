"""MEGC metrics against numbers worked out by hand, and against scikit-learn on random data."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, recall_score

from mer.errors import MerError
from mer.evaluation.metrics import megc_scores, per_fold_table, pooled_scores

N, P, S = "negative", "positive", "surprise"


def two_folds() -> pd.DataFrame:
    """Fold casme2/sub01 has all three classes; fold samm/006 has no surprise sample (but predicts one)."""
    rows = [
        # fold A: casme2/sub01      true  pred
        ("casme2", "casme2/sub01", "a1", N, N),
        ("casme2", "casme2/sub01", "a2", N, P),
        ("casme2", "casme2/sub01", "a3", P, P),
        ("casme2", "casme2/sub01", "a4", S, N),
        # fold B: samm/006 (no surprise in its ground truth)
        ("samm", "samm/006", "b1", N, N),
        ("samm", "samm/006", "b2", N, N),
        ("samm", "samm/006", "b3", N, S),
        ("samm", "samm/006", "b4", P, P),
    ]
    return pd.DataFrame(rows, columns=["dataset", "subject", "sample_id", "label", "svm_pred"])


def approx(x: Fraction) -> float:
    return pytest.approx(float(x), abs=1e-12)


def test_pooled_composite_by_hand() -> None:
    df = two_folds()
    s = megc_scores(df["label"], df["svm_pred"])
    # Pooled confusion (rows true, cols pred; order N, P, S):
    #   N: [3, 1, 1]   P: [0, 2, 0]   S: [1, 0, 0]
    assert s["confusion"] == [[3, 1, 1], [0, 2, 0], [1, 0, 0]]
    # TP: N 3, P 2, S 0.  FP (column sum - TP): N 4-3=1, P 3-2=1, S 1-0=1.  FN (row sum - TP): N 5-3=2, P 0, S 1.
    counts = {c: (s["per_class"][c]["tp"], s["per_class"][c]["fp"], s["per_class"][c]["fn"]) for c in (N, P, S)}
    assert counts == {N: (3, 1, 2), P: (2, 1, 0), S: (0, 1, 1)}
    # F1 = 2TP / (2TP + FP + FN): N 6/9, P 4/5, S 0/2 -> UF1 = (2/3 + 4/5 + 0) / 3 = 22/45
    f1 = {N: Fraction(6, 9), P: Fraction(4, 5), S: Fraction(0)}
    for c, v in f1.items():
        assert s["per_class"][c]["f1"] == approx(v)
    assert s["uf1"] == approx(Fraction(22, 45))
    # recall = TP / N_c: N 3/5, P 2/2, S 0/1 -> UAR = 8/15
    assert s["uar"] == approx(Fraction(8, 15))
    assert s["accuracy"] == approx(Fraction(5, 8))
    assert s["n"] == 8
    assert s["classes_scored"] == [N, P, S]


def test_per_dataset_split_and_class_absent_from_dataset() -> None:
    scores = pooled_scores(two_folds())
    assert list(scores) == ["composite", "casme2", "samm"]
    casme = scores["casme2"]
    # casme2: confusion N [1,1,0], P [0,1,0], S [1,0,0]; TP 1,1,0; FP 1,1,0; FN 1,0,1
    # F1: N 2/4, P 2/3, S 0/1 -> UF1 = 7/18; recall N 1/2, P 1, S 0 -> UAR 1/2
    assert casme["uf1"] == approx(Fraction(7, 18))
    assert casme["uar"] == approx(Fraction(1, 2))
    assert casme["accuracy"] == approx(Fraction(1, 2))
    samm = scores["samm"]
    # samm: no surprise in ground truth. Confusion N [2,0,1], P [0,1,0], S [0,0,0].
    # TP N 2, P 1, S 0; FP N 0, P 0, S 1; FN N 1, P 0, S 0.
    # F1 N 4/5, P 2/2; surprise (F1 0/1 = 0) is NOT averaged: UF1 = (4/5 + 1) / 2 = 9/10 (0.6 if it were).
    assert samm["classes_scored"] == [N, P]
    assert samm["per_class"][S] == {"support": 0, "predicted": 1, "tp": 0, "fp": 1, "fn": 0, "recall": None, "f1": 0.0}
    assert samm["uf1"] == approx(Fraction(9, 10))
    # UAR = (2/3 + 1) / 2 = 5/6; the wrong surprise prediction still costs negative its recall.
    assert samm["uar"] == approx(Fraction(5, 6))
    # The pooled composite is not the mean of the per-dataset (or per-fold) UF1: (7/18 + 9/10)/2 = 29/45 != 22/45.
    assert scores["composite"]["uf1"] != pytest.approx((casme["uf1"] + samm["uf1"]) / 2)


def test_class_absent_from_a_fold_counts_in_pooled_tp() -> None:
    """A subject without surprise samples contributes only FP for surprise; pooling sums them with other folds."""
    df = two_folds()
    s = pooled_scores(df)["composite"]["per_class"][S]
    # Surprise: fold A has FN 1 (a4), fold B has FP 1 (b3); pooled TP 0, FP 1, FN 1.
    assert (s["tp"], s["fp"], s["fn"], s["support"]) == (0, 1, 1, 1)


def test_class_absent_everywhere_is_left_out() -> None:
    s = megc_scores([N, N, P, P], [N, P, P, P])
    # surprise: no sample, never predicted -> F1 undefined (None), not averaged.
    assert s["per_class"][S]["f1"] is None and s["per_class"][S]["recall"] is None
    assert s["classes_scored"] == [N, P]
    # N: TP1 FP0 FN1 -> F1 2/3; P: TP2 FP1 FN0 -> F1 4/5; UF1 = (2/3+4/5)/2 = 11/15; UAR = (1/2 + 1)/2 = 3/4
    assert s["uf1"] == approx(Fraction(11, 15))
    assert s["uar"] == approx(Fraction(3, 4))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_macro_on_pooled_labels(seed: int) -> None:
    """sklearn's macro F1 / recall over the pooled labels of present classes is exactly the MEGC definition."""
    rng = np.random.default_rng(seed)
    truth = rng.choice([N, P, S], size=200, p=[0.55, 0.3, 0.15])
    pred = np.where(rng.random(200) < 0.6, truth, rng.choice([N, P, S], size=200))
    s = megc_scores(truth, pred)
    labels = [N, P, S]
    assert s["uf1"] == pytest.approx(f1_score(truth, pred, labels=labels, average="macro"))
    assert s["uar"] == pytest.approx(recall_score(truth, pred, labels=labels, average="macro"))
    assert s["accuracy"] == pytest.approx(np.mean(truth == pred))


def test_per_fold_table_is_per_fold() -> None:
    table = per_fold_table(two_folds(), "svm_pred")
    assert table["fold"].tolist() == ["casme2/sub01", "samm/006"]
    assert table["n"].tolist() == [4, 4]
    assert table["correct"].tolist() == [2, 3]
    assert table["accuracy"].tolist() == [0.5, 0.75]


def test_per_fold_table_natural_order_and_fold_column() -> None:
    df = pd.DataFrame(
        {
            "fold": ["casme2/sub10", "casme2/sub2", "casme2/sub2"],
            "subject": ["x", "y", "z"],
            "label": [N, P, P],
            "softmax_pred": [N, N, P],
        }
    )
    table = per_fold_table(df, "softmax_pred")
    assert table["fold"].tolist() == ["casme2/sub2", "casme2/sub10"]
    assert table["accuracy"].tolist() == [0.5, 1.0]


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(MerError, match="not among the classes"):
        megc_scores([N, "neutral"], [N, N])
    with pytest.raises(MerError, match="empty"):
        megc_scores([], [])
    with pytest.raises(MerError, match="differ|has 2 labels"):
        megc_scores([N, P], [N])
    df = two_folds()
    df.loc[1, "svm_pred"] = None
    with pytest.raises(MerError, match="svm_pred.*1 of 8.*a2"):
        pooled_scores(df)
    with pytest.raises(MerError, match="lacks columns"):
        pooled_scores(two_folds(), "softmax_pred")


def test_report_and_model_selection_share_one_numpy_only_function() -> None:
    import subprocess
    import sys

    import mer.scoring

    assert megc_scores is mer.scoring.megc_scores  # mer.evaluation.metrics re-exports it, no copy
    code = "import sys, mer.scoring; print(sorted({'pandas', 'sklearn', 'torch', 'mer.config'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
