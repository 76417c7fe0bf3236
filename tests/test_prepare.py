"""`mer prepare` after the readers: manifest → one aligned crop per sample → prepared.csv, report, preview, cache.

Small manifests built with `make_frame` over photos shipped by skimage/matplotlib (the readers have their own tests).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import matplotlib.cbook as cbook
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data as skdata

import mer.prepare as prepare_module
from mer.config import load_config
from mer.data.manifest import load_manifest, make_frame, make_report
from mer.data.prepared import load_prepared
from mer.errors import DataError, MerError
from mer.face.detect import FaceDetector
from mer.prepare import merged_roots, parse_data_args, prepare_from_manifest, run_prepare
from tests.layouts import casme2_sample, make_casme2, make_samm, moving_blob_clip, samm_sample, write_megc_list

SPOT_APEX = 6  # frame with the strongest warp in the clip that has no apex label
ROOT = Path(__file__).resolve().parent.parent
ASTRONAUT_MOUTH = np.array([[201.2, 139.6], [245.1, 141.1]])  # MTCNN mouth corners on skimage's astronaut (x, y)


def _write(path: Path, image: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image)
    return str(path)


def _smile_clip(face: np.ndarray, n: int, k: int, seed: int) -> list[np.ndarray]:
    """Mouth corners of the photo pulled up and out, strongest at frame k, with per-frame noise."""
    rng = np.random.default_rng(seed)
    h, w = face.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for t in range(n):
        amp = 3.0 * math.exp(-((t - k) ** 2) / (2 * 1.5**2))
        dx = np.zeros_like(xx)
        dy = np.zeros_like(yy)
        for (x, y), side in zip(ASTRONAUT_MOUTH, (-1, 1), strict=True):
            g = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 10.0**2))
            dx += side * 0.5 * amp * g
            dy -= amp * g
        warped = cv2.remap(face, (xx - dx).astype(np.float32), (yy - dy).astype(np.float32), cv2.INTER_LINEAR)
        frames.append(np.clip(warped + rng.normal(0, 3, warped.shape), 0, 255).astype(np.uint8))
    return frames


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    """Manifest rows for every case: micro with apex, macro single frame, no face, spotting, bad apex, missing file."""
    root = tmp_path_factory.mktemp("corpus")
    astro = skdata.astronaut()
    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        grace = np.asarray(Image.open(fh).convert("RGB"))
    clip = [_write(root / "micro" / "s1" / f"img{i}.png", f) for i, f in enumerate(_smile_clip(astro, 5, 2, seed=1))]
    spot = [_write(root / "smic" / "s2" / f"image{i:03d}.png", f) for i, f in enumerate(_smile_clip(astro, 11, 6, 2))]
    grace_path = _write(root / "macro" / "grace.jpg", grace)
    brick = _write(root / "macro" / "brick.png", skdata.brick())

    def row(dataset, subject, sid, kind, label, frames, apex):
        return {
            "dataset": dataset,
            "subject": f"{dataset}/{subject}",
            "sample_id": sid,
            "kind": kind,
            "emotion": label,
            "label": label,
            "frames": frames,
            "onset": 0,
            "apex": apex,
            "offset": len(frames) - 1,
        }

    manifest = make_frame(
        [
            row("casme2", "sub01", "EP01", "micro", "positive", clip, 2),
            row("smic", "s2", "s2_po_01", "micro", "positive", spot, None),
            row("jaffe", "KA", "KA.HA1", "macro", "positive", [grace_path], 0),
            row("jaffe", "KM", "KM.SU1", "macro", "surprise", [brick], 0),
            row("casme2", "sub02", "EP09", "micro", "negative", clip, 9),
            row("casme2", "sub03", "EP10", "micro", "surprise", [str(root / "gone.png")], 0),
        ]
    )
    return manifest, root


class CountingDetector(FaceDetector):
    """A real MTCNN detector that counts the images it is asked about."""

    def __init__(self) -> None:
        super().__init__("cpu", min_face_size=40, batch_size=8)
        self.images = 0

    def detect(self, images):
        self.images += len(images)
        return super().detect(images)


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    manifest, _ = corpus
    cfg = load_config("demo")  # 112² crops
    out = tmp_path_factory.mktemp("prepared")
    reader_report = make_report(
        [
            {
                "dataset": "casme2",
                "subject": "casme2/sub04",
                "sample_id": "EP11",
                "path": "x.xlsx",
                "reason": "emotion 'fear' is not in the 3-class mapping",
            }
        ]
    )
    det = CountingDetector()
    prepare_from_manifest(cfg, manifest, reader_report, out, preview=True, detector=det, progress=False)
    return cfg, out, det


def test_prepare_writes_every_file(prepared):
    _, out, _ = prepared
    for name in ("manifest.csv", "prepare_report.csv", "prepared.csv", "config.yaml", "run_info.json", "preview.png"):
        assert (out / name).is_file(), name
    assert len(load_manifest(out / "manifest.csv")) == 6
    assert "seed" in json.loads((out / "run_info.json").read_text())


def test_prepared_rows_have_crops_and_the_right_frames(prepared, corpus):
    cfg, out, det = prepared
    manifest, _ = corpus
    df = load_prepared(out)
    assert list(df["sample_id"]) == ["EP01", "s2_po_01", "KA.HA1"]
    for crop in df["crop"]:
        assert Path(crop).is_absolute()
        img = cv2.imread(crop, cv2.IMREAD_UNCHANGED)
        assert img.shape == (cfg.face.size, cfg.face.size) and img.dtype == np.uint8
    raw = pd.read_csv(out / "prepared.csv")
    assert all(not Path(c).is_absolute() and c.startswith("crops/") for c in raw["crop"])
    ep01 = df[df.sample_id == "EP01"].iloc[0]
    assert ep01["crop_index"] == 2 and ep01["apex"] == 2
    # the clip without an apex label: spotted within ±1 frame of the strongest warp, and recorded
    smic = df[df.sample_id == "s2_po_01"].iloc[0]
    assert abs(int(smic["apex"]) - SPOT_APEX) <= 1 and smic["crop_index"] == smic["apex"]
    assert "apex spotted at frame" in smic["face_note"]


def test_report_lists_reader_skips_and_face_failures_with_reasons(prepared):
    _, out, _ = prepared
    report = pd.read_csv(out / "prepare_report.csv")
    reasons = dict(zip(report["sample_id"], report["reason"], strict=True))
    assert reasons["EP11"] == "emotion 'fear' is not in the 3-class mapping"
    assert reasons["KM.SU1"] == "face: no face found"
    assert reasons["EP09"].startswith("face: apex index 9 outside 0..4")
    assert reasons["EP10"] == "face: file not found"
    assert set(report.columns) >= {"dataset", "subject", "sample_id", "path", "reason"}


def test_preview_is_a_contact_sheet_per_dataset_and_class(prepared):
    cfg, out, _ = prepared
    sheet = cv2.imread(str(out / "preview.png"), cv2.IMREAD_GRAYSCALE)
    groups = 3  # casme2/positive, jaffe/positive, smic/positive
    assert sheet.shape[0] == groups * (96 + 4) + 4


def test_second_run_does_no_detection(prepared, corpus, monkeypatch):
    cfg, out, det = prepared
    manifest, _ = corpus
    assert det.images > 0

    def refuse(self, images):
        raise AssertionError("MTCNN called on a warm cache")

    monkeypatch.setattr(FaceDetector, "detect", refuse)
    monkeypatch.setattr("mer.prepare.spot_apex", lambda *a, **k: pytest.fail("apex spotted again on a warm cache"))
    before = pd.read_csv(out / "prepared.csv")
    prepare_from_manifest(cfg, manifest, None, out, progress=False)
    after = pd.read_csv(out / "prepared.csv")
    pd.testing.assert_frame_equal(before, after)


def test_manifest_only_stops_before_faces(corpus, tmp_path, monkeypatch):
    manifest, _ = corpus
    monkeypatch.setattr(FaceDetector, "detect", lambda self, images: pytest.fail("detection with --manifest-only"))
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "prepared.csv").write_text("stale")  # from an earlier run on another manifest
    out = prepare_from_manifest(load_config("demo"), manifest, None, tmp_path / "p", manifest_only=True)
    assert (out / "manifest.csv").is_file() and not (out / "prepared.csv").exists()
    with pytest.raises(DataError, match="--manifest-only.*run `mer prepare"):
        load_prepared(out)


def test_load_prepared_errors(tmp_path, prepared):
    with pytest.raises(DataError, match="run `mer prepare"):
        load_prepared(tmp_path / "never")
    _, out, _ = prepared
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "prepared.csv").write_text((out / "prepared.csv").read_text())
    with pytest.raises(DataError, match="crop file\\(s\\) missing"):
        load_prepared(copy)


def test_data_arguments():
    assert parse_data_args(["casme2=/d/CASME2", " samm = /d/SAMM "]) == {"casme2": "/d/CASME2", "samm": "/d/SAMM"}
    for bad in (["casme2"], ["=/d"], ["casme2="], ["a=1", "a=2"]):
        with pytest.raises(MerError, match="NAME=ROOT|given twice"):
            parse_data_args(bad)
    cli = [f"data.roots.{name}={root}" for name, root in parse_data_args(["casme2=/cli/casme2"]).items()]
    cfg = load_config("default", ["data.roots={casme2: /cfg/casme2, samm: /cfg/samm}", *cli])
    roots = merged_roots(cfg)
    assert roots == {"casme2": "/cli/casme2", "samm": "/cfg/samm"}


def test_run_prepare_calls_the_readers_and_defaults_to_data_prepared(corpus, tmp_path, monkeypatch, capsys):
    manifest, _ = corpus
    from mer.data import datasets

    seen = {}

    def fake_build(roots, megc_list=None, smic_apex="middle", missing_apex="spot", classes="megc3"):
        seen.update(roots=dict(roots), megc_list=megc_list, smic_apex=smic_apex, missing_apex=missing_apex)
        seen.update(classes=classes)
        return manifest.iloc[:1].reset_index(drop=True), make_report([])

    monkeypatch.setattr(datasets, "build_manifest", fake_build)
    monkeypatch.setattr(prepare_module, "check_roots", lambda roots, megc: SimpleNamespace(summary=lambda: f"{roots}"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "list.csv").write_text("casme2,sub01,EP02_01f,1\n")
    cli = ["data.roots.casme2=/d/c2", "data.megc_list=list.csv"]  # what `--data casme2=/d/c2 --megc-list` set
    cfg = load_config("demo", ["data.prepared=here/prepared", "data.smic_apex=spot", "data.missing_apex=middle", *cli])
    out = run_prepare(cfg, manifest_only=True)
    assert out == Path("here/prepared") and (tmp_path / "here/prepared/manifest.csv").is_file()
    assert seen == {
        "roots": {"casme2": "/d/c2"},
        "megc_list": Path("list.csv"),
        "smic_apex": "spot",
        "missing_apex": "middle",
        "classes": cfg.data.classes,  # the scheme (demo: paper's megc3 list)
    }
    printed = capsys.readouterr().out
    assert "{'casme2': '/d/c2'}" in printed  # the datasets check's one line comes first
    assert "MEGC2019 list list.csv: a custom list of 1 samples (neither published variant)" in printed
    assert "MEGC2019 list: 1 of 1 listed samples found (casme2 1/1); 0 take the list's label" in printed
    assert load_config("default").data.missing_apex == "spot"
    with pytest.raises(MerError, match="data.missing_apex: 'peak' is not allowed; choose one of: spot, middle, skip"):
        load_config("demo", ["data.missing_apex=peak"])
    with pytest.raises(MerError, match="no datasets given"):
        run_prepare(load_config("demo"))


def test_cli_bad_data_argument_is_one_line_error(capsys):
    from mer.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["prepare", "--data", "casme2", "--manifest-only"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --data 'casme2' is not of the form NAME=ROOT") and "\n" not in err


def test_mer_prepare_spots_the_apex_of_casme2_and_samm_rows_without_one(tmp_path, capsys):
    """CASME II apex '/' and SAMM apex -1 rows are kept, spotted on the frame that moved most, and all listed."""
    from mer.cli import main

    c2 = make_casme2(
        tmp_path / "CASME2",
        [
            casme2_sample(1, "EP02_01f", onset=46, apex=48, offset=54, images=moving_blob_clip(9, 2)),
            casme2_sample(1, "EP03_02", 46, "/", 54, emotion="disgust", images=moving_blob_clip(9, 6)),
        ],
    )
    samm = make_samm(
        tmp_path / "SAMM",
        [samm_sample(6, "006_1_5", 200, -1, 209, emotion="Happiness", images=moving_blob_clip(10, 3))],
    )
    megc = write_megc_list(
        tmp_path / "combined_3class_gt.csv",
        [("casme2", "sub01", "EP02_01f", 1), ("casme2", "sub01", "EP03_02", 0), ("samm", "006", "006_1_5", 1)],
    )
    out = tmp_path / "prepared"
    argv = ["prepare", "--config", "demo", "--data", f"casme2={c2}", "--data", f"samm={samm}"]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--megc-list", str(megc), "--out", str(out), "face.device=cpu"])
    assert exc.value.code in (0, None), capsys.readouterr().err

    manifest = load_manifest(out / "manifest.csv").set_index("sample_id")
    assert sorted(manifest.index) == ["006_1_5", "sub01_EP02_01f", "sub01_EP03_02"]  # every listed sample
    sources = {"sub01_EP02_01f": "label", "sub01_EP03_02": "spotted", "006_1_5": "spotted"}
    assert manifest["apex_source"].to_dict() == sources
    prepared = load_prepared(out).set_index("sample_id")
    assert prepared["apex"].to_dict() == {"sub01_EP02_01f": 2, "sub01_EP03_02": 6, "006_1_5": 3}
    assert (prepared["crop_index"] == prepared["apex"]).all()
    assert prepared.loc["sub01_EP03_02", "apex_source"] == "spotted"
    assert prepared.loc["006_1_5", "face_note"].startswith("apex spotted at frame 3")
    report = pd.read_csv(out / "prepare_report.csv")
    kept = report[report["reason"].str.startswith("apex (kept):")]
    assert sorted(kept["sample_id"]) == ["006_1_5", "sub01_EP03_02"]
    assert not report["reason"].str.contains("not in the manifest").any()

    # Run again as a user does, in a fresh process: every crop and spotted apex is a cache hit, so neither torch nor
    # facenet-pytorch (nor the training stack) is imported, and the output is the same.
    before = (out / "prepared.csv").read_text()
    heavy = ("torch", "facenet_pytorch", "lightning", "timm", "albumentations", "kornia", "skimage")
    args = [*argv, "--megc-list", str(megc), "--out", str(out), "face.device=cpu"]
    code = (
        "import json, sys\nfrom mer.cli import main\ntry:\n    main(json.loads(sys.argv[1]))\nexcept SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        f"print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
    assert "0 detected" in proc.stdout and (out / "prepared.csv").read_text() == before
