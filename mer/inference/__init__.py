"""Inference and speed: `mer predict` (image, frames folder, video), model bundles, ONNX export, `mer bench`.

- `mer.inference.bundle`: `save_bundle`, `load_bundle`, `Bundle.classify`, `to_tensor` (the training normalisation)
- `mer.inference.video`: `open_media` (every bad input is one `MerError` line), `sample_photos`
- `mer.inference.predict`: `predict_path` → the JSON dict documented in docs/inference.md (`SCHEMA_KEYS`)
- `mer.inference.export`: `export_onnx` (logits + embedding, dynamic batch, checked against PyTorch; int8)
- `mer.inference.bench`: `run_bench` (eager / torch.compile / ONNX Runtime fp32 / int8, face pipeline, video)

Submodules are imported on use so `import mer.inference` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Bundle": "bundle",
    "save_bundle": "bundle",
    "load_bundle": "bundle",
    "to_tensor": "bundle",
    "open_media": "video",
    "predict_path": "predict",
    "SCHEMA_KEYS": "predict",
    "export_onnx": "export",
    "run_bench": "bench",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Lazy access to the public names listed in `__all__`."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
