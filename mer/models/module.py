"""MERModule: the LightningModule around a `MERNet`: loss with the paper's L2 penalty, optimizers, MEGC-style metrics.

Regularisation follows the paper's Keras set-up: an explicit L2 penalty `l2 · Σ w²` over conv and linear kernels
(not biases, not norm layers) added to the loss, or, by config, decoupled weight decay in the optimizer.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassRecall

from mer.config import ModelConfig, StageConfig
from mer.models.backbones import MERNet


def l2_kernels(net: nn.Module) -> list[torch.Tensor]:
    """Weights of every Conv and Linear layer (the kernels Keras' kernel_regularizer would cover)."""
    return [m.weight for m in net.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]


def l2_penalty(net: nn.Module) -> torch.Tensor:
    """Σ w² over conv + linear kernels."""
    return torch.stack([w.pow(2).sum() for w in l2_kernels(net)]).sum()


def _metrics(num_classes: int, prefix: str) -> MetricCollection:
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "uar": MulticlassRecall(num_classes, average="macro"),
            "uf1": MulticlassF1Score(num_classes, average="macro"),
        },
        prefix=prefix,
    )


class MERModule(pl.LightningModule):
    """Trains a MERNet on one stage's config; `embed()`/`predict_step` give the features the SVM uses."""

    def __init__(
        self, model: dict[str, Any], stage: dict[str, Any], image_size: int = 256, channels_last: bool = False
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model_cfg = ModelConfig(**model)
        self.stage_cfg = StageConfig(**stage)
        self.net = MERNet(
            self.model_cfg.backbone,
            self.model_cfg.in_chans,
            self.model_cfg.num_classes,
            self.model_cfg.drop_rate,
            image_size,
        )
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        n = self.model_cfg.num_classes
        self.train_metrics = _metrics(n, "train/")
        self.val_metrics = _metrics(n, "val/")

    @classmethod
    def from_config(
        cls, model: ModelConfig, stage: StageConfig, image_size: int, channels_last: bool = False
    ) -> MERModule:
        """Build from the typed config (hyper-parameters are stored as plain dicts in checkpoints)."""
        return cls(asdict(model), asdict(stage), image_size, channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits."""
        return self.net(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled pre-logits features for the SVM."""
        return self.net.embed(x)

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else x

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self.net(self._prep(x))
        ce = F.cross_entropy(logits, y)
        loss = ce
        if self.stage_cfg.regularization == "l2" and self.stage_cfg.l2 > 0:
            penalty = l2_penalty(self.net)
            loss = ce + self.stage_cfg.l2 * penalty
            self.log("train/l2", penalty, on_step=False, on_epoch=True)
        self.train_metrics.update(logits.detach(), y)
        self.log("train/ce", ce, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def on_train_epoch_end(self) -> None:
        self.log_dict(self.train_metrics.compute())
        self.train_metrics.reset()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self.net(self._prep(x))
        self.val_metrics.update(logits, y)
        self.log("val/loss", F.cross_entropy(logits, y), on_step=False, on_epoch=True, batch_size=len(y))

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), prog_bar=True)
        self.val_metrics.reset()

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        logits, emb = self.net.forward_both(self._prep(x))
        return {"logits": logits, "probs": logits.softmax(-1), "embeddings": emb}

    def configure_optimizers(self) -> Any:
        s = self.stage_cfg
        params = [p for p in self.parameters() if p.requires_grad]
        decay = s.weight_decay if s.regularization == "decoupled" else 0.0
        if s.optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=decay)
        elif s.optimizer == "adam" and decay == 0:
            opt = torch.optim.Adam(params, lr=s.lr)
        else:  # adamw, or adam with decoupled decay (Adam's own weight_decay would be coupled L2)
            opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=decay)
        if s.scheduler == "none":
            return opt
        if s.scheduler == "cosine":
            sched: Any = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, s.epochs))
        elif s.scheduler == "step":
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, s.epochs // 3), gamma=0.1)
        else:
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "train/loss"}}
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
