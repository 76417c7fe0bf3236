"""`mer predict`: bundles, reading inputs, face tracking, apex spotting on generated clips, the JSON schema, bad input.

Networks have random weights (mobilevit_xxs at 64²): these tests check the plumbing and the schema, not accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mer.cli import main
from mer.errors import MerError
from mer.face.detect import Face, FaceDetector, pick_face
from mer.inference.bundle import load_bundle, save_bundle, to_tensor
from mer.inference.predict import peaks, predict_path, segments, track_faces
from mer.inference.video import expression_clip, open_media, sample_photos, write_video
from mer.models.backbones import MERNet, save_weights
from tests.helpers import NET_SIZE, small_config

SIZE = NET_SIZE
CLASSES = ["negative", "positive", "surprise"]
# The documented JSON schema of `mer predict --json` (docs/inference.md); changing it is a breaking change.
EXPECTED_KEYS = [
    "schema", "input", "kind", "fps", "n_frames", "frames_with_face", "face_segments", "face_note", "alignment",
    "apex_frame", "apex_time_s", "apex_score", "apex_method", "apex_face_box", "label", "probabilities", "classifier",
    "probabilities_from", "softmax_label", "candidates", "model", "backbone", "engine", "image_size", "mer_version",
    "timing_s",
]  # fmt: skip
EXPECTED_CANDIDATE_KEYS = ["frame", "time_s", "score", "label", "probabilities", "softmax_label"]


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory, net: MERNet) -> Path:
    return save_bundle(tmp_path_factory.mktemp("bundle") / "model", net, small_config(), info={"trained_on": "nothing"})


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return sample_photos()


@pytest.fixture(scope="module")
def small() -> np.ndarray:
    """The astronaut at 256² (MTCNN on clips stays fast)."""
    return cv2.resize(sample_photos()[0], (256, 256), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def astronaut_face(small: np.ndarray) -> Face:
    face, _ = pick_face(FaceDetector("cpu").detect_one(small))
    assert face is not None
    return face


def _write_rgb(path: Path, img: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return path


def _run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


# ---------------------------------------------------------------------------------------------- bundles


def test_to_tensor_matches_training_normalisation() -> None:
    crops = np.array([[[0, 255], [51, 204]]], dtype=np.uint8)
    x = to_tensor(crops)
    assert x.shape == (1, 1, 2, 2) and x.dtype == torch.float32
    assert torch.allclose(x[0, 0], torch.tensor([[-1.0, 1.0], [-0.6, 0.6]]))
    assert to_tensor(np.zeros((3, 80, 80), np.uint8), 64).shape == (3, 1, 64, 64)


def test_bundle_round_trip_softmax(bundle_dir: Path, net: MERNet) -> None:
    info = json.loads((bundle_dir / "bundle.json").read_text())
    assert info["classes"] == CLASSES and info["backbone"] == "mobilevit_xxs" and info["image_size"] == SIZE
    assert info["classifier"] == "softmax" and info["face"]["size"] == SIZE and info["info"]["trained_on"] == "nothing"
    assert not (bundle_dir / "svm.joblib").exists()
    b = load_bundle(bundle_dir)
    assert b.classifier == "softmax" and b.kind == "bundle" and b.cfg.face.size == SIZE and not b.net.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, b.net.state_dict()[k])
    crops = np.random.default_rng(0).integers(0, 256, (5, SIZE, SIZE), dtype=np.uint8)
    labels, probs, emb = b.classify(crops)
    with torch.inference_mode():
        ref = torch.softmax(net(to_tensor(crops)), 1).numpy()
    np.testing.assert_allclose(probs, ref, atol=1e-5)
    assert labels == [CLASSES[i] for i in ref.argmax(1)] and emb.shape == (5, net.embed_dim)


def test_bundle_with_svm_labels_from_svm(tmp_path: Path, net: MERNet) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    rng = np.random.default_rng(1)
    crops = rng.integers(0, 256, (12, SIZE, SIZE), dtype=np.uint8)
    with torch.inference_mode():
        emb = net.embed(to_tensor(crops)).numpy()
    y = np.array(CLASSES * 4)
    svm = make_pipeline(StandardScaler(), SVC(kernel="linear")).fit(emb, y)
    path = save_bundle(tmp_path / "b", net, small_config(), svm=svm, info={"svm": {"n_train": 12}})
    assert json.loads((path / "bundle.json").read_text())["classifier"] == "svm"
    b = load_bundle(path)
    labels, probs, _ = b.classify(crops)
    assert b.classifier == "svm"
    assert labels == list(svm.predict(emb))  # the label comes from the SVM ...
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)  # ... the probabilities from the softmax head
    # re-saving without an SVM removes the stale one
    save_bundle(path, net, small_config())
    assert load_bundle(path).classifier == "softmax"


def test_plain_checkpoint_and_bad_models(tmp_path: Path, net: MERNet) -> None:
    ckpt = save_weights(net, tmp_path / "w.pt")
    b = load_bundle(ckpt)
    assert b.kind == "checkpoint" and b.classifier == "softmax" and b.image_size == SIZE and b.cfg.face.size == SIZE
    (tmp_path / "empty.ckpt").write_bytes(b"")
    (tmp_path / "model.bin").write_bytes(b"x")
    (tmp_path / "folder").mkdir()
    for bad, words in [("empty.ckpt", "empty"), ("model.bin", "unknown model type"), ("folder", "not a model bundle"),
                       ("nope.pt", "not found")]:  # fmt: skip
        with pytest.raises(MerError, match=words):
            load_bundle(tmp_path / bad)


# ---------------------------------------------------------------------------------------------- tracking helpers


def _face(x: float, y: float, side: float) -> Face:
    lm = np.array([[x + 0.3 * side, y + 0.4 * side], [x + 0.7 * side, y + 0.4 * side], [x + 0.5 * side, y + 0.6 * side],
                   [x + 0.35 * side, y + 0.8 * side], [x + 0.65 * side, y + 0.8 * side]])  # fmt: skip
    return Face(box=np.array([x, y, x + side, y + side]), landmarks=lm, prob=0.99)


def test_track_follows_the_face_not_a_bigger_newcomer() -> None:
    a0, a1, big = _face(100, 100, 80), _face(104, 101, 80), _face(300, 50, 150)
    picks, stats = track_faces([[a0], [big, a1], [a1, big], [], [big, a1]])
    assert picks[1] is a1 and picks[2] is a1 and picks[3] is None
    assert picks[4] is big  # the track was lost: it restarts on the largest face
    assert stats["several"] == 3 and stats["starts"] == 2
    assert segments([p is not None for p in picks]) == [(0, 2), (4, 4)]


def test_peaks_are_separated_local_maxima() -> None:
    s = np.array([0, 1, 5, 1, 0, 2, 3, 2, np.nan, 4, 0])
    assert peaks(s, 3, 2) == [2, 9, 6]
    assert peaks(s, 1, 2) == [2]


# ---------------------------------------------------------------------------------------------- predict


def test_photos_give_label_with_probabilities_summing_to_one(bundle_dir: Path, photos: list[np.ndarray],
                                                             tmp_path: Path) -> None:  # fmt: skip
    b = load_bundle(bundle_dir)
    for k, img in enumerate(photos):
        res = predict_path(_write_rgb(tmp_path / f"photo{k}.jpg", img), b, progress=False)
        assert res["kind"] == "image" and res["n_frames"] == 1 and res["apex_frame"] == 0
        assert res["label"] in CLASSES and res["classifier"] == "softmax"
        assert list(res["probabilities"]) == CLASSES
        assert abs(sum(res["probabilities"].values()) - 1.0) < 1e-5
        assert res["face_note"] == ""


@pytest.mark.parametrize("apex", [8, 15])
def test_generated_clip_apex_within_one_frame(bundle_dir: Path, small: np.ndarray, astronaut_face: Face,
                                              tmp_path: Path, apex: int) -> None:  # fmt: skip
    frames = expression_clip(small, astronaut_face.landmarks, n_frames=24, apex=apex, amplitude=0.05)
    clip = write_video(frames, tmp_path / "clip.mp4", fps=25.0)
    res = predict_path(clip, load_bundle(bundle_dir), window=2, progress=False)
    assert res["kind"] == "video" and res["fps"] == pytest.approx(25.0) and res["n_frames"] == 24
    assert res["frames_with_face"] == 24 and res["face_segments"] == [[0, 23]]
    assert abs(res["apex_frame"] - apex) <= 1, res["apex_frame"]
    assert res["apex_time_s"] == pytest.approx(res["apex_frame"] / 25.0)
    assert res["label"] in CLASSES and abs(sum(res["probabilities"].values()) - 1) < 1e-5
    assert 1 <= len(res["candidates"]) <= 2 and res["candidates"][0]["frame"] == res["apex_frame"]


def test_frames_folder_is_sorted_numerically(bundle_dir: Path, small: np.ndarray, astronaut_face: Face,
                                             tmp_path: Path) -> None:  # fmt: skip
    frames = expression_clip(small, astronaut_face.landmarks, n_frames=12, apex=9, amplitude=0.06)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):  # img1..img12: a plain text sort would put img10 before img2
        _write_rgb(folder / f"img{i + 1}.png", f)
    media = open_media(folder)
    assert [p.name for p in media.files][:3] == ["img1.png", "img2.png", "img3.png"] and media.fps is None
    res = predict_path(folder, load_bundle(bundle_dir), progress=False)
    assert res["kind"] == "frames" and res["n_frames"] == 12 and res["apex_time_s"] is None
    assert abs(res["apex_frame"] - 9) <= 1


def test_face_leaving_is_reported(bundle_dir: Path, small: np.ndarray, tmp_path: Path) -> None:
    gray = np.full_like(small, 128)
    clip = write_video([small] * 10 + [gray] * 6, tmp_path / "leave.avi", fps=30.0)
    res = predict_path(clip, load_bundle(bundle_dir), progress=False)
    assert res["n_frames"] == 16 and res["frames_with_face"] == 10 and res["face_segments"] == [[0, 9]]
    assert "face found in 10 of 16 frames" in res["face_note"] and res["apex_frame"] <= 9
    assert res["label"] in CLASSES


def test_several_faces_use_the_largest(bundle_dir: Path, photos: list[np.ndarray], tmp_path: Path) -> None:
    small = cv2.resize(photos[1], (200, 256), interpolation=cv2.INTER_AREA)
    canvas = np.full((512, 760, 3), 200, dtype=np.uint8)
    canvas[:, :512] = photos[0]
    canvas[128:384, 540:740] = small
    res = predict_path(_write_rgb(tmp_path / "two.png", canvas), load_bundle(bundle_dir), progress=False)
    assert "several faces" in res["face_note"] and "largest" in res["face_note"]
    x1, _, x2, _ = res["apex_face_box"]
    assert (x1 + x2) / 2 < 512  # the astronaut's (larger) face, not Grace Hopper's


# ---------------------------------------------------------------------------------------------- CLI, schema, bad input


def test_cli_json_schema_is_stable(bundle_dir: Path, small: np.ndarray, astronaut_face: Face, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    frames = expression_clip(small, astronaut_face.landmarks, n_frames=10, apex=5, amplitude=0.06)
    clip = write_video(frames, tmp_path / "c.mp4")
    out = tmp_path / "res" / "pred.json"
    code, stdout, _ = _run_cli(["predict", str(clip), "--model", str(bundle_dir), "--json", str(out), "--window", "2"],
                               capsys)  # fmt: skip
    assert code == 0 and "c.mp4" in stdout
    res = json.loads(out.read_text())
    assert list(res) == EXPECTED_KEYS
    assert res["schema"] == "mer.predict/1"
    assert all(list(c) == EXPECTED_CANDIDATE_KEYS for c in res["candidates"]) and res["candidates"]
    assert list(res["timing_s"]) == ["detect", "align", "spot", "classify"]


def _bad_inputs(root: Path, photos: list[np.ndarray]) -> dict[str, tuple[Path, str]]:
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.jpg").write_text("this is text, not a JPEG\n")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    cv2.imwrite(str(root / "tiny.png"), np.zeros((8, 8, 3), np.uint8))
    (root / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (root / "empty.mp4").write_bytes(b"")
    cv2.imwrite(str(root / "noface.png"), np.full((240, 320, 3), 90, np.uint8))
    write_video([np.full((240, 320, 3), v, np.uint8) for v in range(60, 120, 10)], root / "noface.avi")
    (root / "data.xyz").write_text("?")
    (root / "nothing").mkdir()
    return {
        "missing": (root / "missing.jpg", "not found"),
        "empty image": (root / "empty.jpg", "empty (0 bytes)"),
        "text as jpg": (root / "notes.jpg", "not a readable image"),
        "corrupt image": (root / "broken.png", "not a readable image"),
        "tiny": (root / "tiny.png", "too small to hold a face"),
        "corrupt video": (root / "corrupt.mp4", "not a readable video"),
        "empty video": (root / "empty.mp4", "empty (0 bytes)"),
        "no face image": (root / "noface.png", "no face found in the image"),
        "no face video": (root / "noface.avi", "no face found in any of the 6 frames"),
        "unknown type": (root / "data.xyz", "unknown file type"),
        "empty folder": (root / "nothing", "holds no images"),
    }


def test_bad_inputs_give_one_line_and_nonzero_exit(bundle_dir: Path, photos: list[np.ndarray], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    for name, (path, words) in _bad_inputs(tmp_path, photos).items():
        code, _, err = _run_cli(["predict", str(path), "--model", str(bundle_dir)], capsys)
        lines = err.strip().splitlines()
        assert code == 2, name
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
        assert words in lines[0] and path.name in lines[0], (name, lines[0])
        assert "Traceback" not in err


def test_missing_model_option(photos: list[np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = _write_rgb(tmp_path / "a.png", photos[0])
    code, _, err = _run_cli(["predict", str(img)], capsys)
    assert code == 2 and "--model" in err and len(err.strip().splitlines()) == 1
