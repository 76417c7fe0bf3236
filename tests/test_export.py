"""`mer export onnx` and `mer bench`: ONNX equals PyTorch within 1e-4 on a dynamic batch, int8, the bench table."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch

from mer.cli import main
from mer.inference.bench import PAPER_MS, run_bench
from mer.inference.bench_report import markdown, summary
from mer.inference.bundle import load_bundle, save_bundle, to_tensor
from mer.inference.export import ExportResult, export_onnx, load_crops, load_labelled_crops
from mer.models.backbones import MERNet, save_weights
from tests.helpers import NET_SIZE, small_config

SIZE = NET_SIZE
CLASSES = ["negative", "positive", "surprise"]


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory, net: MERNet) -> Path:
    return save_bundle(tmp_path_factory.mktemp("export") / "model", net, small_config())


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, bundle_dir: Path) -> ExportResult:
    return export_onnx(bundle_dir, tmp_path_factory.mktemp("onnx") / "m.onnx")


def test_onnx_matches_pytorch_on_a_dynamic_batch(exported: ExportResult, net: MERNet) -> None:
    assert exported.verified and max(exported.max_abs_diff.values()) < 1e-4
    session = ort.InferenceSession(exported.onnx, providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits", "embedding"]
    x = torch.rand(5, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(3)) * 2 - 1  # batch 5: not the export's
    logits, emb = session.run(None, {"input": x.numpy()})
    with torch.inference_mode():
        ref_logits, ref_emb = net.forward_both(x)
    assert logits.shape == (5, 3) and emb.shape == (5, net.embed_dim)
    assert np.abs(logits - ref_logits.numpy()).max() < 1e-4
    assert np.abs(emb - ref_emb.numpy()).max() < 1e-4


def test_onnx_file_is_a_model_for_predict(exported: ExportResult, bundle_dir: Path) -> None:
    onnx_model, torch_model = load_bundle(exported.onnx), load_bundle(bundle_dir)
    assert onnx_model.kind == "onnx" and onnx_model.engine == "onnxruntime" and onnx_model.classes == CLASSES
    assert onnx_model.image_size == SIZE and onnx_model.cfg.face.size == SIZE and onnx_model.backbone == "mobilevit_xxs"
    crops = np.random.default_rng(0).integers(0, 256, (4, SIZE, SIZE), dtype=np.uint8)
    la, pa, ea = onnx_model.classify(crops)
    lb, pb, eb = torch_model.classify(crops)
    assert la == lb and np.abs(pa - pb).max() < 1e-5 and np.abs(ea - eb).max() < 1e-4


def _crop_folders(root: Path, n: int = 6) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    calib, labelled = root / "calib", root / "labelled"
    for i in range(n):
        img = rng.integers(0, 256, (SIZE + 16, SIZE + 16), dtype=np.uint8)  # other size: resized on load
        (calib / "a").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(calib / "a" / f"{i}.png"), img)
        sub = labelled / CLASSES[i % 3]
        sub.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sub / f"{i}.png"), img)
    return calib, labelled


def test_static_int8_with_calibration_and_accuracy(bundle_dir: Path, tmp_path: Path) -> None:
    calib, labelled = _crop_folders(tmp_path)
    assert load_crops(calib, SIZE).shape == (6, SIZE, SIZE)
    crops, labels = load_labelled_crops(labelled, SIZE)
    assert crops.shape == (6, SIZE, SIZE) and sorted(set(labels)) == CLASSES
    res = export_onnx(bundle_dir, tmp_path / "q.onnx", quantize="static", calib=calib, eval_data=labelled)
    q = res.int8
    assert Path(q.onnx).name == "q.int8.onnx" and q.mode == "static" and "6 crops" in q.calibration
    assert q.n_eval == 6 and 0 <= q.agreement <= 1
    assert q.accuracy_change == pytest.approx(q.accuracy_int8 - q.accuracy_fp32)
    assert "accuracy on 6 labelled crops" in res.lines()[-1] and "accuracy_note" not in res.to_dict()["int8"]
    model = load_bundle(q.onnx)  # the int8 file carries the same metadata and predicts
    labels_q, probs_q, _ = model.classify(crops)
    assert len(labels_q) == 6 and np.allclose(probs_q.sum(1), 1.0)
    # a CSV of label,crop works as well
    (tmp_path / "eval.csv").write_text(
        "label,crop\n" + "".join(f"{CLASSES[i % 3]},labelled/{CLASSES[i % 3]}/{i}.png\n" for i in range(6))
    )
    crops_csv, labels_csv = load_labelled_crops(tmp_path / "eval.csv", SIZE)
    assert labels_csv == [CLASSES[i % 3] for i in range(6)] and crops_csv.shape == (6, SIZE, SIZE)
    (tmp_path / "prepared.csv").write_text((tmp_path / "eval.csv").read_text())  # a `mer prepare` folder
    assert load_labelled_crops(tmp_path, SIZE)[1] == labels_csv
    assert load_crops(calib, SIZE, max_crops=4).shape == (4, SIZE, SIZE)


def test_dynamic_int8_and_checkpoint_source(net: MERNet, tmp_path: Path) -> None:
    ckpt = save_weights(net, tmp_path / "w.pt")
    res = export_onnx(ckpt, tmp_path / "d.onnx", quantize="dynamic")
    assert res.verified and res.int8.mode == "dynamic" and res.int8.calibration is None
    assert "accuracy_note" in res.to_dict()["int8"]
    session = ort.InferenceSession(res.int8.onnx, providers=["CPUExecutionProvider"])
    x = to_tensor(np.full((2, SIZE, SIZE), 128, np.uint8)).numpy()
    assert session.run(["logits"], {"input": x})[0].shape == (2, 3)


def test_cli_export_and_errors(bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.onnx"
    with pytest.raises(SystemExit) as exc:
        main(["export", "onnx", str(bundle_dir), "--out", str(out), "--json", str(tmp_path / "r.json")])
    assert exc.value.code == 0 and out.is_file()
    assert "max abs difference" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["verified"] is True
    for args, words in [
        (["export", "tflite", str(bundle_dir)], "not supported"),
        (["export", "onnx", str(out)], "already an ONNX model"),
        (["export", "onnx", str(tmp_path / "none.ckpt")], "not found"),
        (["export", "onnx", str(bundle_dir), "--quantize", "int4"], "quantize 'int4'"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(args)
        err = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == 2 and len(err) == 1 and words in err[0], (args, err)


@pytest.mark.slow
def test_dynamo_exporter_also_matches(bundle_dir: Path, tmp_path: Path) -> None:
    res = export_onnx(bundle_dir, tmp_path / "dyn.onnx", exporter="dynamo", opset=18)
    assert res.verified and res.exporter == "dynamo"


def test_bench_rows_and_table() -> None:
    res = run_bench(backbones=["mobilevit_xxs"], image_size=64, iterations=3, warmup=1, batches=(4,),
                    engines=("eager", "ort"), face=False, video=False, progress=False)  # fmt: skip
    got = {(r.engine, r.batch) for r in res.rows}
    assert got == {("eager", 1), ("ort", 1), ("eager", 4), ("ort", 4)}
    assert all(r.ms_median > 0 and r.per_s > 0 and r.ms_min <= r.ms_median and r.cpu_ms > 0 for r in res.rows)
    assert res.meta["torch_threads"] == torch.get_num_threads() and res.meta["cpu"]
    text = markdown(res)
    assert f"'vs paper' = {PAPER_MS} ms / ours" in text and "| network | mobilevit_xxs | ort | 1 |" in text
    assert any("mobilevit_xxs: ort" in line for line in summary(res))
