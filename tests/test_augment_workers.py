"""Augmentation draws depend on (seed, stage, epoch, sample position) only: any DataLoader worker count, persistent
or not, gives the batches of `data.num_workers: 0`, and two epochs draw differently."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lightning.fabric.utilities.data import _set_sampler_epoch  # what Lightning calls at the start of an epoch
from torch.utils.data import DataLoader

from mer.config import AugmentConfig
from mer.data.datamodule import BalancedSampler, DrawKeys, MERDataModule
from mer.data.motion import MotionDataset
from tests.helpers import make_prepared, tiny_config

WORKERS = [(0, False), (2, False), (2, True), (3, False), (3, True)]


@pytest.fixture(scope="module")
def skewed(tmp_path_factory):
    subjects = {f"casme2/s{i}": "micro" for i in range(2)}
    return make_prepared(tmp_path_factory.mktemp("prep"), subjects, per_class=3, size=24, skew=True)


def epochs(loader: DataLoader, n: int = 2) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """The batches of `n` epochs of one loader, kept across epochs as Lightning keeps it."""
    out = []
    for epoch in range(n):
        _set_sampler_epoch(loader, epoch)
        out.append([(x.clone(), y.clone()) for x, y in loader])
    return out


def same(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    return all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b, strict=True))


@pytest.mark.parametrize("balance", ["epoch", "iteration"])
@pytest.mark.parametrize("apply", ["all", "topups"])
def test_crop_batches_do_not_depend_on_workers(skewed, balance: str, apply: str) -> None:
    runs = {}
    for workers, persistent in WORKERS:
        cfg = tiny_config(
            f"data.balance={balance}",
            f"augment.apply={apply}",
            "augment.max_shift=3",
            "augment.jitter_p=0.5",
            "train.finetune.val_subjects=0",
            "train.finetune.batch_size=6",
            f"data.num_workers={workers}",
            f"data.persistent_workers={str(persistent).lower()}",
        )
        loader = MERDataModule(skewed, cfg, "finetune").train_dataloader()
        assert loader.num_workers == workers
        runs[(workers, persistent)] = epochs(loader)
    reference = runs[(0, False)]
    assert not same(reference[0], reference[1])  # a new epoch draws new batches
    for key, run in runs.items():
        for epoch in (0, 1):
            assert same(run[epoch], reference[epoch]), f"{key}, epoch {epoch}: batches differ from num_workers=0"


def test_motion_batches_do_not_depend_on_workers() -> None:
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(10, 2, 12, 12)).astype(np.float32)
    labels = np.array([0] * 6 + [1] * 4)
    runs = {}
    for workers, persistent in WORKERS:
        ds = MotionDataset(inputs, labels, "flow", AugmentConfig(max_shift=3), seed=5, stage="finetune")
        sampler = DrawKeys(BalancedSampler(labels, seed=5))
        loader = DataLoader(
            ds, batch_size=4, sampler=sampler, num_workers=workers, persistent_workers=persistent and workers > 0
        )
        runs[(workers, persistent)] = epochs(loader)
    reference = runs[(0, False)]
    assert not same(reference[0], reference[1])
    for key, run in runs.items():
        assert same(run[0], reference[0]) and same(run[1], reference[1]), f"{key}: batches differ from num_workers=0"
