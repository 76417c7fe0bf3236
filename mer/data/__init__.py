"""Datasets in, tables out: the readers (`datasets`), the manifest and report tables, labels, the MEGC2019 list,
augmentation and the Lightning data module. Names are imported on use, so the light parts stay light."""

from __future__ import annotations

from mer._lazy import lazy_getattr

_EXPORTS = {
    "MERDataModule": "datamodule",
    "build_manifest": "datasets",
    "counts": "manifest",
    "load_manifest": "manifest",
    "make_frame": "manifest",
    "make_report": "manifest",
    "save_manifest": "manifest",
    "resolve": "labels",
    "select_megc": "megc",
    "resize_crops": "transforms",
    "train_transform": "transforms",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
