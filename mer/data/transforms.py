"""Image transforms (albumentations): balancing shifts and flips, the paper's pixel jitter, and normalisation.

Crops are uint8 grayscale H×W; the network sees float (x/255 − 0.5)/0.5 of shape (1, H, W). `normalize` is the one
place that mapping lives, so training, embedding, prediction and ONNX export agree.
"""

from __future__ import annotations

import os
import zlib

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from mer.config import AugmentConfig  # noqa: E402

MEAN = 0.5
STD = 0.5


def normalize(crops: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 crops (H,W), (N,H,W) or (N,1,H,W) → float32 tensor (N,1,H,W) scaled to [-1, 1]."""
    x = torch.as_tensor(np.asarray(crops) if not isinstance(crops, torch.Tensor) else crops)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 3:
        x = x[:, None]
    return (x.float() / 255.0 - MEAN) / STD


def draw_seed(seed: int, stage: str | None, epoch: int, position: int) -> int:
    """The seed of one sample's augmentation: a function of (seed, stage, epoch, position in the epoch) only.

    Seeding each sample from its key (rather than drawing from one generator in turn) makes the draws independent
    of who draws them: every DataLoader worker, persistent or not, gives the batches `num_workers: 0` gives.
    """
    words = [int(seed) % (1 << 64), zlib.crc32((stage or "").encode()), int(epoch), int(position)]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def sample_key(key: int | tuple) -> tuple[int, bool, tuple[int, int] | None]:
    """A dataset key → (index, is a top-up copy, (epoch, position) or None).

    Keys are a plain index, the balancing samplers' `(index, topup)`, or `(index, topup, epoch, position)` as
    `mer.data.datamodule.DrawKeys` hands them to the training datasets (the draw's place, see `draw_seed`).
    """
    if not isinstance(key, tuple):
        return int(key), False, None
    if len(key) == 4:
        return int(key[0]), bool(key[1]), (int(key[2]), int(key[3]))
    return int(key[0]), bool(key[1]), None


def resize_crops(crops: np.ndarray, size: int) -> np.ndarray:
    """Resize a stack of uint8 crops (N,H,W) to size×size when they differ (area interpolation)."""
    if crops.shape[-1] == size and crops.shape[-2] == size:
        return crops
    return np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops])


def train_transform(
    cfg: AugmentConfig, seed: int | None = None, geometric: bool = True, jitter: bool = True
) -> A.Compose:
    """Random shift of up to `max_shift` px each way (border replicated), horizontal flip, optional pixel jitter.

    The jitter is our reading of the paper's "pixel fine-tuning with probability 0.3 (maximum value 20)": with
    probability `jitter_p` a brightness offset drawn uniformly in ±`jitter_max` grey levels. `geometric=False` leaves
    out the shift and flip (originals under `augment.apply: topups`), `jitter=False` the jitter (stages without it).
    """
    ops: list[A.BasicTransform] = []
    if geometric and cfg.max_shift > 0:
        ops.append(
            A.Affine(
                translate_px={"x": (-cfg.max_shift, cfg.max_shift), "y": (-cfg.max_shift, cfg.max_shift)},
                border_mode=cv2.BORDER_REPLICATE,
                interpolation=cv2.INTER_NEAREST,
                p=1.0,
            )
        )
    if geometric and cfg.hflip:
        ops.append(A.HorizontalFlip(p=0.5))
    if jitter and cfg.jitter_p > 0 and cfg.jitter_max > 0:
        limit = cfg.jitter_max / 255.0
        ops.append(A.RandomBrightnessContrast(brightness_limit=(-limit, limit), contrast_limit=(0, 0), p=cfg.jitter_p))
    return A.Compose(ops, seed=seed)
