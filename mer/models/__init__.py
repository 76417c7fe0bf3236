"""Networks: timm backbones behind one interface (`MERNet`), the Lightning module and gradual unfreezing.
Names are imported on use (timm and lightning are slow to import)."""

from __future__ import annotations

from mer._lazy import lazy_getattr

_EXPORTS = {
    "MERNet": "backbones",
    "build_model": "backbones",
    "build_net": "backbones",
    "count_parameters": "backbones",
    "load_weights": "backbones",
    "save_weights": "backbones",
    "MERModule": "module",
    "GradualUnfreeze": "unfreeze",
    "stages_for": "unfreeze",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
