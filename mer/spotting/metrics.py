"""Spotting and spot-then-recognize (STR) metrics as MEGC defines them, pooled over videos.

Spotting (MEGC2019 guideline, used since): a spotted interval is a true positive (TP) when its IoU with a
ground-truth interval of the same type (ME or MaE) is at least 0.5, one-to-one; a spotted interval that matches
nothing is a false positive (FP), a truth that nothing matched a false negative (FN). TP, FP and FN are summed over
every video of the scored set, then precision = ΣTP / Σspotted, recall = ΣTP / Σtruth, F1 = 2PR / (P + R), for ME,
for MaE and "overall" (the counts of both types added; the official definition of "overall" is UNVERIFIED).

Matching is greedy in a fixed order, as the STRS reference script (`genbing99/STRS-Metric`) does it: spotted
intervals in onset order, each taken by the first still unmatched truth (in onset order) with IoU ≥ 0.5. Unlike
that script, a spotted interval takes at most one truth (one-to-one: the script can count one interval as a TP of
two truths when it covers both at IoU exactly 0.5), a video with spotted intervals but no truth counts its
intervals as FPs, and a video whose truths nothing was spotted in counts them as FNs (the script skips both).

STR (MEGC2024/2025, the STRS reference script): the emotion of each TP pair is scored on the TP pairs only, per
emotion of the truth (precision, recall, F1 one-vs-rest); F1_analysis = 2·P̄·R̄ / (P̄ + R̄) over the mean precision
P̄ and mean recall R̄; STRS = F1_spot × F1_analysis. UF1 (mean per-emotion F1) and UAR (mean recall) are reported
beside it; the script's own "UAR" is the mean precision, returned here as `mean_precision`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mer.data.intervals import KINDS, Interval

IOU_THRESHOLD = 0.5
OVERALL = "overall"
Videos = Mapping[Hashable, Sequence[Interval]]  # video key (e.g. (dataset, subject, video)) → its intervals


@dataclass(frozen=True)
class Counts:
    """TP, FP and FN of spotted intervals, and the precision, recall and F1 they give (0 where undefined)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def spotted(self) -> int:
        """Spotted intervals: TP + FP."""
        return self.tp + self.fp

    @property
    def truth(self) -> int:
        """Ground-truth intervals: TP + FN."""
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        """ΣTP / Σspotted (0 when nothing was spotted)."""
        return self.tp / self.spotted if self.spotted else 0.0

    @property
    def recall(self) -> float:
        """ΣTP / Σtruth (0 when there is no truth)."""
        return self.tp / self.truth if self.truth else 0.0

    @property
    def f1(self) -> float:
        """2PR / (P + R) (0 when P + R is 0)."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float | int]:
        """tp, fp, fn, spotted, truth, precision, recall, f1."""
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "spotted": self.spotted, "truth": self.truth,
                "precision": self.precision, "recall": self.recall, "f1": self.f1}  # fmt: skip


def _ordered(intervals: Sequence[Interval]) -> list[int]:
    """Indices of `intervals` in onset order (offset, then the given order, break ties)."""
    return sorted(range(len(intervals)), key=lambda i: (intervals[i].onset, intervals[i].offset, i))


def match(spotted: Sequence[Interval], truth: Sequence[Interval], threshold: float = IOU_THRESHOLD
          ) -> list[tuple[int, int]]:  # fmt: skip
    """One-to-one TP pairs (index into `spotted`, index into `truth`) of one video, types compared.

    Spotted intervals in onset order each take the first unmatched truth of the same kind (in onset order) whose
    IoU with them is at least `threshold`.
    """
    pairs: list[tuple[int, int]] = []
    taken: set[int] = set()
    truth_order = _ordered(truth)
    for p in _ordered(spotted):
        for t in truth_order:
            if t in taken or truth[t].kind != spotted[p].kind:
                continue
            if spotted[p].iou(truth[t]) >= threshold:
                pairs.append((p, t))
                taken.add(t)
                break
    return pairs


def video_counts(spotted: Sequence[Interval], truth: Sequence[Interval], threshold: float = IOU_THRESHOLD
                 ) -> dict[str, Counts]:  # fmt: skip
    """Counts per kind (ME, MaE) of one video."""
    pairs = match(spotted, truth, threshold)
    out = {}
    for kind in KINDS:
        tp = sum(1 for p, _ in pairs if spotted[p].kind == kind)
        out[kind] = Counts(
            tp, sum(1 for s in spotted if s.kind == kind) - tp, sum(1 for t in truth if t.kind == kind) - tp
        )
    return out


def _videos(spotted: Videos, truth: Videos) -> list[Hashable]:
    """Every video key of either side (a video may have truth and nothing spotted, or the reverse)."""
    return list(dict.fromkeys([*truth, *spotted]))


def pooled_counts(spotted: Videos, truth: Videos, threshold: float = IOU_THRESHOLD) -> dict[str, Counts]:
    """TP/FP/FN per kind and overall, summed over every video of `spotted` and `truth`."""
    total = dict.fromkeys(KINDS, Counts())
    for video in _videos(spotted, truth):
        for kind, counts in video_counts(spotted.get(video, ()), truth.get(video, ()), threshold).items():
            total[kind] = total[kind] + counts
    overall = Counts()
    for kind in KINDS:
        overall = overall + total[kind]
    return {**total, OVERALL: overall}


def spotting_scores(spotted: Videos, truth: Videos, threshold: float = IOU_THRESHOLD) -> dict[str, dict[str, Any]]:
    """{ME, MaE, overall: {tp, fp, fn, spotted, truth, precision, recall, f1}} pooled over the videos."""
    return {k: c.as_dict() for k, c in pooled_counts(spotted, truth, threshold).items()}


def tp_pairs(spotted: Videos, truth: Videos, kinds: Iterable[str] = KINDS, threshold: float = IOU_THRESHOLD
             ) -> list[tuple[Interval, Interval]]:  # fmt: skip
    """(spotted, truth) of every TP pair over the videos, restricted to `kinds`."""
    kinds = set(kinds)
    out = []
    for video in _videos(spotted, truth):
        mine = [s for s in spotted.get(video, ()) if s.kind in kinds]
        theirs = [t for t in truth.get(video, ()) if t.kind in kinds]
        out += [(mine[p], theirs[t]) for p, t in match(mine, theirs, threshold)]
    return out


def analysis_scores(pairs: Sequence[tuple[Interval, Interval]], labels: Sequence[str]) -> dict[str, Any]:
    """Recognition on TP pairs (spotted label vs truth label), one-vs-rest per label in `labels`.

    Pairs whose truth label is not in `labels` are left out. Returns per_label {tp, fp, fn, precision, recall,
    f1}, mean_precision, mean_recall (= UAR), f1 (= 2·P̄·R̄ / (P̄ + R̄), 0 when both are 0), uf1, uar, n.
    """
    kept = [(s, t) for s, t in pairs if t.label in labels]
    per: dict[str, dict[str, float | int]] = {}
    for label in labels:
        c = Counts(
            tp=sum(1 for s, t in kept if s.label == label and t.label == label),
            fp=sum(1 for s, t in kept if s.label == label and t.label != label),
            fn=sum(1 for s, t in kept if s.label != label and t.label == label),
        )
        per[label] = {k: v for k, v in c.as_dict().items() if k in ("tp", "fp", "fn", "precision", "recall", "f1")}
    n = len(labels)
    mp = sum(float(per[x]["precision"]) for x in labels) / n if n else 0.0
    mr = sum(float(per[x]["recall"]) for x in labels) / n if n else 0.0
    uf1 = sum(float(per[x]["f1"]) for x in labels) / n if n else 0.0
    f1 = 2 * mp * mr / (mp + mr) if mp + mr else 0.0
    return {"per_label": per, "mean_precision": mp, "mean_recall": mr, "f1": f1, "uf1": uf1, "uar": mr, "n": len(kept)}


def str_scores(
    spotted: Videos,
    truth: Videos,
    labels: Sequence[str] | None = None,
    kinds: Iterable[str] = ("ME",),
    threshold: float = IOU_THRESHOLD,
) -> dict[str, Any]:
    """Spot-then-recognize: spotting counts over `kinds`, analysis on the TP pairs, STRS = F1_spot × F1_analysis.

    `labels` are the emotion classes scored (default: every label of the truth intervals of `kinds`, as the
    reference script does). MEGC2024/2025 STR spots micro-expressions, hence `kinds` ME by default.
    """
    kinds = tuple(kinds)
    spot = Counts()
    for kind, counts in pooled_counts(spotted, truth, threshold).items():
        if kind in kinds:
            spot = spot + counts
    if labels is None:
        found = {t.label for ts in truth.values() for t in ts if t.kind in kinds and t.label is not None}
        labels = sorted(found)
    analysis = analysis_scores(tp_pairs(spotted, truth, kinds, threshold), list(labels))
    return {"spotting": spot.as_dict(), "analysis": analysis, "labels": list(labels), "kinds": list(kinds),
            "strs": spot.f1 * analysis["f1"]}  # fmt: skip
