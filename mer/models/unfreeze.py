"""GradualUnfreeze: start fine-tuning with the backbone frozen, then unfreeze stages from the head down on a schedule.

Schedule entries map an epoch to how deep the trainable part reaches: `head` (classifier only), `stageN` (stage N
and everything above it), `topN` (the last N stages, whatever the backbone), `all` (stem included). Newly trainable
parameters join the running optimizer as a new parameter group at the current learning rate × `lr_factor`;
epoch-based schedulers and the per-step `lr_decay` schedule learn about the new group.

Frozen means frozen (as Keras' `trainable=False` is usually read): a frozen BatchNorm layer runs in eval mode, i.e.
normalises with its running statistics and never updates them, until its stage is unfrozen; so the features the head
(and later the SVM) is fitted on are the ones it is evaluated on. Lightning restores each module's mode after a
validation loop, and the callback re-applies it at the start of training and of every epoch. `train_bn=True` keeps
the behaviour from before: frozen BatchNorm normalises with each batch's statistics (affine parameters and running
statistics still fixed), which is also what Keras 2.x did with a frozen BatchNormalization layer in training.
"""

from __future__ import annotations

from collections.abc import Mapping

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BaseFinetuning
from torch.nn.modules.batchnorm import _BatchNorm

from mer.models.backbones import MERNet
from mer.models.module import DecayLR


def stages_for(net: MERNet, depth: str) -> list[str]:
    """Stage names trainable at `depth`: 'head'; 'stageN' → stage N..last + head; 'topN' → the last N stages + head
    (the same schedule then fits every backbone); 'all' (stem included)."""
    order = list(net.stage_groups())  # stem, stage1..stageK, head
    k = len(order) - 2
    if depth == "all":
        return order
    if depth == "head":
        return ["head"]
    if depth.startswith("top"):
        n = int(depth.removeprefix("top"))
        if not 1 <= n <= k:
            raise ValueError(f"unfreeze schedule names {depth}, but {net.backbone_name} has {k} stages")
        return order[-(n + 1) :]
    n = int(depth.removeprefix("stage"))
    if not 1 <= n <= k:
        raise ValueError(f"unfreeze schedule names {depth}, but {net.backbone_name} has stage1..stage{k}")
    return order[n:]


class GradualUnfreeze(BaseFinetuning):
    """Lightning fine-tuning callback driven by an `{epoch: depth}` schedule (see module docstring)."""

    def __init__(self, schedule: Mapping[int, str], lr_factor: float = 1.0, train_bn: bool = False) -> None:
        super().__init__()
        self.schedule = {int(k): v for k, v in sorted(schedule.items())}
        self.lr_factor = lr_factor
        self.train_bn = train_bn  # True: frozen BatchNorm uses batch statistics (the behaviour before issue #13)
        self.trainable: list[str] = []
        self.history: list[tuple[int, list[str], int]] = []  # (epoch, stages added, parameters added)
        self.frozen_bn: list[_BatchNorm] = []  # held in eval mode while their stage is frozen

    def _params(self, net: MERNet, stages: list[str]) -> list[torch.nn.Parameter]:
        named = dict(net.named_parameters())
        groups = net.stage_groups()
        return [named[n] for s in stages for n in groups[s]]

    def _set(self, net: MERNet, stages: list[str], trainable: bool, training: bool = True) -> None:
        modules = [m for s in stages for m in net.stage_modules()[s]]
        norms = [m for m in modules if isinstance(m, _BatchNorm)]
        if trainable:
            self.make_trainable(modules)
            self.frozen_bn = [m for m in self.frozen_bn if all(m is not n for n in norms)]
            for m in norms:
                m.train(training)
        elif self.train_bn:
            self.freeze(modules, train_bn=False)  # batch statistics in training, nothing updated
        else:
            self.freeze([m for m in modules if not isinstance(m, _BatchNorm)], train_bn=False)
            for m in norms:
                for p in m.parameters(recurse=False):
                    p.requires_grad = False
                if all(m is not n for n in self.frozen_bn):
                    self.frozen_bn.append(m)
        # Parameters owned by non-leaf modules (e.g. ViT cls_token, pos_embed) are not covered by freeze().
        for p in self._params(net, stages):
            p.requires_grad = trainable

    def hold_frozen_bn(self) -> None:
        """Put the frozen BatchNorm layers (back) in eval mode; `module.train()` would have switched them on."""
        for m in self.frozen_bn:
            m.eval()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Frozen BatchNorm in eval mode from the first batch (set here, after Lightning's check that warns about
        modules in eval mode when fitting starts)."""
        self.hold_frozen_bn()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Unfreeze what the schedule says for this epoch, then re-apply eval mode to what stays frozen."""
        super().on_train_epoch_start(trainer, pl_module)
        self.hold_frozen_bn()

    def freeze_before_training(self, pl_module: pl.LightningModule) -> None:
        net: MERNet = pl_module.net
        start = stages_for(net, self.schedule.get(0, "head"))
        frozen = [s for s in net.stage_groups() if s not in start]
        self._set(net, frozen, trainable=False)
        self._set(net, start, trainable=True)
        self.trainable = start

    def finetune_function(self, pl_module: pl.LightningModule, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        if epoch == 0 or epoch not in self.schedule:
            return
        net: MERNet = pl_module.net
        new = [s for s in stages_for(net, self.schedule[epoch]) if s not in self.trainable]
        if not new:
            return
        params = [p for p in self._params(net, new) if not p.requires_grad]
        self._set(net, new, trainable=True, training=pl_module.training)
        self.trainable = [s for s in net.stage_groups() if s in self.trainable or s in new]
        lr = optimizer.param_groups[0]["lr"] * self.lr_factor
        group = {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}
        group.update(params=params, lr=lr, initial_lr=lr)
        optimizer.add_param_group(group)
        self._extend_schedulers(pl_module.trainer, optimizer, lr, self.lr_factor)
        self.history.append((epoch, new, sum(p.numel() for p in params)))

    @staticmethod
    def _extend_schedulers(
        trainer: pl.Trainer, optimizer: torch.optim.Optimizer, lr: float, lr_factor: float = 1.0
    ) -> None:
        """Schedulers keep per-group lists; give the new group its entry so stepping keeps working.

        The per-step `DecayLR` recomputes every group's rate from its base rate, so the new group gets the first
        group's base × `lr_factor` (not the already-decayed current rate, which would be decayed twice)."""
        for config in trainer.lr_scheduler_configs:
            sched = config.scheduler
            if getattr(sched, "optimizer", None) is not optimizer:
                continue
            if isinstance(sched, DecayLR):
                sched.base_lrs.append(sched.base_lrs[0] * lr_factor)
                sched.lr_lambdas.append(sched.lr_lambdas[0])
                sched._last_lr.append(lr)
                continue
            if hasattr(sched, "base_lrs"):
                sched.base_lrs.append(lr)
            if hasattr(sched, "_last_lr"):
                sched._last_lr.append(lr)
            if hasattr(sched, "min_lrs"):
                sched.min_lrs.append(sched.min_lrs[0] if sched.min_lrs else 0.0)
