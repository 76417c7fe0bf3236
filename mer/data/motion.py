"""Motion inputs in training: cached onset→apex arrays (`mer prepare`, `data.input`) loaded, scaled and augmented.

`mer prepare` stores, per sample, an (H, W, C) float16 array at the crop size: apex − onset grey levels
(``apex_minus_onset``), flow u, v in crop pixels (``flow``), or u, v and optical strain (``flow_strain``). Here they
become network inputs (C, S, S) at `data.image_size`:

* resized per channel (area interpolation);
* scaled per sample so the largest value is 1 in magnitude: u and v share one scale (the direction of motion is
  kept), strain and the difference image get their own; a zero field stays zero. Amplitudes differ a lot between
  datasets and cameras, the pattern is what carries the class;
* augmented like the apex crops (`augment.max_shift` whole-pixel shifts with the border replicated, horizontal
  flips with p 0.5, on every sample or on the balancing top-ups only, `augment.apply`), except that **a flip negates
  u** (the horizontal motion changes direction with the image) and the **pixel jitter never applies** (a brightness
  offset is not motion; on a difference image it would cancel anyway).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from mer.config import AugmentConfig
from mer.data.transforms import draw_seed, sample_key
from mer.errors import DataError

FLOW_MODES = ("flow", "flow_strain")  # inputs whose channel 0 is the horizontal flow u


def scale_motion(field: np.ndarray, mode: str) -> np.ndarray:
    """(H, W, C) motion array → float32 (C, H, W) with each channel group's largest magnitude scaled to 1."""
    x = np.moveaxis(np.asarray(field, dtype=np.float32), 2, 0).copy()
    groups = [(0, 2), *(((2, 3),) if x.shape[0] > 2 else ())] if mode in FLOW_MODES else [(0, x.shape[0])]
    for lo, hi in groups:
        peak = float(np.abs(x[lo:hi]).max()) if x.size else 0.0
        if peak > 1e-6:
            x[lo:hi] /= peak
    return x


def load_motion(paths: Sequence[str], size: int, mode: str, channels: int) -> np.ndarray:
    """Stack of scaled motion inputs (N, C, size, size) float32 from the cached `.npy` files of `mer prepare`."""
    out = np.zeros((len(paths), channels, size, size), np.float32)
    for i, path in enumerate(paths):
        try:
            field = np.load(path, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: unreadable motion input ({exc}); re-run `mer prepare`") from None
        if field.ndim != 3 or field.shape[2] != channels:
            raise DataError(f"{path}: motion input of shape {field.shape}, expected (H, W, {channels}) for {mode}")
        if field.shape[:2] != (size, size):
            field = cv2.resize(field, (size, size), interpolation=cv2.INTER_AREA).reshape(size, size, channels)
        out[i] = scale_motion(field, mode)
    return out


def augment_motion(x: torch.Tensor, cfg: AugmentConfig, mode: str, generator: torch.Generator | None = None):
    """Random whole-pixel shift (border replicated) and horizontal flip of one (C, H, W) input; a flip negates u."""
    if cfg.max_shift > 0:
        s = int(cfg.max_shift)
        dy, dx = (int(v) for v in torch.randint(-s, s + 1, (2,), generator=generator))
        padded = torch.nn.functional.pad(x[None], (s, s, s, s), mode="replicate")[0]
        h, w = x.shape[-2:]
        x = padded[:, s - dy : s - dy + h, s - dx : s - dx + w]
    if cfg.hflip and bool(torch.rand((), generator=generator) < 0.5):
        x = x.flip(-1)
        if mode in FLOW_MODES:
            x = x.clone()
            x[0] = -x[0]
    return x.contiguous()


class MotionDataset(Dataset):
    """In-memory scaled motion inputs (N, C, H, W) + labels; shifts/flips like `CropDataset`, never pixel jitter.

    As there, a key `(index, topup, epoch, position)` seeds the sample's draw from (seed, stage, epoch, position)
    alone; other keys draw from torch's global generator.
    """

    def __init__(
        self,
        inputs: np.ndarray,
        labels: np.ndarray,
        mode: str,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        stage: str | None = None,
    ) -> None:
        self.seed, self.stage = seed, stage
        self.inputs = torch.as_tensor(inputs, dtype=torch.float32)
        self.labels = torch.tensor(np.asarray(labels), dtype=torch.long)
        self.mode = mode
        self.augment = augment
        self.topups_only = augment is not None and augment.apply == "topups"

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: int | tuple) -> tuple[torch.Tensor, torch.Tensor]:
        i, topup, draw = sample_key(key)
        x = self.inputs[i]
        if self.augment is not None and (topup or not self.topups_only):
            generator = None
            if draw is not None:
                generator = torch.Generator().manual_seed(draw_seed(self.seed, self.stage, *draw))
            x = augment_motion(x, self.augment, self.mode, generator)
        return x, self.labels[i]
