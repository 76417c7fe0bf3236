"""Spotting evaluated subject-wise: leave one subject out, every setting chosen on the training subjects only, seeds
and a subject bootstrap, scored with the MEGC interval metric (`mer.spotting.metrics`).

A spotter is any object with `fit(train videos, seed)` and `predict(video) -> intervals`; `run_loso` fits it once per
held-out subject on the other subjects' videos and predicts the held-out subject's videos, so the pooled predictions
of a run never saw their own subject. Two spotters live here:

- `LearnedSpotter`: per-frame features (a video's frames × D array, e.g. the region flow features of
  `mer.spotting.features`) → a small temporal convolution network predicting, per type (ME, MaE), an apex-likelihood
  curve (target: a Gaussian around each annotated apex, width a quarter of the interval) → peaks above a threshold →
  intervals of the training subjects' median onset-to-apex and apex-to-offset lengths. The threshold of each type is
  the one (of a grid) with the best F1 on the training videos' own curves; the network, the lengths and the thresholds
  never see the held-out subject.
- `ThresholdSpotter`: any per-video spotting function with one free setting (the MEGC baseline's p), the setting
  chosen from a grid by the pooled overall F1 on the training videos.

`subject_counts` and `bootstrap_f1` give the subject-level bootstrap interval of a run's F1 (the resampling of
`mer.evaluation.bootstrap.resample_weights`: subjects drawn with replacement within each dataset).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy.signal import find_peaks

from mer.data.intervals import KINDS, Interval
from mer.evaluation.bootstrap import LEVEL, RESAMPLES, SEED, resample_weights
from mer.files import natural_key
from mer.spotting.metrics import OVERALL, Counts, pooled_counts, spotting_scores
from mer.spotting.recognise import Recogniser, recognise_fold, str_results

THRESHOLDS = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2).tolist())  # learned spotter: peak heights tried
# MEGC2020 baseline F1 (He et al. 2020), shown beside results as context only: other splits, thresholds and data
PUBLISHED = {
    "casme_sq": {"MaE": 0.1196, "ME": 0.0082, OVERALL: 0.0376},
    "samm_lv": {"MaE": 0.0629, "ME": 0.0364, OVERALL: 0.0445},
}


@dataclass
class SpotVideo:
    """One video as a spotter sees it: key, subject, frame rate, per-frame features, ground truth, extra inputs."""

    key: Hashable  # (dataset, subject, video)
    dataset: str
    subject: str
    fps: float
    features: np.ndarray  # frames × D, NaN where not computable (no face)
    truth: list[Interval]
    extra: Any = None  # what a ThresholdSpotter's function needs (e.g. `VideoFeatures` for the baseline)

    @property
    def n_frames(self) -> int:
        """Frames in the video."""
        return len(self.features)


class Spotter(Protocol):
    """What `run_loso` needs: fit on training videos, predict one video."""

    def fit(self, videos: Sequence[SpotVideo], seed: int) -> None: ...

    def predict(self, video: SpotVideo) -> list[Interval]: ...


def folds(videos: Sequence[SpotVideo]) -> list[str]:
    """The held-out subjects of a LOSO run, in natural order."""
    return sorted({v.subject for v in videos}, key=natural_key)


@dataclass
class FoldRun:
    """One fold of one seed: the held-out subject, what the spotter chose on the training subjects, its intervals of
    the held-out subject's videos ({key: intervals}) and, with a recogniser, those intervals labelled and what the
    recogniser recorded (the subjects it was trained on). All the pooled scores need, so a run can resume from folds."""

    subject: str
    seed: int
    chosen: Any
    predictions: dict[Hashable, list[Interval]]
    labelled: dict[Hashable, list[Interval]] | None = None
    recogniser: dict[str, Any] | None = None


class FoldStore(Protocol):
    """Where finished folds are kept (`mer.spotting.run_folder`): `load` gives a complete fold or None, `save`
    writes one and gives back what it wrote (so a fresh fold and a reloaded one are the same to the scores)."""

    def load(self, seed: int, subject: str) -> FoldRun | None: ...

    def save(self, fold: FoldRun) -> FoldRun: ...


def spot_fold(videos: Sequence[SpotVideo], subject: str, make: Callable[[], Spotter], seed: int = 0,
              recognise: Callable[[], Recogniser] | None = None) -> FoldRun:  # fmt: skip
    """Fit a spotter on every subject but `subject` (with `seed`) and spot that subject's videos; with `recognise`,
    also label them with a recogniser fitted on the same training subjects. Depends on nothing but its arguments."""
    spotter = make()
    spotter.fit([v for v in videos if v.subject != subject], seed)
    predictions = {v.key: spotter.predict(v) for v in videos if v.subject == subject}
    fold = FoldRun(subject, seed, getattr(spotter, "chosen", None), predictions)
    if recognise is not None:
        fold.labelled, fold.recogniser = recognise_fold(videos, subject, predictions, recognise, seed)
    return fold


def loso_folds(
    videos: Sequence[SpotVideo],
    make: Callable[[], Spotter],
    seed: int = 0,
    progress: bool = False,
    recognise: Callable[[], Recogniser] | None = None,
    store: FoldStore | None = None,
) -> list[FoldRun]:
    """Every fold of one seed, in subject order; a fold `store` already holds is read back, not recomputed."""
    subjects = folds(videos)
    if len(subjects) < 2:
        raise ValueError(f"spotting LOSO needs at least 2 subjects, got {len(subjects)}")
    iterator: Sequence[str] = subjects
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(subjects, desc="spotting folds", unit="fold", leave=False)
    out = []
    for subject in iterator:
        fold = store.load(seed, subject) if store is not None else None
        if fold is None:
            fold = spot_fold(videos, subject, make, seed, recognise)
            if store is not None:
                fold = store.save(fold)
        out.append(fold)
    return out


def run_loso(videos: Sequence[SpotVideo], make: Callable[[], Spotter], seed: int = 0,
             progress: bool = False) -> tuple[dict[Hashable, list[Interval]], dict[str, Any]]:  # fmt: skip
    """Leave-one-subject-out predictions of every video ({key: intervals}) and what each fold chose ({subject: ...})."""
    runs = loso_folds(videos, make, seed, progress)
    return {k: v for f in runs for k, v in f.predictions.items()}, {f.subject: f.chosen for f in runs}


def subject_counts(videos: Sequence[SpotVideo], predictions: dict[Hashable, list[Interval]]
                   ) -> dict[tuple[str, str], dict[str, Counts]]:  # fmt: skip
    """TP/FP/FN per (dataset, subject) and kind: what a subject bootstrap resamples."""
    out: dict[tuple[str, str], dict[str, Counts]] = {}
    for v in videos:
        counts = pooled_counts({v.key: predictions.get(v.key, [])}, {v.key: v.truth})
        mine = out.setdefault((v.dataset, v.subject), {k: Counts() for k in counts})
        for k, c in counts.items():
            mine[k] = mine[k] + c
    return out


def bootstrap_f1(
    per_seed: Sequence[dict[tuple[str, str], dict[str, Counts]]],
    n_resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> dict[str, list[float]]:
    """Percentile interval over subjects of the seed-mean pooled F1, per kind and overall: {kind: [low, high]}.

    Each resample draws, within every dataset, as many subjects as it has (with replacement), sums their counts and
    scores them; with several seeds, each seed is scored on the same draw and the F1s are averaged.
    """
    subjects = sorted(per_seed[0], key=lambda s: natural_key("|".join(s)))
    weights = resample_weights([d for d, _ in subjects], n_resamples, seed)
    out = {}
    for kind in (*KINDS, OVERALL):
        f1s = np.zeros((len(per_seed), n_resamples))
        for s, counts in enumerate(per_seed):
            tp = np.array([counts[x][kind].tp for x in subjects], dtype=float)
            fp = np.array([counts[x][kind].fp for x in subjects], dtype=float)
            fn = np.array([counts[x][kind].fn for x in subjects], dtype=float)
            t, p, n = weights @ tp, weights @ fp, weights @ fn
            with np.errstate(invalid="ignore", divide="ignore"):
                f1s[s] = np.where(2 * t + p + n > 0, 2 * t / (2 * t + p + n), 0.0)
        tail = (1 - level) / 2 * 100
        low, high = np.percentile(f1s.mean(axis=0), [tail, 100 - tail])
        out[kind] = [float(low), float(high)]
    return out


def seed_summary(scores: Sequence[dict[str, dict[str, Any]]]) -> dict[str, dict[str, float | None]]:
    """Mean and sample sd (None for one seed) over seeds of precision, recall and F1 per kind and overall."""
    out: dict[str, dict[str, float | None]] = {}
    for kind in (*KINDS, OVERALL):
        row: dict[str, float | None] = {}
        for m in ("precision", "recall", "f1"):
            values = np.array([s[kind][m] for s in scores], dtype=float)
            row[m] = float(values.mean())
            row[f"{m}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else None
        out[kind] = row
    return out


# --- the threshold spotter (the MEGC baseline's p, chosen on training subjects) -------------------------------------


@dataclass
class ThresholdSpotter:
    """A per-video spotting function `spot(video, setting) -> intervals` whose one setting is chosen from `grid` by the
    pooled overall F1 on the training videos (ties: the first in the grid)."""

    spot: Callable[[SpotVideo, float], list[Interval]]
    grid: Sequence[float]
    chosen: float | None = None

    def fit(self, videos: Sequence[SpotVideo], seed: int) -> None:
        """Choose the setting on `videos` (the seed is unused: the function is deterministic)."""
        truth = {v.key: v.truth for v in videos}
        best = -1.0
        for value in self.grid:
            spotted = {v.key: self.spot(v, value) for v in videos}
            f1 = spotting_scores(spotted, truth)[OVERALL]["f1"]
            if f1 > best:
                best, self.chosen = f1, float(value)

    def predict(self, video: SpotVideo) -> list[Interval]:
        """The spotted intervals of one video at the chosen setting."""
        if self.chosen is None:
            raise RuntimeError("ThresholdSpotter.predict before fit")
        return self.spot(video, self.chosen)


# --- the learned spotter ------------------------------------------------------------------------------------------


@dataclass
class LearnedConfig:
    """Sizes of the learned spotter: network width and depth, training length, sequence crop, grid of thresholds."""

    channels: int = 32
    layers: int = 4  # dilated temporal convolutions (receptive field 2^(layers+1) - 1 frames)
    epochs: int = 60
    lr: float = 3e-3
    crop_seconds: float = 8.0  # training sequences are random crops of this length (whole videos when shorter)
    thresholds: tuple[float, ...] = THRESHOLDS
    sigma_fraction: float = 0.25  # width of the apex target: this share of the interval's length


def _normalise(features: np.ndarray) -> np.ndarray:
    """Per video: NaN → 0, each column centred on its median and scaled by its interquartile range."""
    x = features.astype(np.float32)
    with warnings.catch_warnings():  # all-NaN columns (a feature never computable) give NaN, then 0
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(x, axis=0)
        q = np.nanpercentile(x, [25, 75], axis=0)
    scale = np.where(np.isfinite(q[1] - q[0]) & (q[1] - q[0] > 1e-6), q[1] - q[0], 1.0)
    out = (x - np.nan_to_num(med)) / scale
    return np.clip(np.nan_to_num(out, nan=0.0), -20, 20).astype(np.float32)


def apex_targets(video: SpotVideo, sigma_fraction: float) -> np.ndarray:
    """2 × frames targets (ME, MaE): the maximum of Gaussians around each annotated apex (its middle when no apex)."""
    t = np.arange(video.n_frames, dtype=np.float32)
    out = np.zeros((len(KINDS), video.n_frames), np.float32)
    for i in video.truth:
        apex = i.apex if i.apex is not None else (i.onset + i.offset) // 2
        sigma = max(1.0, sigma_fraction * i.length)
        out[KINDS.index(i.kind)] = np.maximum(out[KINDS.index(i.kind)], np.exp(-0.5 * ((t - apex) / sigma) ** 2))
    return out


@contextmanager
def _one_thread() -> Iterator[None]:
    """Torch on one thread while the tiny network trains or predicts: on a 2-core machine under load, 20 epochs took
    1.7 s on one thread and 17.7 s on two (thread hand-offs cost more than the convolutions)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _network(inputs: int, cfg: LearnedConfig) -> Any:
    import torch.nn as nn

    layers: list[nn.Module] = [nn.Conv1d(inputs, cfg.channels, 1)]
    for d in range(cfg.layers):
        layers += [nn.Conv1d(cfg.channels, cfg.channels, 3, padding=2**d, dilation=2**d), nn.GELU()]
    layers.append(nn.Conv1d(cfg.channels, len(KINDS), 1))
    return nn.Sequential(*layers)


def peaks_to_intervals(curve: np.ndarray, kind: str, height: float, left: int, right: int) -> list[Interval]:
    """Peaks of a curve above `height`, at least left + right frames apart, as [peak − left, peak + right]."""
    n = len(curve)
    peaks, _ = find_peaks(curve, height=height, distance=max(1, left + right))
    return [Interval(max(0, int(p) - left), min(n - 1, int(p) + right), kind, apex=int(p), score=float(curve[p]))
            for p in peaks]  # fmt: skip


@dataclass
class LearnedSpotter:
    """Per-frame features → temporal CNN → apex-likelihood per type → peaks → intervals (see the module docstring)."""

    cfg: LearnedConfig = field(default_factory=LearnedConfig)
    chosen: dict[str, Any] | None = None
    _net: Any = None
    _lengths: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind → (apex − onset, offset − apex) in s·fps

    def _curves(self, video: SpotVideo) -> np.ndarray:
        import torch

        with torch.no_grad(), _one_thread():
            x = torch.from_numpy(_normalise(video.features).T[None])
            return torch.sigmoid(self._net(x))[0].numpy()

    def _spans(self, kind: str, fps: float) -> tuple[int, int]:
        left, right = self._lengths[kind]
        return max(1, int(round(left * fps))), max(1, int(round(right * fps)))

    def fit(self, videos: Sequence[SpotVideo], seed: int) -> None:
        """Train on `videos` (seeded), then choose each type's interval lengths and threshold on them."""
        import torch

        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        cfg = self.cfg
        self._net = _network(videos[0].features.shape[1], cfg)
        xs = [_normalise(v.features).T for v in videos]
        ys = [apex_targets(v, cfg.sigma_fraction) for v in videos]
        pos = np.concatenate([y.reshape(len(KINDS), -1) for y in ys], axis=1)
        weight = torch.tensor((pos.size / len(KINDS) - pos.sum(1)) / np.maximum(pos.sum(1), 1.0), dtype=torch.float32)
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=weight.clamp(1.0, 200.0)[:, None])
        opt = torch.optim.Adam(self._net.parameters(), lr=cfg.lr)
        self._net.train()
        with _one_thread():
            self._train(cfg, xs, ys, videos, rng, loss_fn, opt)
        self._net.eval()
        self._choose(videos)

    def _train(self, cfg: LearnedConfig, xs: list, ys: list, videos: Sequence[SpotVideo], rng: np.random.Generator,
               loss_fn: Any, opt: Any) -> None:  # fmt: skip
        import torch

        for _ in range(cfg.epochs):
            for i in rng.permutation(len(videos)):
                crop = max(8, int(cfg.crop_seconds * videos[i].fps))
                start = int(rng.integers(0, max(1, xs[i].shape[1] - crop + 1)))
                x = torch.from_numpy(xs[i][None, :, start : start + crop])
                y = torch.from_numpy(ys[i][None, :, start : start + crop])
                opt.zero_grad()
                loss = loss_fn(self._net(x), y)
                loss.backward()
                opt.step()

    def _choose(self, videos: Sequence[SpotVideo]) -> None:
        """Interval lengths (medians of the training truth) and each type's threshold (best training F1)."""
        cfg = self.cfg
        for kind in KINDS:  # interval lengths: medians over the training truth, in seconds
            spans = [((i.apex if i.apex is not None else (i.onset + i.offset) // 2) - i.onset, i.offset
                      - (i.apex if i.apex is not None else (i.onset + i.offset) // 2), v.fps)
                     for v in videos for i in v.truth if i.kind == kind]  # fmt: skip
            if spans:
                self._lengths[kind] = (float(np.median([a / f for a, _, f in spans])),
                                       float(np.median([b / f for _, b, f in spans])))  # fmt: skip
            else:
                self._lengths[kind] = (0.1, 0.1)
        curves = {v.key: self._curves(v) for v in videos}
        truth = {v.key: v.truth for v in videos}
        thresholds: dict[str, float] = {}
        for k, kind in enumerate(KINDS):
            best = (-1.0, cfg.thresholds[-1])
            for h in cfg.thresholds:
                spotted = {v.key: peaks_to_intervals(curves[v.key][k], kind, h, *self._spans(kind, v.fps))
                           for v in videos}  # fmt: skip
                f1 = spotting_scores(spotted, truth)[kind]["f1"]
                if f1 > best[0]:
                    best = (f1, h)
            thresholds[kind] = best[1]
        self.chosen = {"thresholds": thresholds, "lengths_s": dict(self._lengths)}

    def predict(self, video: SpotVideo) -> list[Interval]:
        """The spotted intervals of one video, both types, in onset order."""
        if self.chosen is None:
            raise RuntimeError("LearnedSpotter.predict before fit")
        curves = self._curves(video)
        out = []
        for k, kind in enumerate(KINDS):
            out += peaks_to_intervals(curves[k], kind, self.chosen["thresholds"][kind], *self._spans(kind, video.fps))
        return sorted(out, key=lambda i: (i.onset, i.offset))


def evaluate_spotter(
    videos: Sequence[SpotVideo],
    make: Callable[[], Spotter],
    seeds: Sequence[int] = (0,),
    n_resamples: int = RESAMPLES,
    progress: bool = False,
    recognise: Callable[[], Recogniser] | None = None,
    store: FoldStore | None = None,
) -> dict[str, Any]:
    """LOSO per seed; per-seed scores, their mean ± sd, the subject bootstrap interval of the seed-mean F1, and the
    settings each fold chose. `predictions` holds the last seed's intervals per video.

    With `recognise` (a recogniser factory), each seed's spotted intervals are also labelled by a recogniser fitted
    per fold on the training subjects only (`mer.spotting.recognise`): `str` holds the STR scores and `predictions`
    the labelled intervals. With a `store`, folds it holds are read back instead of recomputed (a resumed run)."""
    scores, counts, chosen = [], [], {}
    predictions: dict[Hashable, list[Interval]] = {}
    labelled, recognisers = [], {}
    truth = {v.key: v.truth for v in videos}
    for seed in seeds:
        runs = loso_folds(videos, make, seed, progress, recognise, store)
        predictions = {k: v for f in runs for k, v in f.predictions.items()}
        chosen[seed] = {f.subject: f.chosen for f in runs}
        scores.append(spotting_scores(predictions, truth))
        counts.append(subject_counts(videos, predictions))
        if recognise is not None:
            labelled.append((seed, {k: v for f in runs for k, v in (f.labelled or {}).items()}))
            recognisers[seed] = {f.subject: f.recogniser for f in runs}
    out = {
        "seeds": list(seeds),
        "per_seed": scores,
        "summary": seed_summary(scores),
        "bootstrap": bootstrap_f1(counts, n_resamples),
        "chosen": chosen,
        "predictions": predictions,
    }
    if recognise is not None:
        out["str"] = str_results(videos, labelled, recognisers, n_resamples)
        out["predictions"] = out["str"].pop("labelled")
    return out
