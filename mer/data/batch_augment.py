"""Device-side batch augmentation: the per-sample albumentations path of `mer.data.transforms`, on whole batches.

The training crops sit in memory as uint8; here a whole batch (N, H, W) is indexed at once and shifted, flipped and
jittered as tensor ops (kornia's augmentation module) on whatever device it is on, so no per-sample CPU work stands
between a GPU's batches. Every random draw is per sample and follows `train_transform`'s distribution exactly:

- shift: a whole-pixel offset per axis, uniform over −max_shift..max_shift (albumentations' `randint`), border
  replicated. Done as pad-by-max_shift (replicate) + random crop, which is integer slicing, so pixels are copied as
  `A.Affine(interpolation=INTER_NEAREST)` copies them;
- horizontal flip with p = 0.5;
- pixel jitter with p = jitter_p: a brightness offset β uniform in ±jitter_max grey levels, added, clipped to
  [0, 255] and truncated to a whole grey level, as albumentations' uint8 look-up table does (mean offset −0.5).

Then the normalisation of `mer.data.transforms.normalize`. `UInt8Crops` is the matching dataset: it hands the
DataLoader whole uint8 batches (`__getitems__`), optionally from a copy of the crops already on the training device.
"""

from __future__ import annotations

from collections.abc import Sequence

import kornia.augmentation as K
import numpy as np
import torch
from torch.utils.data import Dataset

from mer.config import AugmentConfig
from mer.data.transforms import MEAN, STD


def _as_nchw(crops: torch.Tensor) -> torch.Tensor:
    """(N,H,W) or (N,1,H,W) → (N,1,H,W)."""
    if crops.ndim == 3:
        return crops[:, None]
    if crops.ndim == 4 and crops.shape[1] == 1:
        return crops
    raise ValueError(f"expected gray crops of shape (N, H, W) or (N, 1, H, W), got {tuple(crops.shape)}")


class BatchAugment(torch.nn.Module):
    """uint8 crops (N,H,W) or (N,1,H,W) on any device → augmented, normalised float32 (N,1,H,W) on that device.

    `augment` (a bool tensor (N,)) limits the shift and flip to some samples (`augment.apply: topups`: the balancing
    top-ups); the pixel jitter, when `jitter` is on (the stage is in `augment.jitter_stages`), goes on every sample,
    as `mer.data.datamodule.CropDataset` does. Draws use torch's global generator (seeded by `seed_everything`): the
    device loader always runs in the training process (`num_workers=0`), so no worker copies that generator.
    """

    def __init__(self, cfg: AugmentConfig, jitter: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.shift = int(cfg.max_shift)
        self.flip = K.RandomHorizontalFlip(p=0.5) if cfg.hflip else None
        self.jitter = jitter and cfg.jitter_p > 0 and cfg.jitter_max > 0
        limit = cfg.jitter_max / 255.0
        self.brightness = (
            K.RandomBrightness(brightness=(1.0 - limit, 1.0 + limit), clip_output=True, p=cfg.jitter_p)
            if self.jitter
            else None
        )
        self._crops: dict[tuple[int, int], K.RandomCrop] = {}

    def _shift(self, x: torch.Tensor) -> torch.Tensor:
        size = (int(x.shape[-2]), int(x.shape[-1]))  # kornia's crop needs the output size up front: one per size
        if size not in self._crops:
            self._crops[size] = K.RandomCrop(
                size, padding=self.shift, padding_mode="replicate", cropping_mode="slice", p=1.0
            )
        return self._crops[size](x)

    @torch.no_grad()
    def forward(self, crops: torch.Tensor, augment: torch.Tensor | None = None) -> torch.Tensor:
        """Shift and flip each sample (those with `augment` true), jitter every sample, normalise to [-1, 1]."""
        x = _as_nchw(crops).to(torch.float32) / 255.0
        if augment is None:
            x = self._geometric(x)
        else:
            augment = augment.to(x.device, torch.bool).view(-1)
            if bool(augment.any()):
                x = x.clone()
                x[augment] = self._geometric(x[augment])
        if self.brightness is not None and len(x):
            x = self.brightness(x)
            # back to whole grey levels, truncated like albumentations' uint8 LUT (+1e-4: float error)
            x = torch.floor(x.mul(255.0).add_(1e-4)).clamp_(0.0, 255.0).div_(255.0)
        return (x - MEAN) / STD

    def _geometric(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) == 0:
            return x
        if self.shift > 0:
            x = self._shift(x)
        if self.flip is not None:
            x = self.flip(x)
        return x


def keep_batch(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Collate function for `UInt8Crops`: its `__getitems__` already returns the batch as tensors."""
    return batch


class UInt8Crops(Dataset):
    """In-memory uint8 crops + labels handed out a whole batch at a time (`__getitems__`, one fancy index).

    With `device`, the crops are copied there once (a fold's crops fit easily on a GPU) and batches are gathered on
    it; use it with `num_workers=0`, a `batch_sampler` over the usual sampler and `collate_fn=keep_batch`. Keys are
    indices or the balancing samplers' `(index, topup)`; with `topups=True` a batch also carries the top-up mask
    (bool (N,)) for `BatchAugment(augment=...)` under `augment.apply: topups`.
    """

    def __init__(
        self,
        crops: np.ndarray | torch.Tensor,
        labels: Sequence[int] | np.ndarray,
        device: str | torch.device = "cpu",
        topups: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.topups = topups
        self.crops = torch.as_tensor(np.asarray(crops) if not isinstance(crops, torch.Tensor) else crops)
        self.crops = self.crops.to(self.device, torch.uint8)
        self.labels = torch.as_tensor(np.array(labels), dtype=torch.long).to(self.device)  # a copy

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: int | tuple[int, bool]) -> tuple[torch.Tensor, ...]:
        return tuple(t[0] for t in self.__getitems__([key]))

    def __getitems__(self, keys: Sequence[int | tuple[int, bool]]) -> tuple[torch.Tensor, ...]:
        pairs = [k if isinstance(k, tuple) else (k, False) for k in keys]
        idx = torch.as_tensor([int(i) for i, _ in pairs], dtype=torch.long, device=self.device)
        if not self.topups:
            return self.crops[idx], self.labels[idx]
        mask = torch.as_tensor([bool(t) for _, t in pairs], dtype=torch.bool, device=self.device)
        return self.crops[idx], self.labels[idx], mask
