"""Spot-then-recognize (STR) on datasets: label every spotted interval with a recogniser trained, per fold, on the
training subjects' annotated intervals only, then score STR (`mer.spotting.metrics.str_scores`) per seed, with a
subject bootstrap.

A recogniser is any object with `fit(train videos, seed)` (it reads the labelled truth intervals of those videos)
and `predict(video, intervals) -> labels`. `recognise_loso` fits one per held-out subject on the other subjects'
videos and labels that subject's spotted intervals, so no label, feature statistic or hyper-parameter of a recogniser
comes from the subject it labels; each fold records the subjects it was trained on.

`LbpTopRecogniser` is `mer`'s MEGC2019 baseline method (`method/lbptop`: LBP-TOP of the aligned onset..offset clip,
every frame aligned with the apex frame's transform, + the LOSO SVM with C chosen by grouped CV over the training
subjects, `mer.evaluation.svm.fit_svm`), applied to long-video intervals: trained on the annotated intervals, applied
to the spotted ones (their own onset, apex and offset).

`NetworkRecogniser` is any apex method (`data.input: apex`, e.g. `method/paper`): the aligned grayscale eye-masked
face crop of the interval's apex frame (`ApexCrops`, `mer.face.align.align_face` on the tracked landmarks, the
method's `face` settings) → the method's network, fine-tuned per fold on the training intervals' ground-truth apexes
(`mer.evaluation.loso.fit_network_and_svm`, the LOSO fold's sequence, seeded with the fold's seed, optionally from a
pre-trained checkpoint) → `loso.classifier` (the SVM on the embeddings or the softmax), applied at the spotted apex.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mer.config import INPUT_CHANNELS, MOTION_INPUTS, FaceConfig, LbptopConfig, SVMConfig
from mer.data.intervals import KINDS, Interval
from mer.evaluation.bootstrap import LEVEL, RESAMPLES, SEED, resample_weights
from mer.files import natural_key, read_image
from mer.spotting.metrics import Counts, pooled_counts, str_scores, tp_pairs

# STR scored over these kinds: "ME" is the MEGC2024/2025 task (micro-expressions only); "all" adds macro-expressions
STR_KINDS: dict[str, tuple[str, ...]] = {"ME": ("ME",), "all": KINDS}
STR_METRICS = ("strs", "f1_spot", "f1_analysis", "uf1", "uar")
RECOGNISERS = ("lbptop",)  # model.backbone values of a feature recogniser (`LbpTopRecogniser`)
NETWORK_INPUTS = ("apex", *MOTION_INPUTS)  # data.input values of a network recogniser (`NetworkRecogniser`)


class Recogniser(Protocol):
    """What `recognise_loso` needs: fit on training videos (their labelled truth), label intervals of one video."""

    subjects: list[str]  # the subjects it was fitted on

    def fit(self, videos: Sequence[Any], seed: int) -> None: ...

    def predict(self, video: Any, intervals: Sequence[Interval]) -> list[str | None]: ...


def _apex(interval: Interval) -> int:
    return interval.apex if interval.apex is not None else (interval.onset + interval.offset) // 2


class ClipFeatures:
    """LBP-TOP of an interval of a long video, from its frame files and tracked landmarks (`VideoFeatures`), cached
    per (video, onset, apex, offset): the reference frame is the apex (or the frame with a face nearest to it within
    the interval). None when no frame of the interval has a face."""

    def __init__(
        self,
        frames: Mapping[Hashable, Sequence[str]],
        tracks: Mapping[Hashable, Any],
        face: FaceConfig,
        lbptop: LbptopConfig,
    ):
        self.frames, self.tracks, self.face, self.lbptop = frames, tracks, face, lbptop
        self._cache: dict[tuple[Hashable, int, int, int], np.ndarray | None] = {}

    def __call__(self, key: Hashable, interval: Interval) -> np.ndarray | None:
        """The feature of `interval` in video `key` (None: no face in the interval)."""
        from mer.face.lbptop import aligned_clip_lbptop, clip_indices, min_frames

        apex = _apex(interval)
        item = (key, interval.onset, apex, interval.offset)
        if item in self._cache:
            return self._cache[item]
        track = self.tracks[key]
        face = np.asarray(track.face, bool)
        ref = _nearest_face(track, interval, apex)
        value = None
        if ref is not None:
            picks = clip_indices(interval.onset, interval.offset, self.lbptop.frames)
            need = min_frames(self.lbptop)
            if len(picks) < need:  # LBP-TOP needs 2·R_T + 1 frames: widen a very short interval around its middle
                mid, half = (interval.onset + interval.offset) // 2, need // 2
                picks = [min(max(mid + d, 0), len(face) - 1) for d in range(-half, half + 1)]
            files = self.frames[key]
            clip = [read_image(files[i]) for i in picks]
            value = aligned_clip_lbptop(clip, read_image(files[ref]), track.landmarks[ref], self.face,
                                        track.boxes[ref], lbptop=self.lbptop)  # fmt: skip
        self._cache[item] = value
        return value


def _nearest_face(track: Any, interval: Interval, frame: int) -> int | None:
    """The frame of `interval` with a face nearest to `frame` (None: no face in the interval)."""
    face = np.asarray(track.face, bool)
    span = np.arange(interval.onset, interval.offset + 1)
    span = span[(span >= 0) & (span < len(face))]
    with_face = span[face[span]] if len(span) else span
    return int(with_face[np.argmin(np.abs(with_face - frame))]) if len(with_face) else None


class ApexCrops:
    """The aligned grayscale (eye-masked per `face`) crop of an interval's apex frame of a long video, from its frame
    files and tracked landmarks (`VideoFeatures`): the apex or the frame with a face nearest to it within the
    interval; cached per (video, frame). None when no frame of the interval has a face."""

    def __init__(self, frames: Mapping[Hashable, Sequence[str]], tracks: Mapping[Hashable, Any], face: FaceConfig):
        self.frames, self.tracks, self.face = frames, tracks, face
        self._cache: dict[tuple[Hashable, int], np.ndarray] = {}

    def __call__(self, key: Hashable, interval: Interval) -> np.ndarray | None:
        """The uint8 (face.size, face.size) crop of `interval` in video `key` (None: no face in the interval)."""
        from mer.face.align import align_face

        track = self.tracks[key]
        frame = _nearest_face(track, interval, _apex(interval))
        if frame is None:
            return None
        if (key, frame) not in self._cache:
            image = read_image(self.frames[key][frame])
            self._cache[(key, frame)] = align_face(image, track.landmarks[frame], self.face, track.boxes[frame])
        return self._cache[(key, frame)]


class OnsetApexMotion:
    """The onset→apex motion input (`data.input`: apex_minus_onset, flow, flow_strain; `data.flow_method`) of an
    interval of a long video, as `mer prepare` makes it: onset and apex frames cropped with the apex's alignment
    (`mer.face.flow.align_pair`, the tracked landmarks of the apex or of the frame with a face nearest to it), then
    `mer.face.flow.motion_channels`; (H, W, C) float16, cached per (video, onset, apex); zero when the onset is the
    apex frame (as `mer prepare`'s fallback). None when no frame of the interval has a face."""

    def __init__(
        self, frames: Mapping[Hashable, Sequence[str]], tracks: Mapping[Hashable, Any], face: FaceConfig, mode: str,
        method: str,
    ):  # fmt: skip
        self.frames, self.tracks, self.face, self.mode, self.method = frames, tracks, face, mode, method
        self._cache: dict[tuple[Hashable, int, int], np.ndarray] = {}

    def __call__(self, key: Hashable, interval: Interval) -> np.ndarray | None:
        """The motion input of `interval` in video `key` (None: no face in the interval)."""
        from mer.face.flow import align_pair, motion_channels

        track = self.tracks[key]
        apex = _nearest_face(track, interval, _apex(interval))
        if apex is None:
            return None
        onset = min(max(interval.onset, 0), len(self.frames[key]) - 1)
        if onset == apex:  # no motion: a zero input, as `mer prepare` gives such a clip (data.flow_fallback: zero)
            return np.zeros((self.face.size, self.face.size, INPUT_CHANNELS[self.mode]), np.float16)
        if (key, onset, apex) not in self._cache:
            files = self.frames[key]
            pair = align_pair(read_image(files[onset]), read_image(files[apex]), track.landmarks[apex], self.face,
                              track.boxes[apex])  # fmt: skip
            field = motion_channels(pair.onset, pair.apex, self.mode, self.method)
            self._cache[(key, onset, apex)] = field.astype(np.float16)
        return self._cache[(key, onset, apex)]


@dataclass
class LbpTopRecogniser:
    """LBP-TOP + SVM (the `lbptop` method) trained on the labelled truth intervals (of `train_kinds`, with a label in
    `classes`) of the training videos; with one class only it predicts that class, with none it predicts nothing."""

    feature: Callable[[Hashable, Interval], np.ndarray | None]
    svm_cfg: SVMConfig
    classes: Sequence[str]
    train_kinds: tuple[str, ...] = KINDS
    subjects: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    _svm: Any = None
    _constant: str | None = None

    def fit(self, videos: Sequence[Any], seed: int) -> None:
        """Fit on every labelled truth interval of `videos` whose clip has a face."""
        from mer.evaluation.svm import fit_svm

        self.subjects = sorted({v.subject for v in videos}, key=natural_key)
        xs, ys, groups = [], [], []
        for v in videos:
            for i in v.truth:
                if i.kind in self.train_kinds and i.label in self.classes:
                    x = self.feature(v.key, i)
                    if x is not None:
                        xs.append(x)
                        ys.append(i.label)
                        groups.append(v.subject)
        present = sorted(set(ys))
        self.info = {"subjects": self.subjects, "n_train": len(ys), "classes": present}
        self._svm, self._constant = None, None
        if len(present) >= 2:
            self._svm, svm_info = fit_svm(np.stack(xs), ys, groups, self.svm_cfg, seed)
            self.info["svm"] = {k: svm_info[k] for k in ("C", "kernel", "gamma", "inner_cv_f1", "fallback")}
        elif present:
            self._constant = present[0]
            self.info["note"] = f"one class in the training intervals: every interval is {present[0]}"
        else:
            self.info["note"] = "no labelled training interval: nothing is labelled"

    def predict(self, video: Any, intervals: Sequence[Interval]) -> list[str | None]:
        """A label per interval (None when its clip has no face or the recogniser has no class)."""
        out: list[str | None] = []
        for i in intervals:
            x = self.feature(video.key, i)
            if x is None or (self._svm is None and self._constant is None):
                out.append(None)
            else:
                out.append(self._constant if self._svm is None else str(self._svm.predict(x[None])[0]))
        return out


@dataclass
class NetworkRecogniser:
    """A network method's network (+ SVM on its embeddings, or its softmax: `loso.classifier`) fine-tuned on the inputs
    (`crop`: `ApexCrops`, or with a motion `data.input` `OnsetApexMotion`) of the labelled truth intervals (of
    `train_kinds`, with a label in the method's classes) of the training videos, from `pretrained` or from scratch,
    seeded with the fold's seed. `work` holds the inputs (PNG crops or `.npy` motion arrays, as `mer prepare` leaves
    them) and, while it trains, the network's logs. Fits are shared through `fitted` ({(training subjects, seed):
    state}): a fold's recogniser does not depend on the spotter."""

    crop: Callable[[Hashable, Interval], np.ndarray | None]
    cfg: Any  # mer.config.Config of the method
    work: Path
    pretrained: str | Path | None = None
    train_kinds: tuple[str, ...] = KINDS
    fitted: dict[Any, dict[str, Any]] = field(default_factory=dict)
    subjects: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    _state: dict[str, Any] = field(default_factory=dict)

    @property
    def motion(self) -> bool:
        """Whether the input is an onset→apex motion array (else the apex crop)."""
        return self.cfg.data.input in MOTION_INPUTS

    def _input_row(self, key: Hashable, interval: Interval, value: np.ndarray) -> dict[str, str]:
        """The prepared-table columns of one input, written once: `crop` (PNG) or `motion` + `motion_input` (.npy)."""
        import cv2

        name = hashlib.sha256(repr((key, _apex(interval), interval.onset, interval.offset)).encode()).hexdigest()[:24]
        if self.motion:
            path = self.work / "motion" / f"{name}.npy"
            row = {"motion": str(path), "motion_input": f"{self.cfg.data.input}:{self.cfg.data.flow_method}"}
        else:
            path = self.work / "crops" / f"{name}.png"
            row = {"crop": str(path)}
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            if self.motion:
                np.save(path, value, allow_pickle=False)
            else:
                cv2.imwrite(str(path), value)
        return row

    def fit(self, videos: Sequence[Any], seed: int) -> None:
        """Fine-tune on the input of every labelled truth interval of `videos` that has a face."""
        import shutil

        import pandas as pd

        from mer.config import class_names
        from mer.evaluation.loso import fit_network_and_svm

        self.subjects = sorted({v.subject for v in videos}, key=natural_key)
        cache_key = (tuple(self.subjects), seed)
        if cache_key in self.fitted:
            self._state = self.fitted[cache_key]
            self.info = dict(self._state["info"])
            return
        classes = list(class_names(self.cfg.data))
        rows = []
        for v in videos:
            for i in v.truth:
                if i.kind in self.train_kinds and i.label in classes:
                    value = self.crop(v.key, i)
                    if value is not None:
                        rows.append({"subject": v.subject, "label": i.label, "kind": "micro",
                                     **self._input_row(v.key, i, value)})  # fmt: skip
        present = sorted({r["label"] for r in rows})
        info: dict[str, Any] = {"subjects": self.subjects, "n_train": len(rows), "classes": present,
                                "classifier": self.cfg.loso.classifier, "seed": seed,
                                "pretrained": Path(self.pretrained).name if self.pretrained else None}  # fmt: skip
        state: dict[str, Any] = {"module": None, "svm": None, "constant": None, "classes": classes}
        if len(present) >= 2:
            cfg = dataclasses.replace(self.cfg, seed=seed)  # the fold's seed: weights, sampler and augmentation
            train_dir = self.work / "train"
            shutil.rmtree(train_dir, ignore_errors=True)
            fitted = fit_network_and_svm(
                cfg,
                pd.DataFrame(rows),
                train_dir,
                pretrained=self.pretrained,
                seed=seed,
                run_name=f"{cfg.name}-str",
                job_type="str",
                fit_classifier=cfg.loso.classifier == "svm",
                enable_progress=False,
            )
            shutil.rmtree(train_dir, ignore_errors=True)
            state["module"], state["svm"] = fitted.result.module, fitted.svm
            info["epochs"] = fitted.result.epochs_run
            if fitted.svm_info is not None:
                info["svm"] = {k: fitted.svm_info[k] for k in ("C", "kernel", "gamma", "inner_cv_f1", "fallback")}
        elif present:
            state["constant"] = present[0]
            info["note"] = f"one class in the training intervals: every interval is {present[0]}"
        else:
            info["note"] = "no labelled training interval: nothing is labelled"
        state["info"] = info
        self.fitted[cache_key] = self._state = state
        self.info = dict(info)

    def predict(self, video: Any, intervals: Sequence[Interval]) -> list[str | None]:
        """A label per interval from its input (None when no frame of it has a face or there is no class)."""
        import torch

        from mer.config import input_channels
        from mer.data.motion import load_motion
        from mer.data.transforms import normalize, resize_crops

        state = self._state
        crops = [self.crop(video.key, i) for i in intervals]
        found = [k for k, c in enumerate(crops) if c is not None]
        out: list[str | None] = [None] * len(intervals)
        if not found or (state.get("module") is None and state.get("constant") is None):
            return out
        if state["module"] is None:
            for k in found:
                out[k] = state["constant"]
            return out
        module = state["module"]
        size = self.cfg.data.image_size
        if self.motion:  # scaled as the training inputs are: through the files and the loader of `mer prepare`'s
            paths = [self._input_row(video.key, intervals[k], crops[k])["motion"] for k in found]  # type: ignore[arg-type]
            x = torch.from_numpy(load_motion(paths, size, self.cfg.data.input, input_channels(self.cfg.data)))
        else:
            x = normalize(resize_crops(np.stack([crops[k] for k in found]), size))
        module.eval()
        with torch.inference_mode():
            res = module.predict_step(x.to(next(module.parameters()).device), 0)
        if state["svm"] is not None:
            labels = [str(y) for y in state["svm"].predict(res["embeddings"].float().cpu().numpy())]
        else:
            labels = [state["classes"][j] for j in res["probs"].argmax(-1).cpu().numpy()]
        for k, y in zip(found, labels, strict=True):
            out[k] = y
        return out


def recognise_fold(
    videos: Sequence[Any], subject: str, predictions: Mapping[Hashable, Sequence[Interval]],
    make: Callable[[], Recogniser], seed: int = 0,
) -> tuple[dict[Hashable, list[Interval]], dict[str, Any]]:  # fmt: skip
    """One fold of `recognise_loso`: a recogniser fitted on every subject but `subject` labels that subject's spotted
    intervals; returns them labelled ({key: intervals}) and what the recogniser recorded (`subjects` it saw)."""
    recogniser = make()
    recogniser.fit([v for v in videos if v.subject != subject], seed)
    if subject in recogniser.subjects:
        raise RuntimeError(f"the recogniser of fold {subject} was trained on {subject}")
    info = getattr(recogniser, "info", None) or {"subjects": list(recogniser.subjects)}
    labelled: dict[Hashable, list[Interval]] = {}
    for v in videos:
        if v.subject == subject:
            spotted = list(predictions.get(v.key, []))
            labels = recogniser.predict(v, spotted)
            labelled[v.key] = [dataclasses.replace(s, label=y) for s, y in zip(spotted, labels, strict=True)]
    return labelled, info


def recognise_loso(
    videos: Sequence[Any], predictions: Mapping[Hashable, Sequence[Interval]], make: Callable[[], Recogniser],
    seed: int = 0,
) -> tuple[dict[Hashable, list[Interval]], dict[str, Any]]:  # fmt: skip
    """Label every video's spotted intervals with a recogniser fitted on the other subjects' videos; returns the
    labelled predictions and, per held-out subject, what its recogniser recorded (`subjects` it was trained on)."""
    labelled: dict[Hashable, list[Interval]] = {}
    info: dict[str, Any] = {}
    for subject in sorted({v.subject for v in videos}, key=natural_key):
        mine, info[subject] = recognise_fold(videos, subject, predictions, make, seed)
        labelled.update(mine)
    return labelled, info


def str_labels(videos: Sequence[Any], kinds: Sequence[str]) -> list[str]:
    """The emotion classes STR scores: every label of the truth intervals of `kinds` (the reference script's rule)."""
    return sorted({i.label for v in videos for i in v.truth if i.kind in kinds and i.label is not None})


def subject_str_counts(
    videos: Sequence[Any], labelled: Mapping[Hashable, Sequence[Interval]], kinds: Sequence[str], labels: Sequence[str]
) -> dict[tuple[str, str], tuple[Counts, dict[str, Counts]]]:
    """Per (dataset, subject): spotting counts over `kinds` and one-vs-rest counts per label over its TP pairs."""
    out: dict[tuple[str, str], tuple[Counts, dict[str, Counts]]] = {}
    for v in videos:
        spotted, truth = {v.key: labelled.get(v.key, [])}, {v.key: v.truth}
        spot = Counts()
        for kind, c in pooled_counts(spotted, truth).items():
            if kind in kinds:
                spot = spot + c
        pairs = [(s, t) for s, t in tp_pairs(spotted, truth, kinds) if t.label in labels]
        per = {y: Counts(sum(s.label == y and t.label == y for s, t in pairs),
                         sum(s.label == y and t.label != y for s, t in pairs),
                         sum(s.label != y and t.label == y for s, t in pairs)) for y in labels}  # fmt: skip
        old_spot, old_per = out.get((v.dataset, v.subject), (Counts(), {y: Counts() for y in labels}))
        out[(v.dataset, v.subject)] = (old_spot + spot, {y: old_per[y] + per[y] for y in labels})
    return out


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)


def _str_from_counts(spot: np.ndarray, per: np.ndarray) -> dict[str, np.ndarray]:
    """STR metrics from summed counts: spot (3, R) tp/fp/fn; per (L, 3, R) per-label tp/fp/fn (R resamples)."""
    f1_spot = _ratio(2 * spot[0], 2 * spot[0] + spot[1] + spot[2])
    precision = _ratio(per[:, 0], per[:, 0] + per[:, 1])
    recall = _ratio(per[:, 0], per[:, 0] + per[:, 2])
    f1 = _ratio(2 * per[:, 0], 2 * per[:, 0] + per[:, 1] + per[:, 2])
    mp, mr = precision.mean(axis=0), recall.mean(axis=0)
    f1_analysis = _ratio(2 * mp * mr, mp + mr)
    return {"strs": f1_spot * f1_analysis, "f1_spot": f1_spot, "f1_analysis": f1_analysis, "uf1": f1.mean(axis=0),
            "uar": mr}  # fmt: skip


def bootstrap_str(
    per_seed: Sequence[dict[tuple[str, str], tuple[Counts, dict[str, Counts]]]],
    labels: Sequence[str],
    n_resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> dict[str, list[float]]:
    """Percentile interval over subjects of the seed-mean STR metrics (`STR_METRICS`): {metric: [low, high]}.

    Each resample draws, within every dataset, as many subjects as it has (with replacement), sums their spotting
    and per-label counts and scores them; with several seeds, each seed is scored on the same draw and averaged.
    """
    subjects = sorted(per_seed[0], key=lambda s: natural_key("|".join(s)))
    weights = resample_weights([d for d, _ in subjects], n_resamples, seed)
    values: dict[str, list[np.ndarray]] = {m: [] for m in STR_METRICS}
    for counts in per_seed:
        spot = np.array([[getattr(counts[x][0], f) for x in subjects] for f in ("tp", "fp", "fn")], float)
        per = np.array([[[getattr(counts[x][1][y], f) for x in subjects] for f in ("tp", "fp", "fn")]
                        for y in labels], float).reshape(len(labels), 3, len(subjects))  # fmt: skip
        scores = _str_from_counts(spot @ weights.T, per @ weights.T)
        for m in STR_METRICS:
            values[m].append(scores[m])
    tail = (1 - level) / 2 * 100
    out = {}
    for m in STR_METRICS:
        low, high = np.percentile(np.mean(values[m], axis=0), [tail, 100 - tail])
        out[m] = [float(low), float(high)]
    return out


def str_row(scores: dict[str, Any]) -> dict[str, float]:
    """The STR metrics (`STR_METRICS`) of one `str_scores` result."""
    a = scores["analysis"]
    return {"strs": scores["strs"], "f1_spot": scores["spotting"]["f1"], "f1_analysis": a["f1"], "uf1": a["uf1"],
            "uar": a["uar"]}  # fmt: skip


def str_summary(rows: Sequence[dict[str, float]]) -> dict[str, float | None]:
    """Mean and sample sd (None for one seed) over seeds of each STR metric."""
    out: dict[str, float | None] = {}
    for m in STR_METRICS:
        values = np.array([r[m] for r in rows], dtype=float)
        out[m] = float(values.mean())
        out[f"{m}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else None
    return out


def evaluate_str(
    videos: Sequence[Any],
    per_seed: Sequence[tuple[int, Mapping[Hashable, Sequence[Interval]]]],
    make: Callable[[], Recogniser],
    n_resamples: int = RESAMPLES,
) -> dict[str, Any]:
    """STR of a spotter's LOSO predictions, one (seed, predictions) per seed: per-seed scores, mean ± sd and the
    subject bootstrap interval for each set of kinds in `STR_KINDS`, and what each fold's recogniser was trained on."""
    labelled = []
    folds: dict[int, dict[str, Any]] = {}
    for seed, predictions in per_seed:
        runs, folds[seed] = recognise_loso(videos, predictions, make, seed)
        labelled.append((seed, runs))
    return str_results(videos, labelled, folds, n_resamples)


def str_results(
    videos: Sequence[Any],
    labelled: Sequence[tuple[int, Mapping[Hashable, Sequence[Interval]]]],
    folds: Mapping[int, Mapping[str, Any]],
    n_resamples: int = RESAMPLES,
) -> dict[str, Any]:
    """The scores of `evaluate_str` from labelled predictions, one (seed, {key: intervals}) per seed, and what each
    fold's recogniser recorded ({seed: {subject: info}}): what a resumed run rebuilds from its fold files."""
    truth = {v.key: v.truth for v in videos}
    out: dict[str, Any] = {"seeds": [s for s, _ in labelled], "recognisers": dict(folds), "scores": {}}
    for name, kinds in STR_KINDS.items():
        labels = str_labels(videos, kinds)
        rows = [str_row(str_scores(runs, truth, labels, kinds)) for _, runs in labelled]
        counts = [subject_str_counts(videos, runs, kinds, labels) for _, runs in labelled]
        out["scores"][name] = {"kinds": list(kinds), "labels": labels, "per_seed": rows, "summary": str_summary(rows),
                               "bootstrap": bootstrap_str(counts, labels, n_resamples)}  # fmt: skip
    out["labelled"] = dict(labelled[-1][1])
    return out
