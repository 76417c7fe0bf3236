"""OFF-ApexNet (Gan, Liong, Yau, Huang, Tan, Signal Processing: Image Communication 74, 2019): two CNN streams on
the onset→apex horizontal and vertical optical flow.

Input (B, 2, 28, 28): channel 0 = horizontal flow u, channel 1 = vertical flow v (`mer.face.flow.optical_flow`,
resized to 28×28). Layer sizes from the paper's architecture table (LeNet-like, "same" padding):

* two streams, one per flow component, each: 5×5 conv, 6 filters → ReLU → 2×2 max-pool /2 → 5×5 conv, 16 filters
  → ReLU → 2×2 max-pool /2 (28² → 14² → 7²) → flatten (16·7·7 = 784);
* the two streams concatenated (1,568) → fully connected 1,024 → ReLU → dropout → fully connected 1,024 → ReLU
  → dropout (rate 0.5) → fully connected → classes.

Parameters at 3 classes: convolutions 2·(156 + 2,416) = 5,144, FC1 1,568·1,024 + 1,024 = 1,606,656, FC2 1,049,600,
classifier 3,075; **2,664,475 in all** — the 2.66 M that published comparisons list for OFF-ApexNet (e.g. the
Off-TANet paper's table, PRICAI 2021); no code from the authors is public. `embed()` is the second 1,024-wide
layer (pre-logits), as timm's `pre_logits` features are for MERNet.
"""

from __future__ import annotations

import torch
from torch import nn

from mer.models.ststnet import ShallowMERNet


class _FlowStream(nn.Sequential):
    """One flow component: conv 5×5 (6) → ReLU → pool /2 → conv 5×5 (16) → ReLU → pool /2."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(1, 6, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )


class _Features(nn.Module):
    """One stream per input channel, concatenated and flattened, then the two 1,024-wide layers."""

    def __init__(self, in_chans: int, image_size: int, hidden: int, drop_rate: float) -> None:
        super().__init__()
        self.streams = nn.ModuleList(_FlowStream() for _ in range(in_chans))
        side = image_size // 4
        self.fc1 = nn.Linear(in_chans * 16 * side * side, hidden)
        self.drop1 = nn.Dropout(drop_rate)
        self.fc2 = nn.Linear(hidden, hidden)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.cat([s(x[:, i : i + 1]).flatten(1) for i, s in enumerate(self.streams)], dim=1)
        return self.act(self.fc2(self.drop1(self.act(self.fc1(z)))))


class OFFApexNet(ShallowMERNet):
    """OFF-ApexNet on (B, in_chans, image_size, image_size) flow images, one stream per channel (module docstring)."""

    backbone_name = "off_apexnet"
    HIDDEN = 1024

    def __init__(self, in_chans: int = 2, num_classes: int = 3, drop_rate: float = 0.5, image_size: int = 28) -> None:
        super().__init__(in_chans, num_classes, image_size)
        if image_size < 4:
            raise ValueError(f"OFF-ApexNet needs inputs of at least 4×4 pixels, got {image_size}")
        self.features = _Features(in_chans, image_size, self.HIDDEN, drop_rate)
        self.head_dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(self.HIDDEN, num_classes)

    def _stage_prefixes(self) -> dict[str, tuple[str, ...]]:
        n = len(self.features.streams)
        return {
            "stem": tuple(f"features.streams.{i}.0" for i in range(n)),
            "stage1": tuple(f"features.streams.{i}.3" for i in range(n)),
            "stage2": ("features.fc1", "features.fc2"),
            "head": ("classifier",),
        }
