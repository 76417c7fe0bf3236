"""Inference and speed: `mer predict` (image, frames folder, video), model bundles, ONNX export, `mer bench`.

- `mer.inference.bundle`: `save_bundle`, `load_bundle`, `Bundle.classify`, `to_tensor` (the training normalisation)
- `mer.inference.video`: `open_media` (every bad input is one `MerError` line), `sample_photos`
- `mer.inference.predict`: `predict_path` → the JSON dict documented in docs/inference.md (`SCHEMA_KEYS`)
- `mer.inference.export`: `export_onnx` (logits + embedding, dynamic batch, checked against PyTorch; int8)
- `mer.inference.bench`: `run_bench` (eager / torch.compile / ONNX Runtime fp32 / int8, face pipeline, video)

Submodules are imported on use so `import mer.inference` stays cheap.
"""

from __future__ import annotations

from mer._lazy import lazy_getattr

_EXPORTS = {
    "Bundle": "bundle",
    "save_bundle": "bundle",
    "load_bundle": "bundle",
    "to_tensor": "bundle",
    "open_media": "video",
    "predict_path": "predict",
    "SCHEMA_KEYS": "predict",
    "ExportResult": "export",
    "export_onnx": "export",
    "BenchResult": "bench",
    "run_bench": "bench",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
