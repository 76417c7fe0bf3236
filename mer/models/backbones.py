"""Networks from timm with one interface: `forward` (logits), `embed` (pooled pre-logits features), stage groups.

No registry of our own: the backbone name is timm's model name. Weights come only from local files, loaded with
`weights_only=True`; nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
import torch
from timm.models import group_parameters
from torch import nn

from mer.config import BACKBONES, FEATURE_BACKBONES, ModelConfig
from mer.errors import MerError
from mer.models.off_apexnet import OFFApexNet
from mer.models.stages import owning_modules
from mer.models.ststnet import ShallowMERNet, STSTNet

# Backbones that need the input size at construction (position embeddings).
_NEEDS_IMG_SIZE = ("deit_", "vit_")


class MERNet(nn.Module):
    """A timm classifier with `embed()` for the SVM and named parameter groups (stem, stage1..N, head) to unfreeze."""

    def __init__(
        self,
        backbone: str = "mobilevit_s",
        in_chans: int = 1,
        num_classes: int = 3,
        drop_rate: float = 0.5,
        image_size: int = 256,
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise MerError(f"unknown backbone '{backbone}'; choose one of: {', '.join(BACKBONES)}")
        kwargs: dict[str, Any] = {"in_chans": in_chans, "num_classes": num_classes, "drop_rate": drop_rate}
        if backbone.startswith(_NEEDS_IMG_SIZE):
            kwargs["img_size"] = image_size
        self.backbone_name = backbone
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.image_size = image_size
        self.model = timm.create_model(backbone, pretrained=False, **kwargs)

    @property
    def embed_dim(self) -> int:
        """Length of the vector `embed()` returns."""
        return int(self.model.num_features if not hasattr(self.model, "head_hidden_size") else
                   self.model.head_hidden_size)  # fmt: skip

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled pre-logits features (B, embed_dim): what the SVM is trained on."""
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes)."""
        return self.model(x)

    def forward_both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, embeddings) in one pass."""
        emb = self.embed(x)
        return self.model.get_classifier()(emb), emb

    def stage_groups(self) -> dict[str, list[str]]:
        """Parameter names per stage, input to output: 'stem', 'stage1'..'stageN', 'head' (timm's coarse groups)."""
        groups = group_parameters(self.model, self.model.group_matcher(coarse=True))
        ordered = [groups[k] for k in sorted(groups)]
        named: dict[str, list[str]] = {"stem": ordered[0]}
        for i, names in enumerate(ordered[1:-1], start=1):
            named[f"stage{i}"] = names
        named["head"] = ordered[-1]
        return {k: [f"model.{n}" for n in v] for k, v in named.items()}

    def classifier_keys(self) -> list[str]:
        """State-dict keys of the final classifier layer (the part whose shape depends on the class count)."""
        classifier = self.model.get_classifier()
        return [f"{n}" for n, _ in self.named_parameters() if any(p is _ for p in classifier.parameters())]

    def stage_modules(self) -> dict[str, list[nn.Module]]:
        """The leaf modules owning each stage's parameters (for freezing BatchNorm statistics too)."""
        return owning_modules(self, self.stage_groups())


FLOW_NETS: dict[str, type[ShallowMERNet]] = {"ststnet": STSTNet, "off_apexnet": OFFApexNet}
Net = MERNet | ShallowMERNet  # what every network of mer is: same interface (forward, embed, stage groups, ...)


def build_net(
    backbone: str, in_chans: int = 1, num_classes: int = 3, drop_rate: float = 0.5, image_size: int = 256
) -> Net:
    """A timm backbone (`MERNet`) or one of the small flow networks (STSTNet, OFF-ApexNet) by name."""
    if backbone in FLOW_NETS:
        return FLOW_NETS[backbone](in_chans=in_chans, num_classes=num_classes, drop_rate=drop_rate,
                                   image_size=image_size)  # fmt: skip
    if backbone in FEATURE_BACKBONES:
        raise MerError(f"model.backbone={backbone} has no network (its features go straight into the SVM)")
    return MERNet(backbone, in_chans, num_classes, drop_rate, image_size)


def build_model(cfg: ModelConfig, image_size: int = 256) -> Net:
    """The network a config asks for; loads `cfg.weights` (a local file) if set."""
    net = build_net(cfg.backbone, cfg.in_chans, cfg.num_classes, cfg.drop_rate, image_size)
    if cfg.weights:
        load_weights(net, cfg.weights, strict=True)
    return net


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def save_weights(net: Net, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Save the network's weights plus what is needed to rebuild it (backbone, channels, classes, size)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "state_dict": net.state_dict(),
        "meta": {
            "backbone": net.backbone_name,
            "in_chans": net.in_chans,
            "num_classes": net.num_classes,
            "image_size": net.image_size,
            **(extra or {}),
        },
    }
    torch.save(payload, path)
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, meta) from a file written by `save_weights` or a Lightning checkpoint of `MERModule`."""
    path = Path(path)
    if not path.is_file():
        raise MerError(f"checkpoint not found: {path} (give the path of a .ckpt/.pt file written by mer pretrain/loso)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one user error
        raise MerError(f"{path}: not a readable PyTorch checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise MerError(f"{path}: no 'state_dict' inside; expected a checkpoint written by mer")
    state = payload["state_dict"]
    meta = dict(payload.get("meta") or {})
    hp = payload.get("hyper_parameters") or {}
    if not meta and hp:  # Lightning checkpoint of MERModule
        model_hp = hp.get("model", {})
        meta = {
            "backbone": model_hp.get("backbone"),
            "in_chans": model_hp.get("in_chans"),
            "num_classes": model_hp.get("num_classes"),
            "image_size": hp.get("image_size"),
        }
    # Lightning prefixes the network's keys with the attribute name ("net.").
    if any(k.startswith("net.") for k in state):
        state = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
    return state, meta


def load_weights(net: Net, path: str | Path, strict: bool = True, skip_head: bool = False) -> list[str]:
    """Load a checkpoint into `net`; checks backbone and shapes first and says what differs. Returns skipped keys."""
    state, meta = read_checkpoint(path)
    if meta.get("backbone") and meta["backbone"] != net.backbone_name:
        raise MerError(
            f"{path}: checkpoint is a {meta['backbone']} but the config builds a {net.backbone_name} "
            f"(set model.backbone={meta['backbone']} or use a matching checkpoint)"
        )
    if meta.get("in_chans") and meta["in_chans"] != net.in_chans:
        raise MerError(f"{path}: checkpoint has {meta['in_chans']} input channels, the model {net.in_chans}")
    head = set(net.classifier_keys())
    own = net.state_dict()
    skipped: list[str] = []
    if skip_head:
        skipped = [k for k in state if k in head]
        state = {k: v for k, v in state.items() if k not in head}
    elif meta.get("num_classes") and meta["num_classes"] != net.num_classes:
        raise MerError(
            f"{path}: checkpoint has {meta['num_classes']} classes, the model {net.num_classes} "
            "(fine-tuning loads it without the head; for prediction set model.num_classes to match)"
        )
    bad = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if bad:
        raise MerError(f"{path}: {len(bad)} weights have other shapes than the model (first: {bad[0]})")
    missing = [k for k in own if k not in state and not (skip_head and k in head)]
    unexpected = [k for k in state if k not in own]
    if strict and (missing or unexpected):
        raise MerError(
            f"{path}: checkpoint does not fit the model ({len(missing)} missing, {len(unexpected)} unexpected keys; "
            f"first: {(missing or unexpected)[0]})"
        )
    net.load_state_dict(state, strict=False)
    return skipped
