"""Training: balanced sampler, augmentation bounds, L2 penalty, gradual unfreezing, learning, checkpoint hand-off."""

from __future__ import annotations

from collections import Counter

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch import nn

from mer.config import AugmentConfig
from mer.data.datamodule import BalancedSampler, MERDataModule
from mer.data.transforms import normalize, train_transform
from mer.models.backbones import MERNet, load_weights
from mer.models.module import MERModule, l2_penalty
from mer.models.unfreeze import stages_for
from mer.train import train_stage
from tests.helpers import make_prepared, tiny_config


def test_balanced_sampler_equal_class_counts_every_epoch():
    labels = [0] * 10 + [1] * 3 + [2] * 5
    sampler = BalancedSampler(labels, seed=1)
    seen = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        idx = [i for i, _ in sampler]
        counts = Counter(labels[i] for i in idx)
        assert counts == {0: 10, 1: 10, 2: 10}
        assert len(idx) == len(sampler) == 30
        assert set(i for i in idx if labels[i] == 0) == set(range(10))  # the majority class appears once each
        seen.append(idx)
    assert seen[0] != seen[1]  # reshuffled per epoch
    sampler.set_epoch(0)
    assert [i for i, _ in sampler] == seen[0]  # reproducible


def test_augmentation_keeps_shape_dtype_and_bounds_shift():
    cfg = AugmentConfig(max_shift=3, hflip=False, jitter_p=0.0)
    tf = train_transform(cfg, seed=0)
    img = np.zeros((32, 32), np.uint8)
    img[16, 16] = 255
    moved = set()
    for _ in range(40):
        out = tf(image=img)["image"]
        assert out.shape == img.shape and out.dtype == np.uint8
        ys, xs = np.nonzero(out == 255)
        assert len(ys) >= 1
        dy, dx = abs(int(ys[0]) - 16), abs(int(xs[0]) - 16)
        assert dy <= 3 and dx <= 3
        moved.add((dy, dx))
    assert len(moved) > 1  # it does shift


def test_normalize_range_and_shape():
    x = normalize(np.array([[0, 255]], np.uint8))
    assert x.shape == (1, 1, 1, 2)
    assert torch.allclose(x.flatten(), torch.tensor([-1.0, 1.0]))


def test_l2_penalty_matches_hand_computation():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.LazyLinear(3))
    net(torch.zeros(1, 1, 5, 5))
    conv, bn, lin = net[0], net[1], net[3]
    with torch.no_grad():
        bn.weight.fill_(7.0)  # norm layers and biases are not penalised
    expected = (conv.weight**2).sum() + (lin.weight**2).sum()
    assert torch.allclose(l2_penalty(net), expected)


def test_stage_depths_are_cumulative_top_down():
    net = MERNet("mobilevit_xxs", image_size=64)
    assert stages_for(net, "head") == ["head"]
    assert stages_for(net, "stage4") == ["stage4", "stage5", "head"]
    assert stages_for(net, "top2") == ["stage4", "stage5", "head"]
    assert stages_for(MERNet("resnet18", image_size=64), "top1") == ["stage4", "head"]
    assert stages_for(net, "all")[0] == "stem"
    with pytest.raises(ValueError):
        stages_for(net, "stage9")


class _Recorder(pl.Callback):
    def __init__(self):
        self.trainable: dict[int, int] = {}
        self.groups: dict[int, int] = {}

    def on_train_epoch_end(self, trainer, pl_module):
        e = trainer.current_epoch
        self.trainable[e] = sum(p.numel() for p in pl_module.net.parameters() if p.requires_grad)
        self.groups[e] = len(trainer.optimizers[0].param_groups)


@pytest.mark.parametrize("scheduler", ["none", "cosine", "step", "plateau"])
def test_gradual_unfreeze_follows_schedule(prepared, tmp_path, scheduler):
    cfg = tiny_config(
        "train.finetune.epochs=4",
        "train.finetune.unfreeze={0: head, 1: stage5, 3: all}",
        f"train.finetune.scheduler={scheduler}",
        "train.finetune.limit_batches=2",
    )
    rec = _Recorder()
    res = train_stage(cfg, prepared, "finetune", tmp_path / "ft", held_out=["casme2/s0"], callbacks=[rec])
    net = res.module.net
    groups = net.stage_groups()
    named = dict(net.named_parameters())
    size = {s: sum(named[n].numel() for n in groups[s]) for s in groups}
    assert rec.trainable[0] == size["head"]
    assert rec.trainable[1] == rec.trainable[2] == size["head"] + size["stage5"]
    assert rec.trainable[3] == sum(size.values())
    assert rec.groups == {0: 1, 1: 2, 2: 2, 3: 3}


def test_module_learns_tiny_batch():
    pl.seed_everything(0)
    module = MERModule.from_config(tiny_config().model, tiny_config().train.pretrain, 64)
    module.stage_cfg.regularization = "none"
    x = torch.randn(6, 1, 64, 64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    opt = torch.optim.Adam(module.parameters(), lr=3e-3)
    module.train()
    module.net.model.head.drop.p = 0.0
    first = None
    for _ in range(60):
        loss = nn.functional.cross_entropy(module(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 0.9 and loss.item() < 0.05


def test_pretrain_to_finetune_handoff_loads_every_backbone_weight(prepared, tmp_path):
    cfg = tiny_config("train.pretrain.epochs=1", "train.pretrain.limit_batches=2")
    res = train_stage(cfg, prepared, "pretrain", tmp_path / "pre")
    from mer.models.backbones import save_weights

    path = save_weights(res.module.net, tmp_path / "pre.pt")
    fresh = MERNet("mobilevit_xxs", num_classes=3, image_size=64)
    skipped = load_weights(fresh, path, skip_head=True)
    assert skipped == fresh.classifier_keys()
    src, dst = res.module.net.state_dict(), fresh.state_dict()
    for k in dst:
        if k not in skipped:
            assert torch.equal(src[k], dst[k]), k
    # a different class count is fine for fine-tuning (head skipped), an error for strict loading
    other = MERNet("mobilevit_xxs", num_classes=5, image_size=64)
    load_weights(other, path, skip_head=True)
    from mer.errors import MerError

    with pytest.raises(MerError, match="classes"):
        load_weights(other, path)
    with pytest.raises(MerError, match="mobilevit_xxs"):
        load_weights(MERNet("resnet18", image_size=64), path, skip_head=True)


def test_datamodule_never_leaks_held_out(prepared):
    cfg = tiny_config("train.finetune.val_subjects=0.3")
    for held in sorted(prepared.loc[prepared.kind == "micro", "subject"].unique()):
        dm = MERDataModule(prepared, cfg, "finetune", held_out=[held])
        assert set(dm.test_df.subject) == {held}
        assert held not in set(dm.train_df.subject) | set(dm.val_df.subject)
        assert len(dm.val_df) > 0 and not set(dm.val_df.subject) & set(dm.train_df.subject)
        assert set(dm.train_df.kind) == {"micro"}


def test_datamodule_rejects_single_class(tmp_path):
    from mer.errors import DataError

    df = make_prepared(tmp_path, {"casme2/a": "micro", "casme2/b": "micro"})
    df = df[df.label == "negative"]
    with pytest.raises(DataError, match="only class"):
        MERDataModule(df, tiny_config(), "finetune")


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_optimizers_update_all_tensors_at_once_with_identical_weights(optimizer):
    """The multi-tensor (foreach) update is on for every optimizer, and gives the per-tensor loop's weights exactly."""
    stage = tiny_config(f"train.pretrain.optimizer={optimizer}", "train.pretrain.regularization=none").train.pretrain
    torch.manual_seed(0)
    module = MERModule.from_config(tiny_config().model, stage, 64)
    module.net.model.head.drop.p = 0.0
    opt = module.configure_optimizers()
    assert opt.defaults["foreach"] is True
    reference = MERModule.from_config(tiny_config().model, stage, 64)
    reference.load_state_dict(module.state_dict())
    reference.net.model.head.drop.p = 0.0
    defaults = {k: v for k, v in opt.defaults.items() if k != "decoupled_weight_decay"}  # AdamW sets it itself
    ref_opt = type(opt)(reference.parameters(), **{**defaults, "foreach": False})
    x, y = torch.randn(6, 1, 64, 64), torch.tensor([0, 1, 2, 0, 1, 2])
    for m, o in ((module, opt), (reference, ref_opt)):
        m.train()
        for _ in range(3):
            loss = nn.functional.cross_entropy(m(x), y)
            o.zero_grad()
            loss.backward()
            o.step()
    for (name, a), b in zip(module.state_dict().items(), reference.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_stage_without_validation_writes_no_checkpoint_unless_kept(prepared, tmp_path):
    """No validation subjects: the last epoch is kept in memory, nothing is written; keep_checkpoint still writes it."""
    cfg = tiny_config("train.finetune.epochs=2", "train.finetune.val_subjects=0", "train.finetune.limit_batches=2")
    held = ["casme2/s0"]
    res = train_stage(cfg, prepared, "finetune", tmp_path / "ft", held_out=held, keep_checkpoint=False)
    assert res.monitor is None and res.best_path is None and res.best_epoch == 1
    assert not (tmp_path / "ft" / "checkpoints").exists()
    kept = train_stage(cfg, prepared, "finetune", tmp_path / "kept", held_out=held, keep_checkpoint=True)
    assert kept.best_path is not None and kept.best_path.is_file() and kept.best_epoch == 1
    for a, b in zip(res.module.state_dict().values(), kept.module.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # same seed, same last epoch: the checkpoint held nothing the module did not


def test_epoch_means_weight_batches_by_their_samples():
    """Logged once per epoch, a value is the mean over samples (a short last batch counts less), as Lightning's was."""
    from mer.models.module import epoch_means

    means = epoch_means("ce")
    means["ce"].update(torch.tensor(1.0), 2)
    means["ce"].update(torch.tensor(4.0), 1)
    assert means["ce"].compute().item() == pytest.approx(2.0)
    means["ce"].reset()
    assert not means["ce"].update_called


def test_validation_scores_equal_mer_scoring_on_the_same_predictions():
    """The module's pooled validation acc / UAR / UF1 (what checkpointing selects on) are `mer.scoring.megc_scores`
    of the epoch's predictions, a class predicted but absent from the labels included (MEGC leaves it out)."""
    from mer.scoring import megc_scores

    torch.manual_seed(0)
    module = MERModule.from_config(tiny_config().model, tiny_config().train.finetune, 32)
    gen = torch.Generator().manual_seed(1)
    batches = []
    for n in (5, 7, 3):  # labels 0 and 1 only; the chosen logits also predict class 2
        y = torch.randint(0, 2, (n,), generator=gen)
        batches.append((torch.zeros(n, 1, 32, 32), y, torch.randn(n, 3, generator=gen) + torch.tensor([0, 0, 0.5])))
    logits = iter([b[2] for b in batches])
    hook = module.net.register_forward_hook(lambda mod, args, out: next(logits))
    for i, (x, y, _) in enumerate(batches):
        module.validation_step((x, y), i)
    hook.remove()
    got = module.val_metrics.scores("val/")
    truth = torch.cat([b[1] for b in batches]).tolist()
    pred = torch.cat([b[2].argmax(-1) for b in batches]).tolist()
    assert 2 in pred and 2 not in truth
    want = megc_scores([str(v) for v in truth], [str(v) for v in pred], ["0", "1", "2"])
    assert got == {"val/acc": want["accuracy"], "val/uar": want["uar"], "val/uf1": want["uf1"]}
    module.val_metrics.reset()
    assert module.val_metrics.scores("val/") == {}


def test_losses_are_logged_once_per_epoch(prepared, tmp_path):
    """train/ce, train/loss, train/l2 and val/loss reach the CSV log: one row per epoch, equal to the batches' mean."""
    import pandas as pd

    cfg = tiny_config("train.finetune.epochs=2", "train.finetune.val_subjects=0.3", "train.finetune.l2=0.001")
    train_stage(cfg, prepared, "finetune", tmp_path / "ft", held_out=["casme2/s0"])
    log = pd.read_csv(tmp_path / "ft" / "logs" / "metrics.csv")
    for key in ("train/ce", "train/loss", "train/l2", "val/loss", "val/uf1"):
        assert log[key].notna().sum() == 2, key
    rows = log.dropna(subset=["train/ce"])
    assert (rows["train/loss"] > rows["train/ce"]).all()  # the L2 penalty is in the loss, not in the cross-entropy
