"""STR with a network recogniser (an apex method such as `method/paper`, or a flow method such as STSTNet): each
fold's network is fine-tuned on the training subjects' interval inputs only, its labels reach the STR table, and the
CLI takes network methods (TV-L1 flow without OpenCV's contrib module is refused with one line; `--pretrained` is
recorded in the run record).

Fast: the inputs are synthetic (one pattern per class, read from the video's feature column like
tests/test_spotting_recognise.py's code), the networks are the demo methods' (mobilevit_xxs at 32², STSTNet) for one
epoch; the fine-tuning (`mer.evaluation.loso.fit_network_and_svm`), the SVM and the scoring are the real ones."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import mer.evaluation.loso as loso
from mer.cli import main
from mer.config import load_config, tvl1_available
from mer.spotting.datasets import check_recogniser, run_record
from mer.spotting.evaluate import LearnedConfig, evaluate_spotter
from mer.spotting.features import FeatureConfig
from mer.spotting.recognise import NetworkRecogniser
from mer.spotting.run_folder import first_difference
from tests.test_spotting_recognise import CLASSES, TruthSpotter, labelled_videos

SIZE = 32


def _method(classifier: str = "svm", name: str = "method/demo/paper"):
    size = [] if "ststnet" in name else [f"data.image_size={SIZE}"]
    return load_config(name, [*size, f"face.size={SIZE}", "train.finetune.epochs=1", "train.threads=1",
                              "logging.progress_bar=false", f"loso.classifier={classifier}"])  # fmt: skip


def _crops(videos, motion: bool = False):
    """An input per interval from the video's code column: a grey pattern per class (flat dark, flat bright,
    stripes), or with `motion` a flow_strain field (u, v, strain) per class; None (no face) where the code is 0."""
    codes = {v.key: v.features[:, 0] for v in videos}
    rng = np.random.default_rng(0)

    def crop(key, interval):
        code = int(codes[key][interval.apex])
        if code == 0:
            return None  # no face
        if motion:
            field = rng.normal(0, 0.05, (SIZE, SIZE, 3)).astype(np.float32)
            field[..., code - 1] += 1.0
            return field.astype(np.float16)
        base = np.full((SIZE, SIZE), (40, 210, 120)[code - 1], np.uint8)
        if code == 3:
            base[::4] = 250
        noise = rng.integers(-10, 11, base.shape)
        return np.clip(base.astype(int) + noise, 0, 255).astype(np.uint8)

    return crop


@pytest.mark.parametrize(("classifier", "method"), [("svm", "method/demo/paper"), ("softmax", "method/demo/paper"),
                                                    ("svm", "method/demo/ststnet")])  # fmt: skip
def test_each_fold_network_trains_without_its_held_out_subject_and_labels_reach_str(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, classifier: str, method: str
) -> None:
    videos = labelled_videos(4)
    trained: list[set[str]] = []
    real = loso.fit_network_and_svm

    def spy(cfg, prepared, *args, **kwargs):  # the real fine-tuning; remembers which subjects it saw
        trained.append(set(prepared["subject"]))
        return real(cfg, prepared, *args, **kwargs)

    monkeypatch.setattr(loso, "fit_network_and_svm", spy)
    motion = "ststnet" in method
    cfg, crop, fitted = _method(classifier, method), _crops(videos, motion), {}
    result = evaluate_spotter(videos, TruthSpotter, seeds=(0,), n_resamples=20,
                              recognise=lambda: NetworkRecogniser(crop, cfg, tmp_path, fitted=fitted))  # fmt: skip
    subjects = {v.subject for v in videos}
    assert len(trained) == len(subjects)  # one network per fold
    folds = result["str"]["recognisers"][0]
    assert set(folds) == subjects
    for held_out, info in folds.items():
        assert held_out not in info["subjects"] and set(info["subjects"]) == subjects - {held_out}
        assert info["classifier"] == classifier and info["n_train"] == 12 and ("svm" in info) == (classifier == "svm")
    assert all(len(s) == len(subjects) - 1 for s in trained) and len({frozenset(s) for s in trained}) == len(subjects)
    # every spotted truth interval has a label of the method's classes; the false ME (no face) has none
    labels = [i.label for v in videos for i in result["predictions"][v.key]]
    assert all(y in CLASSES for y in labels if y is not None) and labels.count(None) == len(videos)
    me = result["str"]["scores"]["ME"]
    assert me["summary"]["f1_spot"] == pytest.approx(6 / 7)  # 12 truths spotted, 4 false
    assert me["per_seed"][0]["strs"] == pytest.approx(6 / 7 * me["per_seed"][0]["f1_analysis"])
    if classifier == "svm":  # three easy patterns: the SVM on the embeddings tells them apart
        assert me["summary"]["f1_analysis"] > 0.5
    # the inputs were written once, as `mer prepare` writes them (training and labelled intervals share the truth's)
    files = list((tmp_path / "motion").glob("*.npy")) if motion else list((tmp_path / "crops").glob("*.png"))
    assert len(files) == 16 and not (tmp_path / "train").exists()


def test_a_fold_fit_is_shared_by_the_spotters_of_one_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    videos = labelled_videos(3)
    calls: list[int] = []
    real = loso.fit_network_and_svm
    monkeypatch.setattr(loso, "fit_network_and_svm", lambda *a, **k: calls.append(k["seed"]) or real(*a, **k))
    cfg, crop, fitted = _method(), _crops(videos), {}
    make = lambda: NetworkRecogniser(crop, cfg, tmp_path, fitted=fitted)  # noqa: E731
    first = evaluate_spotter(videos, TruthSpotter, seeds=(0,), n_resamples=20, recognise=make)
    again = evaluate_spotter(videos, TruthSpotter, seeds=(0, 1), n_resamples=20, recognise=make)
    assert calls == [0, 0, 0, 1, 1, 1]  # seed 0's three folds are fitted once, seed 1's on their own seed
    assert first["str"]["recognisers"][0] == again["str"]["recognisers"][0]


def _spot(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["spot", *args])
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_cli_takes_network_methods_and_refuses_what_cannot_run_with_one_line(capsys, tmp_path: Path) -> None:
    out = str(tmp_path / "o")
    missing = str(tmp_path / "nowhere")
    for method in ("method/demo/paper", "method/demo/ststnet", "method/off_apexnet"):
        code, _, err = _spot(capsys, "--data", f"casme_sq={missing}", "--recognise", method, "--out", out)
        assert code == 2 and "cannot be used for STR" not in err and "nowhere" in err  # past the method: the data
    code, _, err = _spot(capsys, "--data", f"casme_sq={missing}", "--pretrained", str(tmp_path / "w.pt"), "--out", out)
    assert code == 2 and "give --recognise too" in err and err.count("\n") == 1
    with pytest.raises(Exception, match="has no network"):
        check_recogniser(load_config("method/lbptop"), tmp_path / "w.pt")
    if not tvl1_available():
        with pytest.raises(Exception, match="needs OpenCV's contrib module"):
            check_recogniser(load_config("method/demo/ststnet", ["data.flow_method=tvl1"]))


def test_the_pretrained_checkpoint_is_in_the_run_record(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    cfg = _method()
    record = [run_record({}, LearnedConfig(), FeatureConfig(), 10, cfg, p) for p in (None, a, b)]
    assert first_difference(record[0], record[1]).startswith("settings.pretrained")
    assert first_difference(record[1], record[2]).startswith("settings.pretrained.file")
    assert first_difference(record[1], run_record({}, LearnedConfig(), FeatureConfig(), 10, cfg, a)) is None
    a.write_bytes(b"changed")  # the same file name, other weights
    again = run_record({}, LearnedConfig(), FeatureConfig(), 10, cfg, a)
    assert first_difference(record[1], again).startswith("settings.pretrained.sha256")


def test_onset_apex_motion_of_a_long_video_interval(tmp_path: Path) -> None:
    import cv2

    from mer.config import FaceConfig
    from mer.data.intervals import Interval
    from mer.spotting.recognise import ApexCrops, OnsetApexMotion

    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 255, (120, 120)).astype(np.uint8), (0, 0), 3)
    files = []
    for t in range(6):  # a textured image whose lower half moves 2 px right per frame from frame 2 on
        img = base.copy()
        img[60:] = np.roll(base[60:], 2 * max(t - 2, 0), axis=1)
        files.append(str(tmp_path / f"{t}.png"))
        cv2.imwrite(files[-1], np.stack([img] * 3, axis=-1))
    lm = np.array([[45, 45], [75, 45], [60, 60], [48, 78], [72, 78]], float)
    track = SimpleNamespace(face=[False, True, True, True, True, False], landmarks=[lm] * 6, boxes=[None] * 6)
    face = FaceConfig(size=SIZE, refine_roll=False)
    motion = OnsetApexMotion({"v": files}, {"v": track}, face, "flow_strain", "farneback")
    field = motion("v", Interval(1, 4, "ME", apex=4))
    assert field.shape == (SIZE, SIZE, 3) and field.dtype == np.float16
    still = motion("v", Interval(1, 2, "ME", apex=2))  # frames 1 and 2 are the same image
    assert np.abs(field[..., :2]).mean() > 0.05 > np.abs(still[..., :2]).mean()
    assert not np.any(motion("v", Interval(1, 1, "ME", apex=1)))  # onset = apex: no motion
    assert motion("v", Interval(5, 5, "ME", apex=5)) is None  # no face in the interval
    crops = ApexCrops({"v": files}, {"v": track}, face)
    assert crops("v", Interval(0, 5, "ME", apex=5)).shape == (SIZE, SIZE)  # the apex has no face: the nearest frame
