"""Training rules that results depend on; each test here failed on the code before its fix.

Frozen BatchNorm is frozen, the paper's two regularisation settings are two honoured keys, a searched key that has
no effect is a load-time error, model selection uses the MEGC pooled metric, class balance per iteration with
top-up-only augmentation, and TF32 off unless asked for.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader, TensorDataset

from mer.config import load_config
from mer.errors import ConfigError
from mer.models.module import MERModule
from mer.models.unfreeze import GradualUnfreeze
from mer.provenance import write_run_info
from mer.runtime import configure_torch
from mer.train import train_stage
from tests.helpers import tiny_config

# ---------------------------------------------------------------- 1. frozen layers behave as frozen


def _bn_of(net, stages):
    mods = net.stage_modules()
    return [m for s in stages for m in mods[s] if isinstance(m, _BatchNorm)]


class _FrozenProbe(pl.Callback):
    """Checks, during training batches after a validation loop has run, that the frozen part is frozen."""

    def __init__(self, frozen: list[str], unfrozen_at: dict[int, list[str]]):
        self.frozen = frozen
        self.unfrozen_at = unfrozen_at
        self.buffers: dict[str, torch.Tensor] = {}
        self.checked: list[int] = []
        self.max_diff: list[float] = []
        self.modes: list[tuple[int, bool]] = []
        self.frozen_eval: list[bool] = []

    def on_train_start(self, trainer, pl_module):
        for name, buf in pl_module.net.named_buffers():
            self.buffers[name] = buf.detach().clone()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        epoch = trainer.current_epoch
        if epoch == 0:
            return
        net = pl_module.net
        assert pl_module.training
        frozen_bn = _bn_of(net, self.frozen)
        self.frozen_eval.append(bool(frozen_bn) and all(not m.training for m in frozen_bn))
        for stage in self.unfrozen_at.get(epoch, []):
            self.modes.append((epoch, all(m.training for m in _bn_of(net, [stage]))))
        x = batch[0][:4]
        with torch.no_grad():
            ref = copy.deepcopy(net).eval()
            now = net.model.stem(x)
            self.max_diff.append(float((now - ref.model.stem(x)).abs().max()))
            if not self.unfrozen_at:  # the whole backbone is frozen: every feature equals its eval-mode value
                self.max_diff.append(float((net.model.forward_features(x) - ref.model.forward_features(x)).abs().max()))
        self.checked.append(epoch)


def test_frozen_batchnorm_uses_running_stats_and_stays_unchanged(prepared, tmp_path):
    cfg = tiny_config(
        "train.finetune.epochs=2",
        "train.finetune.unfreeze={0: head}",
        "train.finetune.limit_batches=2",
        "train.finetune.val_subjects=0.3",
    )
    probe = _FrozenProbe(["stem", "stage1", "stage2", "stage3", "stage4", "stage5"], {})
    res = train_stage(cfg, prepared, "finetune", tmp_path / "ft", held_out=["casme2/s0"], callbacks=[probe])
    assert len(res.datamodule.val_df) > 0  # a validation loop ran between the epochs
    assert probe.checked and set(probe.checked) == {1}
    assert max(probe.max_diff) == 0.0  # outputs identical in train() and eval()
    assert all(probe.frozen_eval)
    for name, buf in res.module.net.named_buffers():  # running statistics (and their counters) never moved
        assert torch.equal(buf, probe.buffers[name]), f"{name} changed while frozen"


def test_frozen_batchnorm_until_its_stage_unfreezes(prepared, tmp_path):
    cfg = tiny_config(
        "train.finetune.epochs=2",
        "train.finetune.unfreeze={0: head, 1: top1}",
        "train.finetune.limit_batches=2",
        "train.finetune.val_subjects=0.3",
    )
    probe = _FrozenProbe(["stem", "stage1"], {1: ["stage5"]})
    res = train_stage(cfg, prepared, "finetune", tmp_path / "ft", held_out=["casme2/s0"], callbacks=[probe])
    assert probe.modes and all(ok for _, ok in probe.modes)  # stage5's BN trains once stage5 is unfrozen
    assert max(probe.max_diff) == 0.0 and all(probe.frozen_eval)
    net = res.module.net
    stem_bn = dict(net.named_buffers())
    changed = [n for n in stem_bn if ".stages.4." in n and "running_mean" in n]
    assert changed and any(not torch.equal(stem_bn[n], probe.buffers[n]) for n in changed)  # stage5 stats moved
    frozen = [n for n in stem_bn if n.startswith("model.stem.")]
    assert frozen and all(torch.equal(stem_bn[n], probe.buffers[n]) for n in frozen)


def test_train_bn_true_keeps_the_batch_statistics_behaviour():
    cfg = tiny_config("train.finetune.train_bn=true")
    assert cfg.train.finetune.train_bn is True
    module = MERModule.from_config(cfg.model, cfg.train.finetune, 64)
    cb = GradualUnfreeze({0: "head"}, train_bn=True)
    cb.freeze_before_training(module)
    module.train()
    cb.on_train_start(None, module)
    bns = _bn_of(module.net, ["stem"])
    assert bns and all(m.training and not m.weight.requires_grad for m in bns)
    cb = GradualUnfreeze({0: "head"})
    module = MERModule.from_config(cfg.model, cfg.train.finetune, 64)
    cb.freeze_before_training(module)
    module.train()
    cb.on_train_start(None, module)
    assert all(not m.training for m in _bn_of(module.net, ["stem"]))


# ---------------------------------------------------------------- 2. l2, lr_decay and weight_decay are three keys


class _LrRecorder(pl.Callback):
    def __init__(self):
        self.lrs: list[list[float]] = []
        self.epochs: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append([g["lr"] for g in trainer.optimizers[0].param_groups])
        self.epochs.append(trainer.current_epoch)


@pytest.mark.parametrize("scheduler", ["none", "cosine", "step"])
def test_lr_decay_is_keras_inverse_time_per_step(prepared, tmp_path, scheduler):
    lr0, decay, epochs = 0.01, 0.25, 3
    cfg = tiny_config(
        f"train.finetune.epochs={epochs}",
        "train.finetune.unfreeze={0: head, 1: top1}",
        "train.finetune.unfreeze_lr_factor=0.5",
        "train.finetune.limit_batches=2",
        f"train.finetune.lr={lr0}",
        f"train.finetune.lr_decay={decay}",
        f"train.finetune.scheduler={scheduler}",
        "train.finetune.l2=0.0",
    )
    rec = _LrRecorder()
    train_stage(cfg, prepared, "finetune", tmp_path / "ft", held_out=["casme2/s0"], callbacks=[rec])
    assert len(rec.lrs) == 2 * epochs
    for k, (lrs, epoch) in enumerate(zip(rec.lrs, rec.epochs, strict=True)):
        if scheduler == "cosine":
            by_epoch = 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        elif scheduler == "step":
            by_epoch = 0.1 ** (epoch // max(1, epochs // 3))
        else:
            by_epoch = 1.0
        expected = lr0 * by_epoch / (1 + decay * k)  # Keras 2.2.4: lr / (1 + decay * iterations)
        assert lrs[0] == pytest.approx(expected, rel=1e-9), (k, lrs)
        if epoch >= 1:  # the group added at epoch 1 follows the same schedule, times unfreeze_lr_factor
            assert len(lrs) == 2 and lrs[1] == pytest.approx(0.5 * expected, rel=1e-9), (k, lrs)


def test_lr_decay_with_plateau_is_refused():
    with pytest.raises(ConfigError, match="lr_decay"):
        tiny_config("train.finetune.lr_decay=0.01", "train.finetune.scheduler=plateau")


def test_no_regularisation_key_is_silently_ignored():
    with pytest.raises(ConfigError, match="weight_decay"):
        tiny_config("train.finetune.regularization=l2", "train.finetune.weight_decay=0.01")
    with pytest.raises(ConfigError, match="l2"):
        tiny_config("train.finetune.regularization=decoupled", "train.finetune.weight_decay=0.01")
    with pytest.raises(ConfigError, match="l2"):
        tiny_config("train.finetune.regularization=none")  # the tiny config's fine-tuning l2 is 0.01
    cfg = tiny_config(
        "train.finetune.regularization=decoupled", "train.finetune.l2=0", "train.finetune.weight_decay=0.1"
    )
    module = MERModule.from_config(cfg.model, cfg.train.finetune, 64)
    opt = module.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["weight_decay"] == 0.1


def test_paper_config_carries_both_stated_values():
    f = load_config("paper").train.finetune
    assert (f.l2, f.lr_decay, f.weight_decay, f.regularization) == (0.2, 0.01, 0.0, "l2")
    from mer.sweep import load_sweep

    spec = load_sweep(Path(__file__).resolve().parents[1] / "sweeps" / "paper_grid.yaml")
    assert spec.search["train.finetune.lr_decay"].values == [1.0e-4, 1.0e-3, 1.0e-2, 1.0e-1]
    assert "train.finetune.l2" not in spec.search


# ---------------------------------------------------------------- 3. a searched key with no effect is an error


def _spec(search: dict, **extra):
    from mer.sweep.spec import sweep_from_dict

    return sweep_from_dict({"study": "t", "base": "paper", "search": search, **extra})


@pytest.mark.parametrize(
    ("search", "extra", "match"),
    [
        ({"train.finetune.momentum": [0.8, 0.9]}, {}, "only SGD"),  # the paper fine-tunes with Adam
        ({"face.size": [128, 256]}, {}, "mer prepare"),  # crops are made by `mer prepare`, not by a trial
        ({"svm.inner_folds": [3, 4]}, {"classifier": "softmax"}, "classifier: softmax"),
        (
            {"augment.jitter_max": [10, 20]},
            {"overrides": ["augment.jitter_p=0", "augment.jitter_stages=[finetune]"]},
            "jitter_p",
        ),  # fmt: skip
        (
            {"augment.jitter_p": [0.1, 0.3]},
            {},
            "off in a finetune trial",
        ),  # the paper's jitter is for pre-training only
        ({"train.finetune.weight_decay": [0.001, 0.01]}, {}, "regularization"),
    ],
)
def test_searched_key_without_effect_is_a_load_time_error(search, extra, match):
    from mer.sweep import check_space

    with pytest.raises(ConfigError, match=f"no effect.*{match}"):
        check_space(_spec(search, **extra))


def test_searched_key_that_another_searched_key_enables_is_fine():
    from mer.sweep import check_space

    check_space(_spec({"train.finetune.optimizer": ["sgd", "adam"], "train.finetune.momentum": [0.8, 0.9]}))
    check_space(_spec({"train.finetune.lr_decay": [1.0e-4, 1.0e-2]}))


# ---------------------------------------------------------------- 7. model selection uses the headline metric


def test_monitored_val_uf1_is_the_reports_megc_uf1_with_a_class_absent():
    from mer.evaluation.metrics import megc_scores

    pl.seed_everything(0)
    cfg = tiny_config()
    module = MERModule.from_config(cfg.model, cfg.train.finetune, 64).eval()
    with torch.no_grad():
        fc = module.net.model.get_classifier()
        fc.weight.mul_(200.0)
    x = torch.randn(48, 1, 64, 64)
    with torch.no_grad():
        pred = module(x).argmax(-1)
    counts = Counter(pred.tolist())
    absent = counts.most_common(1)[0][0]
    assert len(counts) >= 2, counts  # the network predicts the absent class and at least one other
    y = torch.where(pred == absent, (pred + 1) % 3, pred)
    y[::5] = (y[::5] + 1) % 3
    y[y == absent] = (absent + 2) % 3
    assert absent not in set(y.tolist())
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    out = trainer.validate(module, DataLoader(TensorDataset(x, y), batch_size=10), verbose=False)[0]
    names = ["negative", "positive", "surprise"]
    report = megc_scores([names[i] for i in y.tolist()], [names[i] for i in pred.tolist()])
    assert absent not in [names.index(c) for c in report["classes_scored"]]
    assert out["val/uf1"] == pytest.approx(report["uf1"], abs=1e-6)
    assert out["val/uar"] == pytest.approx(report["uar"], abs=1e-6)
    assert out["val/acc"] == pytest.approx(report["accuracy"], abs=1e-6)


def test_models_do_not_import_evaluation():
    code = "import sys, mer.models.unfreeze; print(any(m.startswith('mer.evaluation') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


# ---------------------------------------------------------------- 8. balance per iteration, augment the top-ups


def test_iteration_balance_gives_equal_class_counts_in_every_batch(prepared):
    from mer.data.datamodule import BalancedBatchSampler, MERDataModule

    labels = [0] * 10 + [1] * 3 + [2] * 5
    sampler = BalancedBatchSampler(labels, batch_size=6, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5  # 3 classes x 10 (the largest class) / 6
    for b in batches:
        assert Counter(labels[i] for i, _ in b) == {0: 2, 1: 2, 2: 2}
    # the remainder of a batch size not divisible by the class count goes to classes in turn: counts differ by <= 1
    uneven = list(BalancedBatchSampler(labels, batch_size=8, seed=1))
    totals: Counter = Counter()
    for b in uneven:
        c = Counter(labels[i] for i, _ in b)
        assert len(b) == 8 and max(c.values()) - min(c.values()) <= 1 and len(c) == 3
        totals.update(c)
    assert max(totals.values()) - min(totals.values()) <= 1
    cfg = tiny_config("data.balance=iteration", "train.finetune.batch_size=6")
    dm = MERDataModule(prepared, cfg, "finetune", held_out=["casme2/s0"])
    for _, y in dm.train_dataloader():
        assert Counter(y.tolist()) == {0: 2, 1: 2, 2: 2}


def test_topups_augments_only_the_copies(tmp_path):
    from mer.data.datamodule import BalancedBatchSampler, BalancedSampler, MERDataModule
    from mer.data.transforms import normalize
    from tests.helpers import make_prepared

    df = make_prepared(tmp_path, {"casme2/a": "micro", "casme2/b": "micro", "samm/c": "micro"}, skew=True)
    cfg = tiny_config(
        "augment.apply=topups",
        "augment.max_shift=4",
        "augment.jitter_p=1.0",
        "augment.jitter_stages=[pretrain]",
        "train.finetune.val_subjects=0",
    )
    dm = MERDataModule(df, cfg, "finetune")
    crops, labels = dm.arrays("train")
    loader = dm.train_dataloader()
    ds = loader.dataset
    for sampler in (BalancedSampler(labels, seed=0), BalancedBatchSampler(labels, 6, seed=0)):
        keys = [k for b in sampler for k in (b if isinstance(b, list) else [b])]
        originals = [i for i, topup in keys if not topup]
        assert sorted(originals) == list(range(len(labels)))  # every sample once as itself
        topups = Counter(int(labels[i]) for i, topup in keys if topup)
        assert topups[0] == 0 and topups[1] > 0 and topups[2] > 0  # the majority class needs no top-ups
    changed = 0
    for i in range(len(labels)):
        x, _ = ds[(i, False)]
        assert torch.equal(x, normalize(crops[i])[0])  # an original sample is not augmented
        x, _ = ds[(i, True)]
        changed += int(not torch.equal(x, normalize(crops[i])[0]))
    assert changed > len(labels) // 2  # top-up copies are shifted / flipped
    cfg_all = tiny_config("augment.apply=all", "augment.max_shift=4", "train.finetune.val_subjects=0")
    ds_all = MERDataModule(df, cfg_all, "finetune").train_dataloader().dataset
    assert sum(int(not torch.equal(ds_all[(i, False)][0], normalize(crops[i])[0])) for i in range(len(labels))) > 0


def test_paper_reading_of_balance_and_augmentation():
    cfg = load_config("paper")
    assert cfg.data.balance == "iteration" and cfg.augment.apply == "topups"
    assert cfg.augment.jitter_stages == ["pretrain"] and cfg.augment.jitter_p == 0.3


# ---------------------------------------------------------------- 9. reproducible by default


@pytest.fixture
def restore_numerics():
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
        torch.get_num_threads(),
    )
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[0], saved[1]
    torch.set_float32_matmul_precision(saved[2])
    torch.set_num_threads(saved[3])


def test_tf32_off_unless_asked(restore_numerics, tmp_path):
    cfg = tiny_config()
    assert cfg.train.tf32 is False
    torch.backends.cudnn.allow_tf32 = True
    configure_torch(cfg.train.threads, cfg.train.tf32)
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert torch.get_float32_matmul_precision() == "highest"
    configure_torch(0, tiny_config("train.tf32=true").train.tf32)
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert torch.get_float32_matmul_precision() == "high"
    write_run_info(cfg, tmp_path, command="test")
    info = json.loads((tmp_path / "run_info.json").read_text())
    assert info["numerics"] == {"precision": "32-true", "tf32": False, "deterministic": True, "threads": 2}


def test_iteration_balance_draws_new_batches_every_epoch_without_set_epoch():
    """Lightning never calls set_epoch on a batch sampler: each pass must still draw new, reproducible batches."""
    from mer.data.datamodule import BalancedBatchSampler

    labels = [0] * 9 + [1] * 5 + [2] * 4
    sampler = BalancedBatchSampler(labels, batch_size=6, seed=1)
    first, second = list(sampler), list(sampler)
    assert first != second
    again = BalancedBatchSampler(labels, batch_size=6, seed=1)
    assert list(again) == first and list(again) == second
