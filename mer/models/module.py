"""MERModule: the LightningModule around a `MERNet`: loss with the paper's L2 penalty, optimizers, MEGC-style metrics.

Three separate settings, each honoured whenever it is non-zero (the config refuses one whose regulariser is off):
`l2` is the paper's Keras kernel regulariser, a penalty `l2 · Σ w²` over conv and linear kernels (not biases, not
norm layers) added to the loss; `weight_decay` is decoupled (AdamW-style) decay in the optimizer; `lr_decay` is
Keras 2.2.4's optimizer `decay`, the learning rate divided by (1 + lr_decay · optimizer steps).

Training and validation accuracy / UAR / UF1 are MEGC scores of the epoch's pooled predictions: a torchmetrics
confusion matrix over the epoch, scored with the report's `mer.scoring.confusion_metrics`, so a class absent from
the validation subjects is left out of UF1 and UAR there too, and checkpointing / early stopping select on the
headline metric. Losses are torchmetrics `MeanMetric`s over the epoch's samples.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from functools import partial
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.aggregation import MeanMetric
from torchmetrics.classification import MulticlassConfusionMatrix

from mer.config import REGULARISERS, ModelConfig, StageConfig
from mer.errors import MerError
from mer.models.backbones import build_net
from mer.scoring import confusion_metrics

STEP_GAMMA = 0.1  # scheduler 'step': the rate is multiplied by this every third of the epochs


def l2_kernels(net: nn.Module) -> list[torch.Tensor]:
    """Weights of every Conv and Linear layer (the kernels Keras' kernel_regularizer would cover)."""
    return [m.weight for m in net.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]


def l2_penalty(net: nn.Module) -> torch.Tensor:
    """Σ w² over conv + linear kernels."""
    return torch.stack([w.pow(2).sum() for w in l2_kernels(net)]).sum()


def step_size(epochs: int) -> int:
    """Epochs between the 'step' scheduler's reductions (a third of the stage)."""
    return max(1, epochs // 3)


def lr_factor(
    step: int, lr_decay: float, scheduler: str = "none", epochs: int = 1, batches_per_epoch: int = 1
) -> float:
    """Multiplier of the base learning rate after `step` optimizer steps: the epoch scheduler's closed form (cosine
    to 0 over `epochs`, or ×0.1 every third) times Keras' inverse-time decay 1 / (1 + lr_decay · step)."""
    epoch = step // max(1, batches_per_epoch)
    if scheduler == "cosine":
        by_epoch = 0.5 * (1.0 + math.cos(math.pi * epoch / max(1, epochs)))
    elif scheduler == "step":
        by_epoch = STEP_GAMMA ** (epoch // step_size(epochs))
    elif scheduler == "none":
        by_epoch = 1.0
    else:
        raise MerError(f"lr_decay cannot be combined with scheduler '{scheduler}' (use none, cosine or step)")
    return by_epoch / (1.0 + lr_decay * step)


class DecayLR(torch.optim.lr_scheduler.LambdaLR):
    """Per-step LambdaLR for `lr_decay` (with the epoch scheduler folded in, see `lr_factor`); a class of its own so
    that `GradualUnfreeze` can give a new parameter group its base rate."""


class PooledScores(MulticlassConfusionMatrix):
    """An epoch's predictions pooled into one confusion matrix (torchmetrics: kept on the device, summed across
    processes), scored at its end with the report's MEGC formula `mer.scoring.confusion_metrics`, not a per-batch
    mean. torchmetrics' own macro F1 / recall are not used: they count a class that was predicted but has no
    ground-truth sample as 0, where MEGC (and the report) leave it out of UF1 and UAR."""

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes=num_classes, validate_args=False)  # validation would sync the device per batch

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:  # type: ignore[override]
        """Add a batch (logits (N, C) and labels (N,))."""
        super().update(logits.detach().argmax(-1), y.detach())

    def scores(self, prefix: str) -> dict[str, float]:
        """{prefix+'acc', 'uar', 'uf1'} of everything added since the last reset (empty when nothing was)."""
        if not self.update_called:
            return {}
        accuracy, uar, uf1 = confusion_metrics(self.compute().cpu().numpy())
        return {f"{prefix}acc": float(accuracy), f"{prefix}uar": float(uar), f"{prefix}uf1": float(uf1)}


class SampleMean(MeanMetric):
    """torchmetrics' `MeanMetric` fed a batch's mean and its sample count: the per-sample mean over an epoch (what
    `self.log(..., on_epoch=True, batch_size=n)` logs), summed on the device, no NaN check (it would wait for the
    device every batch). `MeanMetric.update(value, weight=n)` cannot do this without that check: torchmetrics (1.9)
    replaces the weights by ones under `nan_strategy='disable'`."""

    def __init__(self) -> None:
        super().__init__(nan_strategy="disable")

    def update(self, value: torch.Tensor, n: int) -> None:  # type: ignore[override]
        """Add a batch's mean `value` over its `n` samples."""
        self.mean_value += value.detach().to(self.mean_value.dtype) * n
        self.weight += n


def epoch_means(*names: str) -> nn.ModuleDict:
    """One `SampleMean` per name, logged once at the epoch's end (`log_means`): Lightning's per-call logging costs
    ~2 ms a value, ~1 % of a demo pre-training on a CPU."""
    return nn.ModuleDict({name: SampleMean() for name in names})


def log_means(module: pl.LightningModule, prefix: str, means: nn.ModuleDict, **kwargs: Any) -> None:
    """Log every mean that was updated this epoch as `prefix/name`, then reset them all."""
    for name, metric in means.items():
        if metric.update_called:
            module.log(f"{prefix}/{name}", metric.compute(), **kwargs.get(name, {}))
        metric.reset()


class MERModule(pl.LightningModule):
    """Trains a MERNet on one stage's config; `embed()`/`predict_step` give the features the SVM uses."""

    def __init__(
        self, model: dict[str, Any], stage: dict[str, Any], image_size: int = 256, channels_last: bool = False
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model_cfg = ModelConfig(**model)
        self.stage_cfg = StageConfig(**stage)
        self.net = build_net(
            self.model_cfg.backbone,
            self.model_cfg.in_chans,
            self.model_cfg.num_classes,
            self.model_cfg.drop_rate,
            image_size,
        )
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        n = self.model_cfg.num_classes
        self.train_metrics = PooledScores(n)
        self.val_metrics = PooledScores(n)
        self.train_means = epoch_means("ce", "loss", "l2")
        self.val_means = epoch_means("loss")

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
        if self.stage_cfg.regularization in REGULARISERS["l2"] and self.stage_cfg.l2 > 0:
            penalty = l2_penalty(self.net)
            loss = ce + self.stage_cfg.l2 * penalty
            self.train_means["l2"].update(penalty, len(y))
        self.train_metrics.update(logits, y)
        self.train_means["ce"].update(ce, len(y))
        self.train_means["loss"].update(loss, len(y))
        return loss

    def on_train_epoch_end(self) -> None:
        log_means(self, "train", self.train_means, ce={"prog_bar": True})
        self.log_dict(self.train_metrics.scores("train/"))
        self.train_metrics.reset()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self.net(self._prep(x))
        self.val_metrics.update(logits, y)
        self.val_means["loss"].update(F.cross_entropy(logits, y), len(y))

    def on_validation_epoch_end(self) -> None:
        log_means(self, "val", self.val_means)
        self.log_dict(self.val_metrics.scores("val/"), prog_bar=True)
        self.val_metrics.reset()

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        logits, emb = self.net.forward_both(self._prep(x))
        return {"logits": logits, "probs": logits.softmax(-1), "embeddings": emb}

    def configure_optimizers(self) -> Any:
        """The stage's optimizer (SGD's weight_decay is torch's, which equals decoupled decay only without momentum)
        and its schedule: the epoch scheduler, or with `lr_decay` one per-step DecayLR that includes it."""
        s = self.stage_cfg
        params = [p for p in self.parameters() if p.requires_grad]
        decay = s.weight_decay if s.regularization in REGULARISERS["weight_decay"] else 0.0
        # foreach: one multi-tensor update instead of a Python loop over ~300 tensors; torch picks it by itself only
        # on CUDA. Same arithmetic per tensor, bit-identical weights (tests/test_training.py), ~9 % of a CPU step less.
        if s.optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=s.lr, momentum=s.momentum, weight_decay=decay, foreach=True
            )
        elif s.optimizer == "adam" and decay == 0:
            opt = torch.optim.Adam(params, lr=s.lr, foreach=True)
        else:  # adamw, or adam with decoupled decay (Adam's own weight_decay would be coupled L2)
            opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=decay, foreach=True)
        if s.lr_decay > 0:  # one per-step schedule: Keras' inverse-time decay times the epoch scheduler's shape
            batches = self._steps_per_epoch() if s.scheduler != "none" else 1
            fn = partial(
                lr_factor, lr_decay=s.lr_decay, scheduler=s.scheduler, epochs=s.epochs, batches_per_epoch=batches
            )
            return {"optimizer": opt, "lr_scheduler": {"scheduler": DecayLR(opt, fn), "interval": "step"}}
        if s.scheduler == "none":
            return opt
        if s.scheduler == "cosine":
            sched: Any = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, s.epochs))
        elif s.scheduler == "step":
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step_size(s.epochs), gamma=STEP_GAMMA)
        else:
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "train/loss"}}
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    def _steps_per_epoch(self) -> int:
        """Optimizer steps per epoch of the attached Trainer (limit_batches and accumulation included)."""
        if self._trainer is None:
            raise MerError("lr_decay with an epoch scheduler needs the module attached to a Trainer")
        epochs = max(1, self.trainer.max_epochs or 1)
        return max(1, round(self.trainer.estimated_stepping_batches / epochs))
