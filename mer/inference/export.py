"""ONNX export of the network (logits + embedding, dynamic batch), checked against PyTorch, with optional int8.

The default exporter is PyTorch's TorchScript-based one (`torch.onnx.export(..., dynamo=False)`): it exports timm's
MobileViT in under a second and its graph quantises cleanly with ONNX Runtime. `exporter="dynamo"` uses the
`torch.export` path instead (also exact for MobileViT, about 10× slower to export).

Quantisation (ONNX Runtime): `dynamic` quantises weights only (activations at run time; slow for convolutions),
`static` writes QDQ int8 calibrated on aligned face crops (a folder of crop images, a .npy/.npz array, or — when
none is given — augmented crops of the two public-domain photos shipped with scikit-image and matplotlib).
Given labelled crops, the accuracy of the float and the int8 model on them is measured.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

import mer
from mer.config import FaceConfig, class_names, load_config, to_yaml
from mer.data.transforms import resize_crops
from mer.errors import MerError
from mer.face.align import align_face
from mer.face.detect import FaceDetector, pick_face
from mer.files import IMAGE_SUFFIXES, image_files, read_crops, read_gray
from mer.inference.bundle import NORMALIZATION, Bundle, load_bundle, onnx_session, softmax, to_tensor
from mer.inference.video import sample_photos
from mer.models.backbones import MERNet

EXPORTERS = ("torchscript", "dynamo")
QUANTIZE = ("dynamic", "static")
CROP_HINT = "expected an aligned face crop"


class LogitsAndEmbedding(nn.Module):
    """Wraps a MERNet so one forward returns (logits, embedding): the two outputs of the exported graph."""

    def __init__(self, net: MERNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, C), embedding (B, D))."""
        return self.net.forward_both(x)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' and quantiser's warnings and log lines (they print hundreds of notes)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _source_bundle(source: str | Path | Bundle | MERNet) -> Bundle:
    if isinstance(source, Bundle):
        bundle = source
    elif isinstance(source, MERNet):
        cfg = load_config(None, [f"face.size={source.image_size}", f"data.image_size={source.image_size}"])
        bundle = Bundle(cfg=cfg, classes=list(class_names(cfg.data)), net=source.eval(), kind="network")
    else:
        if Path(source).suffix.lower() == ".onnx":
            raise MerError(f"{source}: already an ONNX model; export takes a bundle folder or a .ckpt/.pt checkpoint")
        bundle = load_bundle(source)
    if bundle.net is None:
        raise MerError(f"{bundle.source}: has no PyTorch network to export")
    return bundle


def _add_metadata(path: Path, bundle: Bundle, image_size: int, extra: dict[str, str]) -> None:
    """Store what `load_bundle` needs to use the ONNX file alone: classes, config, backbone, size, normalisation."""
    import onnx  # lazy: onnx costs ~1.4 s and only export needs it (the `onnx` extra)

    model = onnx.load(str(path))
    props = {
        "mer.classes": json.dumps(list(bundle.classes)),
        "mer.backbone": bundle.backbone,
        "mer.image_size": str(image_size),
        "mer.normalization": NORMALIZATION,
        "mer.version": mer.__version__,
        "mer.config": to_yaml(bundle.cfg),
        "mer.outputs": "logits (N, classes), embedding (N, D): softmax(logits) are the probabilities",
        **extra,
    }
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def export_graph(net: MERNet, out: str | Path, image_size: int, opset: int = 17, exporter: str = "torchscript") -> Path:
    """Write `net` as a bare ONNX graph (outputs logits + embedding, dynamic batch) to `out`; no metadata, no check.

    `export_onnx` adds the bundle's metadata and the PyTorch comparison; `mer bench` and `mer predict --engine`
    use this alone for a temporary model."""
    out = Path(out)
    wrapper = LogitsAndEmbedding(net).eval()
    x = torch.zeros(2, net.in_chans, image_size, image_size)
    names = {"input_names": ["input"], "output_names": ["logits", "embedding"], "opset_version": opset}
    with _quiet():
        if exporter == "torchscript":
            axes = {"input": {0: "batch"}, "logits": {0: "batch"}, "embedding": {0: "batch"}}
            torch.onnx.export(wrapper, (x,), str(out), dynamo=False, dynamic_axes=axes, **names)
        else:
            batch = torch.export.Dim("batch", min=1, max=4096)
            torch.onnx.export(
                wrapper, (x,), str(out), dynamo=True, dynamic_shapes={"x": {0: batch}}, external_data=False, **names
            )
    net.eval()  # the exporter restores the wrapper's mode; make sure the network stays in eval
    return out


def compare_with_torch(net: MERNet, onnx_path: str | Path, image_size: int, batches: Sequence[int] = (1, 3)) -> dict:
    """Max abs difference between PyTorch and ONNX Runtime on random input, per output, over several batch sizes."""
    session = onnx_session(onnx_path)
    gen = torch.Generator().manual_seed(0)
    worst = {"logits": 0.0, "embedding": 0.0}
    for n in batches:
        x = torch.rand(n, net.in_chans, image_size, image_size, generator=gen) * 2 - 1
        with torch.inference_mode():
            logits, emb = net.forward_both(x)
        got = session.run(["logits", "embedding"], {"input": x.numpy()})
        worst["logits"] = max(worst["logits"], float(np.abs(got[0] - logits.numpy()).max()))
        worst["embedding"] = max(worst["embedding"], float(np.abs(got[1] - emb.numpy()).max()))
    return worst


@dataclass
class Int8Result:
    """The int8 copy of an export and how it differs from the float model (accuracy only with labelled crops)."""

    onnx: str
    mode: str
    calibration: str | None
    max_abs_diff_logits_random: float
    accuracy_note: str | None = None
    n_eval: int | None = None
    accuracy_fp32: float | None = None
    accuracy_int8: float | None = None
    agreement: float | None = None
    max_abs_diff_probabilities: float | None = None
    accuracy_change: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form; measurements that were not made are left out."""
        return {k: v for k, v in asdict(self).items() if v is not None or k == "calibration"}

    def lines(self) -> list[str]:
        """What `mer export` prints about the int8 model."""
        out = [f"wrote {self.onnx} (int8 {self.mode}; calibration: {self.calibration or 'none needed'})"]
        if self.accuracy_fp32 is not None:
            out.append(
                f"accuracy on {self.n_eval} labelled crops: fp32 {self.accuracy_fp32:.3f}, "
                f"int8 {self.accuracy_int8:.3f} (change {self.accuracy_change:+.3f}; agreement {self.agreement:.3f})"
            )
        else:
            out.append(
                f"int8 vs fp32 logits on random input: max abs difference {self.max_abs_diff_logits_random:.3f}; "
                f"{self.accuracy_note}"
            )
        return out


@dataclass
class ExportResult:
    """An ONNX export: where it is, what it holds, and how far ONNX Runtime is from PyTorch on it."""

    onnx: str
    source: str
    backbone: str
    exporter: str
    opset: int
    image_size: int
    outputs: list[str]
    dynamic_batch: bool
    export_s: float
    max_abs_diff: dict[str, float]  # {logits, embedding}: worst over the checked batch sizes
    atol: float
    verified: bool  # both differences below atol
    classifier_note: str
    int8: Int8Result | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (what `mer export --json` writes); `int8` only when quantised."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "int8"}
        if self.int8 is not None:
            out["int8"] = self.int8.to_dict()
        return out

    def lines(self) -> list[str]:
        """What `mer export` prints: the file, the check against PyTorch and, when quantised, the int8 model."""
        what = f"{self.backbone}, {self.image_size}², opset {self.opset}, {self.exporter} exporter, {self.export_s} s"
        diff = self.max_abs_diff
        verdict = "ok" if self.verified else "TOO LARGE"
        out = [
            f"wrote {self.onnx} ({what})",
            f"ONNX Runtime vs PyTorch, max abs difference: logits {diff['logits']:.2e}, "
            f"embedding {diff['embedding']:.2e} ({verdict}, tolerance {self.atol:g})",
        ]
        return out + (self.int8.lines() if self.int8 is not None else [])


def export_onnx(
    checkpoint_or_bundle: str | Path | Bundle | MERNet,
    out: str | Path,
    *,
    opset: int = 17,
    image_size: int | None = None,
    quantize: str | None = None,
    calib: str | Path | np.ndarray | None = None,
    eval_data: str | Path | None = None,
    exporter: str = "torchscript",
    atol: float = 1e-4,
) -> ExportResult:
    """Export the network to ONNX (outputs `logits`, `embedding`; dynamic batch) and verify it against PyTorch.

    With `quantize`, also writes OUT.int8.onnx and says how it compares (`int8`, with accuracy on `eval_data` when
    given). `ExportResult.to_dict()` is the JSON form, `.lines()` the printed summary.
    """
    if exporter not in EXPORTERS:
        raise MerError(f"exporter '{exporter}' is not known; choose one of: {', '.join(EXPORTERS)}")
    if quantize is not None and quantize not in QUANTIZE:
        raise MerError(f"quantize '{quantize}' is not known; choose one of: {', '.join(QUANTIZE)}")
    bundle = _source_bundle(checkpoint_or_bundle)
    net = bundle.net
    assert net is not None
    size = int(image_size or net.image_size)
    out = Path(out)
    if out.is_dir():
        raise MerError(f"{out}: is a folder; give a file name such as {out / 'model.onnx'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        export_graph(net, out, size, opset, exporter)
    except MerError:
        raise
    except Exception as exc:  # noqa: BLE001 - exporter failures are reported as one line with the hint
        other = "dynamo" if exporter == "torchscript" else "torchscript"
        raise MerError(
            f"ONNX export failed ({exc.__class__.__name__}: {str(exc)[:200]}); try --exporter {other}"
        ) from None
    export_s = time.perf_counter() - start
    _add_metadata(out, bundle, size, {"mer.exporter": exporter, "mer.source": str(bundle.source)})
    diff = compare_with_torch(net, out, size)
    result = ExportResult(
        onnx=str(out),
        source=str(bundle.source),
        backbone=bundle.backbone,
        exporter=exporter,
        opset=opset,
        image_size=size,
        outputs=["logits", "embedding"],
        dynamic_batch=True,
        export_s=round(export_s, 2),
        max_abs_diff=diff,
        atol=atol,
        verified=max(diff.values()) < atol,
        classifier_note="the SVM of a bundle is not part of the ONNX graph; ONNX prediction uses the softmax head",
    )
    if quantize:
        q_path = out.with_name(f"{out.stem}.int8{out.suffix}")
        crops = None
        calibration = None
        if quantize == "static":
            crops, calibration = calibration_crops(calib, bundle.cfg.face, size)
        quantize_onnx(out, q_path, quantize, crops, size)
        _add_metadata(
            q_path, bundle, size, {"mer.exporter": exporter, "mer.quantization": quantize, "mer.source": str(out)}
        )
        compared = compare_models(out, q_path, size, eval_data, bundle.classes)
        result.int8 = Int8Result(onnx=str(q_path), mode=quantize, calibration=calibration, **compared)
    return result


# ---------------------------------------------------------------------------------------------- quantisation


def _reader(crops: np.ndarray, size: int) -> Any:
    from onnxruntime.quantization import CalibrationDataReader  # lazy: imports onnx (~1.4 s); quantisation only

    class CropReader(CalibrationDataReader):
        """Feeds normalised crops one batch of 8 at a time to the calibrator."""

        def __init__(self) -> None:
            x = to_tensor(crops, size).numpy()
            self._batches = iter([{"input": x[i : i + 8]} for i in range(0, len(x), 8)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    return CropReader()


def quantize_onnx(
    src: str | Path, dst: str | Path, mode: str, crops: np.ndarray | None = None, size: int = 256
) -> Path:
    """int8 copy of an ONNX model: `dynamic` (weights only) or `static` (QDQ, per-channel, calibrated on `crops`)."""
    # lazy: onnxruntime's quantiser imports onnx (~1.4 s); only int8 export needs it
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    dst = Path(dst)
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre))
        if mode == "dynamic":
            quantize_dynamic(str(pre), str(dst), weight_type=QuantType.QInt8, per_channel=True)
        elif mode == "static":
            if crops is None or len(crops) == 0:
                raise MerError("static quantisation needs calibration crops (--calib FOLDER of aligned face crops)")
            quantize_static(
                str(pre),
                str(dst),
                _reader(crops, size),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
            )
        else:
            raise MerError(f"quantize '{mode}' is not known; choose one of: {', '.join(QUANTIZE)}")
    return dst


def compare_models(
    fp32: str | Path,
    int8: str | Path,
    size: int,
    eval_data: str | Path | None = None,
    classes: Sequence[str] = ("negative", "positive", "surprise"),
) -> dict[str, Any]:
    """How the int8 model differs from the float one: logits on random input, accuracy on labelled crops if given."""
    a, b = onnx_session(fp32), onnx_session(int8)
    x = (np.random.default_rng(0).random((4, 1, size, size), dtype=np.float32) * 2 - 1).astype(np.float32)
    out: dict[str, Any] = {
        "max_abs_diff_logits_random": float(
            np.abs(a.run(["logits"], {"input": x})[0] - b.run(["logits"], {"input": x})[0]).max()
        )
    }
    if eval_data is None:
        out["accuracy_note"] = "no labelled crops given (--eval-data): accuracy change not measured"
        return out
    crops, labels = load_labelled_crops(eval_data, size)
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise MerError(f"{eval_data}: labels {unknown} are not among the model's classes {list(classes)}")
    y = np.array([list(classes).index(v) for v in labels])
    xs = to_tensor(crops, size).numpy()
    pa = np.concatenate([softmax(a.run(["logits"], {"input": xs[i : i + 32]})[0]) for i in range(0, len(xs), 32)])
    pb = np.concatenate([softmax(b.run(["logits"], {"input": xs[i : i + 32]})[0]) for i in range(0, len(xs), 32)])
    out.update(
        n_eval=len(y),
        accuracy_fp32=float((pa.argmax(1) == y).mean()),
        accuracy_int8=float((pb.argmax(1) == y).mean()),
        agreement=float((pa.argmax(1) == pb.argmax(1)).mean()),
        max_abs_diff_probabilities=float(np.abs(pa - pb).max()),
    )
    out["accuracy_change"] = out["accuracy_int8"] - out["accuracy_fp32"]
    return out


# ---------------------------------------------------------------------------------------------- crops on disk


def load_crops(path: str | Path, size: int, max_crops: int = 256, seed: int = 0) -> np.ndarray:
    """Aligned gray crops (N, size, size) uint8 from a folder of images (searched recursively) or a .npy/.npz array;
    at most `max_crops` of them, drawn at random (seeded) when there are more."""
    path = Path(path)
    if not path.exists():
        raise MerError(f"crops not found: {path} (give a folder of aligned face crops, e.g. a prepared crops/ folder)")
    if path.suffix.lower() in (".npy", ".npz"):
        data = np.load(path)
        arr = data[data.files[0]] if isinstance(data, np.lib.npyio.NpzFile) else data
        arr = np.asarray(arr)
        if arr.ndim == 4 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 3:
            raise MerError(f"{path}: expected an array of gray crops (N, H, W), got shape {arr.shape}")
        if len(arr) > max_crops:
            arr = arr[np.sort(np.random.default_rng(seed).choice(len(arr), max_crops, replace=False))]
        return to_uint8_crops(arr, size)
    files = image_files(path, recursive=True) if path.is_dir() else [path]
    if not files:
        raise MerError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    if len(files) > max_crops:
        files = [files[i] for i in np.sort(np.random.default_rng(seed).choice(len(files), max_crops, replace=False))]
    return read_crops(files, size, hint=CROP_HINT)


def to_uint8_crops(arr: np.ndarray, size: int) -> np.ndarray:
    """Clip to uint8 and resize a (N, H, W) array of crops to size×size."""
    return resize_crops(np.clip(arr, 0, 255).astype(np.uint8), size)


def load_labelled_crops(path: str | Path, size: int) -> tuple[np.ndarray, list[str]]:
    """Labelled crops: a folder with one sub-folder per class (negative/, positive/, surprise/), or a CSV with
    columns `label` and `crop` (or `path`), paths relative to the CSV — such as a `mer prepare` folder's prepared.csv
    (given the folder, its prepared.csv is used)."""
    path = Path(path)
    if not path.exists():
        raise MerError(f"labelled crops not found: {path} (a folder with one sub-folder per class, or a CSV)")
    crops: list[np.ndarray] = []
    labels: list[str] = []
    if path.is_dir() and (path / "prepared.csv").is_file():  # a `mer prepare` folder
        path = path / "prepared.csv"
    if path.is_dir():
        for sub in sorted(p for p in path.iterdir() if p.is_dir()):
            for f in image_files(sub, recursive=True):
                crops.append(read_gray(f, size, hint=CROP_HINT))
                labels.append(sub.name)
    else:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        key = next((k for k in ("crop", "path") if rows and k in rows[0]), None)
        if key is None or "label" not in rows[0]:
            raise MerError(f"{path}: expected CSV columns 'label' and 'crop' (or 'path')")
        for row in rows:
            f = Path(row[key]) if Path(row[key]).is_absolute() else path.parent / row[key]
            crops.append(read_gray(f, size, hint=CROP_HINT))
            labels.append(row["label"])
    if not crops:
        raise MerError(f"{path}: no labelled crops found (expected class sub-folders with images, or a CSV)")
    return np.stack(crops), labels


def sample_face_crops(face: FaceConfig, n: int = 32, seed: int = 0) -> np.ndarray:
    """Aligned crops of the public-domain photos shipped with scikit-image and matplotlib, augmented (shift, scale,
    rotation, flip, gamma) to `n` crops: calibration data that needs no dataset."""
    rng = np.random.default_rng(seed)
    photos = sample_photos()
    detector = FaceDetector("cpu", min_face_size=face.min_face_size)
    faces = [pick_face(f)[0] for f in detector.detect(photos)]
    base = [(img, f) for img, f in zip(photos, faces, strict=True) if f is not None]
    if not base:
        raise MerError("no face found in the sample photos; give --calib with aligned crops")
    crops = []
    for i in range(n):
        img, f = base[i % len(base)]
        angle, scale = rng.uniform(-8, 8), rng.uniform(0.93, 1.07)
        shift = rng.uniform(-0.04, 0.04, size=2) * img.shape[1]
        centre = (float(f.box[0] + f.box[2]) / 2, float(f.box[1] + f.box[3]) / 2)
        m = cv2.getRotationMatrix2D(centre, angle, scale)
        m[:, 2] += shift
        warped = cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)
        lm = np.hstack([f.landmarks, np.ones((5, 1))]) @ m.T
        box = np.array([*(m @ [f.box[0], f.box[1], 1]), *(m @ [f.box[2], f.box[3], 1])])
        crop = align_face(warped, lm, face, box)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        gamma = rng.uniform(0.7, 1.4)
        crop = (255.0 * (crop / 255.0) ** gamma).round().astype(np.uint8)
        crops.append(np.ascontiguousarray(crop))
    return np.stack(crops)


def calibration_crops(calib: str | Path | np.ndarray | None, face: FaceConfig, size: int) -> tuple[np.ndarray, str]:
    """(crops, description) for static quantisation: the given crops, or augmented sample-photo crops."""
    if isinstance(calib, np.ndarray):
        return to_uint8_crops(calib, size), f"{len(calib)} crops given as an array"
    if calib is not None:
        crops = load_crops(calib, size)
        return crops, f"{len(crops)} crops from {calib}"
    crops = sample_face_crops(face, n=32)
    return to_uint8_crops(crops, size), "32 augmented crops of the 2 public-domain sample photos (no --calib given)"
