"""Inference and speed: `mer predict` (image, frames folder, video), model bundles, ONNX export, `mer bench`.

- `mer.inference.bundle`: `save_bundle`, `load_bundle`, `Bundle.classify`, `to_tensor` (the training normalisation)
- `mer.inference.video`: `open_media` (every bad input is one `MerError` line), `sample_photos`
- `mer.inference.predict`: `predict_path` → the JSON dict documented in docs/inference.md (`SCHEMA_KEYS`)
- `mer.inference.export`: `export_onnx` (logits + embedding, dynamic batch, checked against PyTorch; int8) and
  `export_graph` (the bare graph)
- `mer.inference.bench`: `run_bench` (eager / torch.compile / ONNX Runtime fp32 / int8, face pipeline, video)

Import the submodule you need, so `import mer.inference` stays cheap.
"""
