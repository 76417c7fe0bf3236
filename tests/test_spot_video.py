"""`mer spot VIDEO` and the tracking under it, on generated videos of the demo's held-out identity.

OpenCV here writes MJPG (.avi), mp4v (.mp4), FFV1 (.mkv) and VP9 but no H.264 or HEVC (its FFmpeg has no such
encoder), so HEVC input cannot be made for a test; a variable-rate MP4 is made by rewriting an mp4v file's
timestamps (tests/spot_videos.py)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mer.cli import main
from mer.config import load_config
from mer.errors import MerError
from mer.face.detect import FaceDetector
from mer.inference.bundle import save_bundle
from mer.models.backbones import MERNet
from mer.spotting.track import TrackStats, track_video
from mer.spotting.video import open_long_video
from tests.spot_videos import expression_frames, make_variable_rate, write_frames, write_hevc


def _spot(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["spot", *args])
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_unreadable_and_missing_files_are_one_clean_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    for path in (bad, tmp_path / "missing.mkv"):
        code, out, err = _spot(capsys, str(path))
        assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: {path}") and "Traceback" not in err
    for option, value, message in (("--p", "1.5", "p must be in"), ("--bounds", "edges", "bounds 'edges'")):
        code, _, err = _spot(capsys, str(bad), option, value)
        assert code == 2 and message in err and err.count("\n") == 1
    image = tmp_path / "one.png"
    cv2.imwrite(str(image), np.full((64, 64, 3), 128, np.uint8))
    code, _, err = _spot(capsys, str(image))
    assert code == 2 and "one image cannot be spotted" in err


def test_reader_frame_rates_header_timestamps_and_folders(tmp_path: Path) -> None:
    frames = [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(24)]
    for fps, suffix in ((12.5, ".avi"), (25.0, ".mkv"), (60.0, ".mp4"), (200.0, ".avi")):
        v = open_long_video(write_frames(frames, tmp_path / f"v{fps:g}{suffix}", fps), min_side=32)
        times = [t for _, t, _ in v.frames()]
        assert (v.fps, v.fps_source, len(times)) == (pytest.approx(fps), "header", 24)
        assert np.diff(times) == pytest.approx(1 / fps)
    vfr = make_variable_rate(write_frames(frames, tmp_path / "vfr.mp4", 30.0), slow_from=12)
    v = open_long_video(vfr, min_side=32)
    steps = np.diff([t for _, t, _ in v.frames()])
    assert v.timestamps and "variable frame rate" in v.note
    assert steps[:11] == pytest.approx(1 / 30, abs=1e-3) and steps[12:] == pytest.approx(2 / 30, abs=1e-3)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames[:5]):
        cv2.imwrite(str(folder / f"img{i + 1}.jpg"), f)
    v = open_long_video(folder, min_side=32)
    assert (v.fps, v.fps_source, v.n_frames) == (30.0, "default", 5) and "--fps" in v.note
    assert open_long_video(folder, fps=200.0, min_side=32).fps == 200.0
    listed = open_long_video(sorted(folder.iterdir())[:3], fps=200.0, min_side=32)  # a reader's frame list
    assert listed.n_frames == 3 and [t for _, t, _ in listed.frames()] == pytest.approx([0.0, 0.005, 0.01])
    with pytest.raises(MerError, match="fps must be positive"):
        open_long_video(folder, fps=0.0, min_side=32)


def test_tracking_detects_every_k_frames_and_marks_black_frames(tmp_path: Path) -> None:
    black = {0, 1, 33, 59}  # the start, one frame between two detections (33), the end
    path = write_frames(expression_frames(60, 100, 110, 120), tmp_path / "neutral.avi", 30.0, black=sorted(black))
    stats = TrackStats()
    tracked = list(track_video(open_long_video(path), FaceDetector("cpu", 40, 16), detect_every=10, batch=16,
                               stats=stats))  # fmt: skip
    assert [f.index for f in tracked] == list(range(60))
    assert {f.index for f in tracked if f.face is None} == black
    assert stats.check_failed >= 1  # frame 33 was followed, failed the check and was detected
    assert stats.detected < 40  # far fewer MTCNN calls than frames
    eyes = np.array([f.face.landmarks[:2].mean(axis=0) for f in tracked if f.face is not None])
    assert np.ptp(eyes, axis=0).max() < 6.0  # a still head stays put through the followed frames


@pytest.mark.slow
def test_spot_smile_onset_black_frames_labels_json_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    onset, apex, offset = 90, 105, 150  # 3 s neutral, a 2 s smile, neutral; 30 fps, 10 s
    black = [0, 1, 200, 298, 299]
    path = write_frames(expression_frames(300, onset, apex, offset), tmp_path / "smile.avi", 30.0, black=black)
    cfg = load_config(None, ["model.backbone=mobilevit_xxs", "data.image_size=64", "face.size=64"])
    torch.manual_seed(0)
    bundle = save_bundle(tmp_path / "bundle", MERNet("mobilevit_xxs", 1, 3, 0.0, 64).eval(), cfg)
    out_json, out_png = tmp_path / "spot.json", tmp_path / "spot.png"
    code, out, err = _spot(capsys, str(path), "--model", str(bundle), "--json", str(out_json), "--plot", str(out_png))
    assert code == 0, err
    res = json.loads(out_json.read_text())
    assert res["fps"] == 30.0 and res["n_frames"] == 300 and res["frames_with_face"] == 295
    assert res["face_runs"] == [[2, 199], [201, 297]]
    assert len(res["intervals"]) == 1, res["intervals"]
    iv = res["intervals"][0]
    assert onset - 2 <= iv["onset"] <= onset + 0.3 * (apex - onset)  # the smile's onset: within its rise's first 30 %
    assert iv["onset_s"] == pytest.approx(iv["onset"] / 30.0, abs=1e-3) and iv["kind"] == "MaE"
    inter = min(iv["offset"], offset) - max(iv["onset"], onset) + 1
    assert inter / (iv["offset"] - iv["onset"] + 1 + offset - onset + 1 - inter) >= 0.5  # MEGC IoU
    assert iv["label"] in res["classes"] and sum(iv["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert "start s" in out and iv["label"] in out
    assert out_png.stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["25fps.mkv", "60fps.mp4", "vfr.mp4", "hevc.mp4"])
def test_spot_other_frame_rates_and_variable_rate(tmp_path: Path, kind: str) -> None:
    from mer.spotting.spot import spot_video

    fps = {"25fps.mkv": 25.0, "60fps.mp4": 60.0, "vfr.mp4": 30.0, "hevc.mp4": 25.0}[kind]
    n, onset, apex, offset = (round(s * fps) for s in (6.0, 1.6, 2.2, 3.2))
    frames = expression_frames(n, onset, apex, offset)
    if kind == "hevc.mp4":
        pytest.importorskip("imageio_ffmpeg", reason="the HEVC writer is imageio-ffmpeg's FFmpeg: pip install '.[dev]'")
        path = write_hevc(frames, tmp_path / "smile.mp4", fps)
    else:
        path = write_frames(frames, tmp_path / f"smile.{kind.split('.')[1]}", fps)
    if kind == "vfr.mp4":
        make_variable_rate(path, slow_from=30)  # 30 fps for 1 s, then 15 fps: the smile starts at 2.2 s
    res, _, feats = spot_video(path, progress=False)
    true_onset_s = feats.times[onset]
    assert true_onset_s == pytest.approx(1.6 if kind != "vfr.mp4" else 2.2, abs=1e-3)
    assert len(res["intervals"]) == 1, res["intervals"]
    iv = res["intervals"][0]
    assert onset - 2 <= iv["onset"] <= onset + 0.3 * (apex - onset)  # frames: a raised-cosine rise starts slowly
    assert iv["onset_s"] == pytest.approx(feats.times[iv["onset"]], abs=1e-3)  # seconds: the frames' own times


@pytest.mark.slow
def test_video_without_a_face_gives_no_interval_and_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (0, 0), 3) for _ in range(40)]
    path = write_frames(frames, tmp_path / "noface.avi", 20.0)
    code, out, err = _spot(capsys, str(path), "--json", str(tmp_path / "s.json"))
    assert code == 0, err
    res = json.loads((tmp_path / "s.json").read_text())
    assert res["intervals"] == [] and res["frames_with_face"] == 0
    assert "no interval spotted" in out and "no face found" in out
