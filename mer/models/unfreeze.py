"""GradualUnfreeze: start fine-tuning with the backbone frozen, then unfreeze stages from the head down on a schedule.

Schedule entries map an epoch to how deep the trainable part reaches: `head` (classifier only), `stageN` (stage N
and everything above it), `topN` (the last N stages, whatever the backbone), `all` (stem included). Newly trainable
parameters join the running optimizer as a new parameter group at the current learning rate × `lr_factor`;
epoch-based schedulers learn about the new group.
"""

from __future__ import annotations

from collections.abc import Mapping

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BaseFinetuning
from torch.nn.modules.batchnorm import _BatchNorm

from mer.models.backbones import MERNet


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
        self.train_bn = train_bn
        self.trainable: list[str] = []
        self.history: list[tuple[int, list[str], int]] = []  # (epoch, stages added, parameters added)

    def _params(self, net: MERNet, stages: list[str]) -> list[torch.nn.Parameter]:
        named = dict(net.named_parameters())
        groups = net.stage_groups()
        return [named[n] for s in stages for n in groups[s]]

    def _set(self, net: MERNet, stages: list[str], trainable: bool) -> None:
        modules = [m for s in stages for m in net.stage_modules()[s]]
        if trainable:
            self.make_trainable(modules)
        else:
            self.freeze(modules, train_bn=self.train_bn)
        bn = {id(p) for m in modules if isinstance(m, _BatchNorm) for p in m.parameters(recurse=False)}
        # Parameters owned by non-leaf modules (e.g. ViT cls_token, pos_embed) are not covered by freeze().
        for p in self._params(net, stages):
            p.requires_grad = trainable or (self.train_bn and id(p) in bn)

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
        self._set(net, new, trainable=True)
        self.trainable = [s for s in net.stage_groups() if s in self.trainable or s in new]
        lr = optimizer.param_groups[0]["lr"] * self.lr_factor
        group = {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}
        group.update(params=params, lr=lr, initial_lr=lr)
        optimizer.add_param_group(group)
        self._extend_schedulers(pl_module.trainer, optimizer, lr)
        self.history.append((epoch, new, sum(p.numel() for p in params)))

    @staticmethod
    def _extend_schedulers(trainer: pl.Trainer, optimizer: torch.optim.Optimizer, lr: float) -> None:
        """Epoch schedulers keep per-group lists; give the new group its entry so stepping keeps working."""
        for config in trainer.lr_scheduler_configs:
            sched = config.scheduler
            if getattr(sched, "optimizer", None) is not optimizer:
                continue
            if hasattr(sched, "base_lrs"):
                sched.base_lrs.append(lr)
            if hasattr(sched, "_last_lr"):
                sched._last_lr.append(lr)
            if hasattr(sched, "min_lrs"):
                sched.min_lrs.append(sched.min_lrs[0] if sched.min_lrs else 0.0)
