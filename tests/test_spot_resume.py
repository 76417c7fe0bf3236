"""`mer spot --data` resumes fold by fold: a killed run, called again, reruns only the missing folds and ends with the
report of an uninterrupted run; other inputs into the same OUT are refused with one line (exit 2).

Fast: the datasets are synthetic (the videos' region features are made here, the MEGC baseline is a peak threshold on
one feature column, the recogniser predicts its training intervals' commonest class); the run folder, the fold loop,
the learned spotter and the scoring are the real ones."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import mer.spotting.datasets as datasets
import mer.spotting.run_folder as run_folder
from mer.cli import main
from mer.config import load_config
from mer.data.intervals import Interval
from mer.data.longvideo import LongVideo
from mer.spotting.evaluate import LearnedConfig, LearnedSpotter, SpotVideo, ThresholdSpotter, peaks_to_intervals

SUBJECTS = 4
FRAMES = 160
CLASSES = ("negative", "positive", "surprise")
FITS: Counter[str] = Counter()  # spotter fits per spotter, in this process
KILL_AT: list[int] = []  # raise Killed at this total number of fits (empty: never)


class Killed(Exception):
    """The run was 'killed' mid-way."""


def _fit_counted(name: str) -> None:
    FITS[name] += 1
    if KILL_AT and sum(FITS.values()) == KILL_AT[0]:
        raise Killed(f"killed at fit {KILL_AT[0]}")


class CountedThreshold(ThresholdSpotter):
    def fit(self, videos, seed):
        _fit_counted("baseline")
        super().fit(videos, seed)


class CountedLearned(LearnedSpotter):
    def fit(self, videos, seed):
        _fit_counted("learned")
        super().fit(videos, seed)


class Commonest:
    """Labels every interval with its training truth's commonest class."""

    def __init__(self) -> None:
        self.subjects: list[str] = []
        self.label: str | None = None
        self.info: dict = {}

    def fit(self, videos, seed):
        self.subjects = sorted({v.subject for v in videos})
        labels = Counter(i.label for v in videos for i in v.truth if i.label)
        self.label = sorted(labels.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        self.info = {"subjects": self.subjects, "n_train": sum(labels.values()), "classes": sorted(labels)}

    def predict(self, video, intervals):
        return [self.label for _ in intervals]


def _long_videos(root: Path) -> list[LongVideo]:
    rng = np.random.default_rng(0)
    frame = root / "frame.png"
    frame.parent.mkdir(parents=True, exist_ok=True)
    frame.write_bytes(b"x" * 10)
    out = []
    for s in range(SUBJECTS):
        truth = []
        for j, (kind, centre, half) in enumerate((("ME", 40, 4), ("MaE", 90, 12), ("ME", 135, 4))):
            c = centre + int(rng.integers(-4, 5))
            truth.append(Interval(c - half, c + half, kind, apex=c, label=CLASSES[(s + j) % 3]))
        out.append(LongVideo("casme_sq", f"casme_sq/s{s}", f"v{s}", [str(frame)] * FRAMES, 30.0, truth))
    return out


def _features(video: LongVideo) -> np.ndarray:
    rng = np.random.default_rng(int(video.subject[-1]))
    t = np.arange(FRAMES)
    x = rng.normal(0, 0.2, (FRAMES, 3)).astype(np.float32)
    for i in video.intervals:
        col, amp = (0, 2.0) if i.kind == "ME" else (1, 4.0)
        x[:, col] += amp * np.exp(-0.5 * ((t - i.apex) / (i.length / 4)) ** 2)
    return x


def _baseline(video: SpotVideo, p: float) -> list[Interval]:
    curve = np.nan_to_num(video.features[:, 0])
    return peaks_to_intervals(curve / max(curve.max(), 1e-6), "ME", p, 4, 4)


@pytest.fixture
def synthetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A synthetic casme_sq root (what the readers and feature extraction give is made here); returns the root."""
    root = tmp_path / "data"
    videos = _long_videos(root)
    monkeypatch.setattr(datasets, "read_long", lambda name, r: (videos, datasets.pd.DataFrame()))
    monkeypatch.setattr(datasets, "spot_videos", lambda vids, cfg, cache, progress=True: [
        SpotVideo(v.key, v.dataset, v.subject, v.fps, _features(v), list(v.intervals)) for v in vids])  # fmt: skip
    monkeypatch.setattr(datasets, "baseline_spot", _baseline)
    monkeypatch.setattr(datasets, "ThresholdSpotter", CountedThreshold)
    monkeypatch.setattr(datasets, "LearnedSpotter", CountedLearned)
    monkeypatch.setattr(datasets, "recogniser_factory", lambda cfg, vids, spot, *a: Commonest)
    original = datasets.run_spot_datasets

    def short(*args, **kwargs):  # a short training keeps the test fast
        return original(*args, **{**kwargs, "learned": LearnedConfig(channels=8, layers=2, epochs=4),
                                  "n_resamples": 50, "progress": True})  # fmt: skip

    monkeypatch.setattr(datasets, "run_spot_datasets", short)
    FITS.clear()
    KILL_AT.clear()
    return root


def _run(root: Path, out: Path) -> None:
    datasets.run_spot_datasets({"casme_sq": root}, out, seeds=(0, 1), recognise=load_config("method/lbptop"))


def _outputs(out: Path) -> dict[str, str]:
    names = ["spot_report.md", "spot_scores.json", "predictions_casme_sq_baseline.csv",
             "predictions_casme_sq_learned.csv"]  # fmt: skip
    return {n: (out / n).read_text() for n in names}


def test_a_killed_run_resumes_and_ends_as_an_uninterrupted_one(synthetic: Path, tmp_path: Path, capsys) -> None:
    whole = tmp_path / "whole"
    _run(synthetic, whole)
    assert FITS == {"baseline": SUBJECTS, "learned": 2 * SUBJECTS}  # one fit per fold: 1 baseline seed, 2 learned
    expected = _outputs(whole)
    assert "Spot-then-recognize" in expected["spot_report.md"]
    for spotter in ("baseline", "learned"):  # something was spotted and labelled: the equalities below mean something
        rows = expected[f"predictions_casme_sq_{spotter}.csv"].splitlines()[1:]
        assert rows and all(r.split(",")[-1] in CLASSES for r in rows)
    # killed during its 7th fold (the 3rd fold of the learned spotter's seed 0): 6 folds finished
    FITS.clear()
    KILL_AT.append(7)
    resumed = tmp_path / "resumed"
    with pytest.raises(Killed):
        _run(synthetic, resumed)
    assert len(list((resumed / "folds").rglob("*.json"))) == 6 and not (resumed / "spot_report.md").exists()
    FITS.clear()
    KILL_AT.clear()
    capsys.readouterr()
    _run(synthetic, resumed)
    assert FITS == {"learned": 2 * SUBJECTS - 2}  # the 6 finished folds were read back, not rerun
    assert "6 folds already complete" in capsys.readouterr().out
    assert _outputs(resumed) == expected
    # a lost fold file (seed 1 of the learned spotter, subject s2) is the only fold rerun
    (whole / "folds" / "casme_sq" / "learned" / "seed1" / "casme_sq_s2.json").unlink()
    FITS.clear()
    _run(synthetic, whole)
    assert FITS == {"learned": 1}
    assert _outputs(whole) == expected
    # a fold file holds what pooled scoring needs: intervals per video, the choice, labels and the recogniser's subjects
    fold = run_folder.SpotRunFolder(whole).folds("casme_sq", "learned").load(1, "casme_sq/s2")
    assert fold is not None and set(fold.predictions) == {("casme_sq", "casme_sq/s2", "v2")}
    assert set(fold.chosen["thresholds"]) == {"ME", "MaE"} and fold.labelled is not None
    assert fold.recogniser["subjects"] == ["casme_sq/s0", "casme_sq/s1", "casme_sq/s3"]


def _spot(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["spot", *args])
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_a_rerun_with_other_inputs_into_the_same_out_is_refused(
    synthetic: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "spot"
    args = ["--data", f"casme_sq={synthetic}", "--out", str(out), "--seeds", "2"]
    code, stdout, _ = _spot(capsys, *args)
    assert code == 0 and "F1 overall" in stdout
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert FITS == {"baseline": SUBJECTS, "learned": 2 * SUBJECTS}
    FITS.clear()
    for extra, difference in [
        (["--detect-every", "5"], "settings.features.detect_every: 10 → 5"),
        (["--recognise", "method/lbptop"], "settings.recognise.name: null → "),
    ]:
        code, _, err = _spot(capsys, *args, *extra)
        assert code == 2 and err.count("\n") == 1, err
        assert f"holds a run of other inputs ({difference}" in err and "give a new --out" in err
    assert not FITS and {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # nothing run, nothing written
    # more seeds into the same folder are no other input: seeds 0 and 1 are read back, seed 2 runs
    code, stdout, _ = _spot(capsys, *args[:-1], "3")
    assert code == 0 and FITS == {"learned": SUBJECTS} and "| casme_sq | learned | 3 |" in stdout
    FITS.clear()
    monkeypatch.setattr(run_folder, "git_state", lambda: ("0" * 40, False))  # another mer commit
    code, _, err = _spot(capsys, *args)
    assert code == 2 and "(code.mer_commit: " in err and not FITS
