"""STSTNet (Liong, Gan, See, Khor, Huang, FG 2019): a shallow triple-stream CNN on onset→apex optical flow.

Input (B, 3, 28, 28): horizontal flow u, vertical flow v and optical strain (`mer.face.flow.flow_strain`, resized to
28×28). Layer sizes as in the authors' released PyTorch code (christy1206/STSTNet, main.py; the repository's
configuration figure and MATLAB network file describe the same two-layer design):

* three parallel streams on all 3 input channels, each: 3×3 conv (padding 2) with 3, 5 and 8 filters
  → ReLU → BatchNorm → 3×3 max-pool, stride 3, padding 1 → dropout 0.5  (28² → 30² → 10²);
* the streams concatenated (16 channels) → 2×2 average pool, stride 2 (10² → 5²) → flatten (400)
  → fully connected 400 → classes.

Parameters at 3 classes: convolutions 84 + 140 + 224 = 448, BatchNorm 2·16 = 32, classifier 400·3 + 3 = 1,203;
**1,683 in all** (counted from the authors' code; the paper calls the network "computationally light" and does not
tabulate a total). Authors' training: Adam, lr 5e-5, batch 256, 800 epochs, LOSO on the MEGC2019 composite set.

`ShallowMERNet` is the small base class both flow networks share: the `mer.models.backbones.MERNet` interface that
training, the SVM and unfreezing use (`forward`, `embed`, `embed_dim`, `forward_both`, `num_classes`, `in_chans`,
`image_size`, `backbone_name`, `stage_groups`, `stage_modules`, `classifier_keys`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from mer.models.stages import owning_modules


class ShallowMERNet(nn.Module, ABC):
    """Base of the small flow networks: subclasses build `features` (→ embedding) and `classifier` (→ logits)."""

    backbone_name = "shallow"
    features: nn.Module
    classifier: nn.Linear
    head_dropout: nn.Module

    def __init__(self, in_chans: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.image_size = image_size

    def _feature_count(self) -> int:
        """Length of the flattened features for this input size (one dummy forward pass, no gradients)."""
        with torch.no_grad():
            was = self.training
            self.eval()
            n = self.embed(torch.zeros(1, self.in_chans, self.image_size, self.image_size)).shape[1]
            self.train(was)
        return int(n)

    @property
    def embed_dim(self) -> int:
        """Length of the vector `embed()` returns."""
        return int(self.classifier.in_features)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-logits features (B, embed_dim): what the SVM is trained on."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes)."""
        return self.classifier(self.head_dropout(self.embed(x)))

    def forward_both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, embeddings) in one pass."""
        emb = self.embed(x)
        return self.classifier(self.head_dropout(emb)), emb

    @abstractmethod
    def _stage_prefixes(self) -> dict[str, tuple[str, ...]]:
        """Module-name prefixes of each stage, input to output: 'stem', 'stage1'.., 'head' (each network's own)."""

    def stage_groups(self) -> dict[str, list[str]]:
        """Parameter names per stage, input to output ('stem', 'stage1'..'stageN', 'head'), as MERNet gives them."""
        prefixes = self._stage_prefixes()
        groups: dict[str, list[str]] = {k: [] for k in prefixes}
        for name, _ in self.named_parameters():
            stage = next((k for k, ps in prefixes.items() if any(name.startswith(p + ".") for p in ps)), None)
            if stage is None:
                raise RuntimeError(f"{self.backbone_name}: parameter {name} belongs to no stage")
            groups[stage].append(name)
        return groups

    def stage_modules(self) -> dict[str, list[nn.Module]]:
        """The leaf modules owning each stage's parameters (for freezing BatchNorm statistics too)."""
        return owning_modules(self, self.stage_groups())

    def classifier_keys(self) -> list[str]:
        """State-dict keys of the final classifier layer (the part whose shape depends on the class count)."""
        return [f"classifier.{n}" for n, _ in self.classifier.named_parameters()]


class _Stream(nn.Sequential):
    """conv 3×3 (padding 2) → ReLU → BatchNorm → max-pool 3×3/3 (padding 1) → dropout, as in the authors' code."""

    def __init__(self, in_chans: int, width: int, drop_rate: float) -> None:
        super().__init__(
            nn.Conv2d(in_chans, width, kernel_size=3, padding=2),
            nn.ReLU(),
            nn.BatchNorm2d(width),
            nn.MaxPool2d(kernel_size=3, stride=3, padding=1),
            nn.Dropout(drop_rate),
        )


class _Streams(nn.Module):
    """The three parallel streams, concatenated, average-pooled 2×2 and flattened."""

    def __init__(self, in_chans: int, widths: tuple[int, ...], drop_rate: float) -> None:
        super().__init__()
        self.streams = nn.ModuleList(_Stream(in_chans, w, drop_rate) for w in widths)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.cat([s(x) for s in self.streams], dim=1)).flatten(1)


class STSTNet(ShallowMERNet):
    """STSTNet on (B, in_chans, image_size, image_size) u, v, strain images (see the module docstring)."""

    backbone_name = "ststnet"
    WIDTHS = (3, 5, 8)

    def __init__(self, in_chans: int = 3, num_classes: int = 3, drop_rate: float = 0.5, image_size: int = 28) -> None:
        super().__init__(in_chans, num_classes, image_size)
        self.features = _Streams(in_chans, self.WIDTHS, drop_rate)
        self.head_dropout = nn.Identity()  # the authors' network has no dropout between features and classifier
        self.classifier = nn.Linear(self._feature_count(), num_classes)

    def _stage_prefixes(self) -> dict[str, tuple[str, ...]]:
        # one convolution deep: the streams are the whole feature extractor
        return {"stem": ("features",), "head": ("classifier",)}
