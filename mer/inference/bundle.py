"""Model bundles: the network, the SVM fitted on its embeddings, and the config that made both, in one folder.

A bundle is a folder with
  `net.pt`       the network's weights (`mer.models.backbones.save_weights`),
  `svm.joblib`   the fitted scikit-learn pipeline (StandardScaler + SVC), optional: without it the softmax decides,
  `config.yaml`  the resolved `Config` (face pipeline, image size, classes),
  `bundle.json`  what a reader needs without loading anything: classes, backbone, image size, face config, version,
                 creation time and what the SVM was trained on.

`load_bundle` also accepts a plain checkpoint (`.ckpt`/`.pt`, softmax only) or an ONNX file written by
`mer export onnx` (softmax only, run with ONNX Runtime), so `mer predict --model` takes any of the three.
`Bundle.engine` says what runs the network: PyTorch, ONNX Runtime or OpenVINO (the `openvino` extra).
`svm.joblib` is a pickle: load bundles only from sources you trust.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

import mer
from mer.config import Config, class_names, load_config, to_yaml
from mer.data.transforms import normalize, resize_crops
from mer.errors import MerError
from mer.models.backbones import MERNet, read_checkpoint, save_weights

BUNDLE_FORMAT = "mer-bundle/1"
NORMALIZATION = "x = (uint8 / 255 - 0.5) / 0.5, shape (N, 1, H, W)"
NET_FILE, SVM_FILE, CONFIG_FILE, INFO_FILE = "net.pt", "svm.joblib", "config.yaml", "bundle.json"
CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth")
BATCH = 32  # crops per forward pass in `Bundle.classify`
ENGINES = ("auto", "torch", "onnxruntime", "openvino")  # auto: torch for networks, onnxruntime for .onnx files

# (N, 1, H, W) float32 → (logits (N, C), embeddings (N, D)) as numpy
Runner = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def to_tensor(crops: np.ndarray, image_size: int | None = None) -> torch.Tensor:
    """uint8 gray crops (N,H,W) or (H,W) → the float tensor (N,1,S,S) the network saw in training.

    Resizes to `image_size` (area interpolation) when the crops differ, then applies training's normalisation
    (`mer.data.transforms.normalize`, (x/255 − 0.5)/0.5): the one mapping shared by training, prediction and export.
    """
    arr = np.asarray(crops)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise MerError(f"expected gray crops of shape (N, H, W), got {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if image_size is not None:
        arr = resize_crops(arr, int(image_size))
    return normalize(arr)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (rows sum to 1 up to rounding)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def torch_runner(net: MERNet) -> Runner:
    """A runner that calls `net.forward_both` under inference mode on CPU (or the net's device)."""
    device = next(net.parameters()).device

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            logits, emb = net.forward_both(torch.from_numpy(np.ascontiguousarray(x)).to(device))
        return logits.float().cpu().numpy(), emb.float().cpu().numpy()

    return run


def onnx_session(path: str | Path, threads: int | None = None, spin: bool = False) -> Any:
    """An ONNX Runtime CPU session for `path` (intra-op threads = torch's thread count unless given).

    Idle intra-op threads sleep instead of spinning unless `spin`: on a shared 2-core machine that measured 1.5–3×
    faster at batch 1 (spinning threads steal the cores the working ones need); see benchmarks/RESULTS.md.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise MerError("ONNX models need onnxruntime: pip install 'mer-lightning[onnx]'") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.log_severity_level = 3
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - any unreadable model is one user error
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc.__class__.__name__
        raise MerError(f"{path}: not a readable ONNX model ({first})") from None


def onnx_runner(session: Any) -> Runner:
    """A runner over an ONNX Runtime session with outputs `logits` and `embedding` (as `mer export onnx` writes)."""
    input_name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    if "logits" not in names:
        raise MerError(
            f"ONNX model has outputs {names}; expected 'logits' and 'embedding' (export with mer export onnx)"
        )
    has_emb = "embedding" in names

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outs = session.run(["logits", "embedding"] if has_emb else ["logits"], {input_name: x.astype(np.float32)})
        emb = outs[1] if has_emb else np.zeros((len(x), 0), dtype=np.float32)
        return outs[0], emb

    return run


def openvino_model(
    path: str | Path, threads: int | None = None, precision: str | None = "f32", shape: Sequence[int] | None = None
) -> Any:
    """An OpenVINO CPU compiled model of the ONNX file `path` (latency hint; `shape` fixes the input shape).

    `precision` 'f32' keeps fp32 arithmetic (results as ONNX Runtime's); None leaves OpenVINO's default, which is
    bf16 on CPUs with bf16 units (AMX / AVX512-BF16): faster, with logits about 1e-2 off.
    """
    try:
        import openvino as ov
    except ImportError:
        raise MerError("the openvino engine needs OpenVINO: pip install 'mer-lightning[openvino]'") from None
    core = ov.Core()
    try:
        model = core.read_model(str(path))
        if shape is not None:
            model.reshape([int(d) for d in shape])
        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads())}
        config["PERFORMANCE_HINT"] = "LATENCY"
        if precision:
            config["INFERENCE_PRECISION_HINT"] = precision
        return core.compile_model(model, "CPU", config)
    except Exception as exc:  # noqa: BLE001 - any unreadable model is one user error
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc.__class__.__name__
        raise MerError(f"{path}: OpenVINO cannot compile this model ({first})") from None


def openvino_runner(compiled: Any) -> Runner:
    """A runner over an OpenVINO compiled model with outputs `logits` and `embedding` (as `mer export onnx` writes)."""
    names = [o.get_any_name() for o in compiled.outputs]
    if "logits" not in names:
        raise MerError(f"model has outputs {names}; expected 'logits' and 'embedding' (export with mer export onnx)")
    request = compiled.create_infer_request()
    logits_port = compiled.output("logits")
    emb_port = compiled.output("embedding") if "embedding" in names else None

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        res = request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
        emb = np.array(res[emb_port]) if emb_port is not None else np.zeros((len(x), 0), dtype=np.float32)
        return np.array(res[logits_port]), emb  # copies: the request reuses its output buffers

    return run


@dataclass
class Bundle:
    """A loaded model: network (or ONNX session), optional SVM, the config it was trained with, and the classes.

    `classify(crops)` is the single entry point prediction uses: labels from the SVM when there is one, else from
    the softmax head; probabilities always from the softmax head.
    """

    cfg: Config
    classes: list[str]
    net: MERNet | None = None
    svm: Any | None = None
    info: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    kind: str = "bundle"  # bundle | checkpoint | onnx
    session: Any | None = None
    openvino: Any | None = None  # an OpenVINO compiled model, when the bundle runs on that engine
    _runner: Runner | None = field(default=None, repr=False)

    @property
    def classifier(self) -> str:
        """'svm' when an SVM decides the label, else 'softmax'."""
        return "svm" if self.svm is not None else "softmax"

    @property
    def engine(self) -> str:
        """'openvino', 'onnxruntime' or 'torch'."""
        if self.openvino is not None:
            return "openvino"
        return "onnxruntime" if self.session is not None else "torch"

    @property
    def image_size(self) -> int:
        """The network's input side in pixels."""
        if self.net is not None:
            return int(self.net.image_size)
        return int(self.info.get("image_size") or self.cfg.data.image_size)

    @property
    def backbone(self) -> str:
        """timm model name of the network."""
        return str(self.net.backbone_name if self.net is not None else self.info.get("backbone", "unknown"))

    @property
    def runner(self) -> Runner:
        """(N,1,H,W) float32 → (logits, embeddings)."""
        if self._runner is None:
            if self.openvino is not None:
                self._runner = openvino_runner(self.openvino)
            elif self.session is not None:
                self._runner = onnx_runner(self.session)
            elif self.net is not None:
                self._runner = torch_runner(self.net)
            else:
                raise MerError("bundle has neither a network nor an ONNX session")
        return self._runner

    def forward(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 crops (N,H,W) → (logits (N,C), embeddings (N,D)), in batches of `BATCH`."""
        x = to_tensor(crops, self.image_size).numpy()
        logits, embs = [], []
        for start in range(0, len(x), BATCH):
            lg, em = self.runner(x[start : start + BATCH])
            logits.append(lg)
            embs.append(em)
        return np.concatenate(logits), np.concatenate(embs)

    def classify(self, crops: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
        """uint8 aligned crops (N,H,W) → (labels, softmax probabilities (N,C), embeddings (N,D))."""
        logits, emb = self.forward(crops)
        probs = softmax(logits)
        if self.svm is None:
            labels = [self.classes[int(i)] for i in probs.argmax(axis=1)]
        else:
            labels = [self._svm_label(v) for v in self.svm.predict(emb.astype(np.float64))]
        return labels, probs, emb

    def _svm_label(self, value: Any) -> str:
        """The SVM predicts class names (or their indices as text when it was fitted on indices)."""
        text = str(value)
        if text in self.classes:
            return text
        if text.lstrip("-").isdigit() and 0 <= int(text) < len(self.classes):
            return self.classes[int(text)]
        raise MerError(f"the bundle's SVM predicted '{text}', which is not one of its classes {self.classes}")

    def describe(self) -> str:
        """One line: what was loaded."""
        return (
            f"{self.kind} {self.source} ({self.backbone}, {self.image_size}², {self.engine}, "
            f"classes {'/'.join(self.classes)}, label from {self.classifier})"
        )


def bundle_info(net: MERNet, cfg: Config, svm: Any | None = None, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of `bundle.json`."""
    return {
        "format": BUNDLE_FORMAT,
        "classes": list(class_names(cfg.data)),
        "backbone": net.backbone_name,
        "in_chans": int(net.in_chans),
        "num_classes": int(net.num_classes),
        "image_size": int(net.image_size),
        "normalization": NORMALIZATION,
        "face": dataclasses.asdict(cfg.face),
        "classifier": "svm" if svm is not None else "softmax",
        "probabilities_from": "softmax",
        "mer_version": mer.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": [NET_FILE, CONFIG_FILE, INFO_FILE] + ([SVM_FILE] if svm is not None else []),
        "info": info or {},
    }


def save_bundle(
    out: str | Path, net: MERNet, cfg: Config, svm: Any | None = None, info: dict[str, Any] | None = None
) -> Path:
    """Write a bundle folder (net.pt, svm.joblib if given, config.yaml, bundle.json) and return its path.

    `info` is stored under `bundle.json["info"]`: say there what the SVM was trained on (e.g. subjects, n_train,
    chosen C/kernel) and which run made the bundle.
    """
    import joblib

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MerError(f"{out}: exists and is not a folder; give a folder path for the bundle")
    if len(class_names(cfg.data)) != net.num_classes:
        raise MerError(
            f"config has {len(class_names(cfg.data))} classes {class_names(cfg.data)} but the network {net.num_classes}"
            " "
            "outputs; they must match"
        )
    out.mkdir(parents=True, exist_ok=True)
    save_weights(net, out / NET_FILE)
    svm_path = out / SVM_FILE
    if svm is not None:
        joblib.dump(svm, svm_path)
    elif svm_path.exists():
        svm_path.unlink()  # a stale SVM from an earlier bundle would silently change the labels
    (out / CONFIG_FILE).write_text(to_yaml(cfg))
    (out / INFO_FILE).write_text(json.dumps(bundle_info(net, cfg, svm, info), indent=2, default=str))
    return out


def _net_from_checkpoint(path: Path, cfg: Config | None) -> tuple[MERNet, dict[str, Any]]:
    """Rebuild a MERNet from a checkpoint's meta (falling back to `cfg`), load its weights, eval mode."""
    state, meta = read_checkpoint(path)
    backbone = meta.get("backbone") or (cfg.model.backbone if cfg else None)
    if not backbone:
        raise MerError(f"{path}: checkpoint does not say its backbone; give --config with the training config")
    net = MERNet(
        backbone,
        int(meta.get("in_chans") or (cfg.model.in_chans if cfg else 1)),
        int(meta.get("num_classes") or (cfg.model.num_classes if cfg else 3)),
        0.0,
        int(meta.get("image_size") or (cfg.data.image_size if cfg else 256)),
    )
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise MerError(
            f"{path}: weights do not fit a {backbone} ({len(missing)} missing, {len(unexpected)} unexpected keys; "
            f"first: {(list(missing) or list(unexpected))[0]})"
        )
    return net.eval(), meta


def _config_near(path: Path) -> Config | None:
    """The run's config.yaml beside a checkpoint or one/two folders up (mer runs write it there), if any."""
    for folder in (path.parent, path.parent.parent, path.parent.parent.parent):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            try:
                return load_config(candidate)
            except MerError:
                return None
    return None


def _fit_cfg(cfg: Config, image_size: int, num_classes: int) -> Config:
    """`cfg` with the image size of the network (and default classes when the count differs)."""
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, image_size=int(image_size)))
    if len(class_names(cfg.data)) != num_classes:
        raise MerError(
            f"config lists {len(class_names(cfg.data))} classes {class_names(cfg.data)} but the model has {num_classes}"
            " "
            "outputs; give --config with the training config"
        )
    return cfg


def _load_folder(path: Path) -> Bundle:
    missing = [name for name in (NET_FILE, CONFIG_FILE) if not (path / name).is_file()]
    if missing:
        raise MerError(
            f"{path}: not a model bundle (missing {', '.join(missing)}); a bundle holds net.pt, config.yaml, "
            "bundle.json and optionally svm.joblib (written by mer loso --final)"
        )
    cfg = load_config(path / CONFIG_FILE)
    info: dict[str, Any] = {}
    if (path / INFO_FILE).is_file():
        try:
            info = json.loads((path / INFO_FILE).read_text())
        except json.JSONDecodeError as exc:
            raise MerError(f"{path / INFO_FILE}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    net, _ = _net_from_checkpoint(path / NET_FILE, cfg)
    svm = None
    if (path / SVM_FILE).is_file():
        import joblib

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # sklearn version notes; the bundle records the versions
                svm = joblib.load(path / SVM_FILE)
        except Exception as exc:  # noqa: BLE001 - a broken pickle is one user error
            raise MerError(f"{path / SVM_FILE}: cannot load the SVM ({exc.__class__.__name__}: {exc})") from None
        if not hasattr(svm, "predict"):
            raise MerError(f"{path / SVM_FILE}: holds a {type(svm).__name__}, not a fitted scikit-learn classifier")
    classes = list(info.get("classes") or class_names(cfg.data))
    cfg = _fit_cfg(cfg, net.image_size, net.num_classes)
    info.setdefault("backbone", net.backbone_name)
    info.setdefault("image_size", net.image_size)
    return Bundle(cfg=cfg, classes=classes, net=net, svm=svm, info=info, source=path, kind="bundle")


def _load_checkpoint(path: Path, cfg: Config | None) -> Bundle:
    cfg = cfg or _config_near(path)
    net, meta = _net_from_checkpoint(path, cfg)
    if cfg is None:  # nothing known about the face pipeline: defaults at the network's size
        cfg = load_config(None, [f"face.size={net.image_size}"])
    cfg = _fit_cfg(cfg, net.image_size, net.num_classes)
    info = {"backbone": net.backbone_name, "image_size": net.image_size, "checkpoint_meta": meta}
    return Bundle(cfg=cfg, classes=list(class_names(cfg.data)), net=net, info=info, source=path, kind="checkpoint")


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """The `mer.*` metadata properties `mer export onnx` stores in an ONNX model (empty if none)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def _load_onnx(path: Path, cfg: Config | None) -> Bundle:
    session = onnx_session(path)
    try:
        meta = onnx_metadata(path)
    except Exception:  # noqa: BLE001 - metadata is optional; the session already proved the file is a model
        meta = {}
    shape = session.get_inputs()[0].shape
    size = int(meta.get("mer.image_size") or (shape[-1] if isinstance(shape[-1], int) else 0) or 256)
    if cfg is None and "mer.config" in meta:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:  # load_config validates a file; the metadata holds its text
            (Path(tmp) / CONFIG_FILE).write_text(meta["mer.config"])
            cfg = load_config(Path(tmp) / CONFIG_FILE)
    if cfg is None:
        cfg = load_config(None, [f"face.size={size}"])
    n_out = session.get_outputs()[0].shape[-1]
    classes = json.loads(meta["mer.classes"]) if "mer.classes" in meta else list(class_names(cfg.data))
    if isinstance(n_out, int) and n_out != len(classes):
        raise MerError(f"{path}: model has {n_out} outputs but {len(classes)} classes are known; give --config")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, image_size=size, classes=list(classes)))
    info = {"backbone": meta.get("mer.backbone", "unknown"), "image_size": size, "onnx_metadata": meta}
    return Bundle(cfg=cfg, classes=list(classes), info=info, source=path, kind="onnx", session=session)


def load_bundle(path: str | Path, cfg: Config | None = None) -> Bundle:
    """Load a bundle folder, a plain checkpoint (.ckpt/.pt: softmax only) or an ONNX file (softmax only).

    For a checkpoint, `cfg` (or the run's config.yaml found beside it) gives the face pipeline and classes;
    without either, defaults at the network's image size are used. `mer.inference.predict.use_engine` switches
    what runs the network.
    """
    path = Path(path)
    if not path.exists():
        raise MerError(f"model not found: {path} (give a bundle folder, a .ckpt/.pt checkpoint or an .onnx file)")
    if path.is_dir():
        return _load_folder(path)
    if path.stat().st_size == 0:
        raise MerError(f"{path}: model file is empty (0 bytes)")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return _load_onnx(path, cfg)
    if suffix in CHECKPOINT_SUFFIXES:
        return _load_checkpoint(path, cfg)
    raise MerError(f"{path}: unknown model type '{suffix}'; give a bundle folder, a .ckpt/.pt/.pth or an .onnx file")
