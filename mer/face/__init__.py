"""Faces: MTCNN detection, alignment by the eye line, the content-addressed crop cache and apex spotting.
Names are imported on use (detection needs torch)."""

from __future__ import annotations

from mer._lazy import lazy_getattr

_EXPORTS = {
    "align": "align",
    "align_face": "align",
    "CropCache": "cache",
    "Face": "detect",
    "FaceDetector": "detect",
    "pick_face": "detect",
    "spot_apex": "spot",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
