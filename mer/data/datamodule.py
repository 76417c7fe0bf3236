"""MERDataModule: the samples of one stage and fold, class-balanced training, subject-wise validation.

The held-out subjects of a fold are split off first and only ever reach `test_dataloader`; the validation subjects
(for checkpoint selection and early stopping) come from the training side. Crops are loaded into memory once.

Balancing (`data.balance`): `epoch` tops every class up to the largest one over an epoch (`BalancedSampler`);
`iteration` gives every batch the same number of samples of each class (`BalancedBatchSampler`, the paper's "the
same number of emotion category samples is randomly selected in each training iteration"). Both samplers yield
`(index, topup)` keys: a sample's first use in an epoch is the original, every further use a top-up copy, and
`augment.apply: topups` shifts/flips only the copies (`all`: every training sample). `none` (`ShuffledSampler`)
draws every training sample once per epoch in a random order, as the flow networks' authors trained. `DrawKeys` adds
each key's epoch and position, and the datasets seed that sample's augmentation from (seed, stage, epoch, position)
alone, so the batches are the same whatever `data.num_workers` / `data.persistent_workers` are.

`data.augment_on: device` keeps the training crops as uint8 on the training device (`UInt8Crops`) and augments
whole batches there in `on_after_batch_transfer` (`BatchAugment`); validation and test batches are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Union

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import GroupShuffleSplit
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

from mer.config import MOTION_INPUTS, AugmentConfig, Config, class_names, input_channels
from mer.data.batch_augment import BatchAugment, UInt8Crops, keep_batch
from mer.data.motion import MotionDataset, load_motion
from mer.data.prepared import REBUILD_HINT
from mer.data.transforms import draw_seed, normalize, resize_crops, sample_key, train_transform
from mer.errors import DataError
from mer.files import read_crops

STAGE_KIND = {"pretrain": "macro", "finetune": "micro"}


# a sample index, (index, is a top-up copy), or (index, topup, epoch, position in the epoch): see `DrawKeys`
Key = Union[int, tuple[int, bool], tuple[int, bool, int, int]]  # noqa: UP007


class CropDataset(Dataset):
    """In-memory crops + integer labels; applies the augmentation (if any) then normalises to (1, H, W).

    Keys are indices or `(index, topup)` from the balancing samplers. Shifts/flips go on every sample
    (`augment.apply: all`) or on top-up copies only (`topups`); the pixel jitter goes on every sample when `stage`
    is in `augment.jitter_stages` (an unknown stage, None, counts as in them). A key `(index, topup, epoch,
    position)` (`DrawKeys`) seeds that sample's draw from `draw_seed(seed, stage, epoch, position)`, so the result
    does not depend on which worker process draws it or what it drew before; other keys draw from the pipeline's
    generator in turn.
    """

    def __init__(
        self,
        crops: np.ndarray,
        labels: np.ndarray,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        stage: str | None = None,
    ):
        self.crops = crops
        self.labels = torch.tensor(np.asarray(labels), dtype=torch.long)
        self.seed, self.stage = seed, stage
        self.topups_only = augment is not None and augment.apply == "topups"
        jitter = augment is not None and (stage is None or stage in augment.jitter_stages)
        # With apply=all one pipeline (shift, flip, jitter) as before; originals under topups get the jitter alone.
        self.transform = train_transform(augment, seed=seed, jitter=jitter) if augment is not None else None
        self.plain = train_transform(augment, seed=seed + 1, geometric=False) if self.topups_only and jitter else None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: Key) -> tuple[torch.Tensor, torch.Tensor]:
        i, topup, draw = sample_key(key)
        img = self.crops[i]
        transform = self.plain if self.topups_only and not topup else self.transform
        if transform is not None:
            if draw is not None:
                transform.set_random_seed(draw_seed(self.seed, self.stage, *draw))
            img = transform(image=img)["image"]
        return normalize(img)[0], self.labels[i]


class BalancedSampler(Sampler[tuple[int, bool]]):
    """Every class contributes as many samples per epoch as the largest class: all of its own, then random repeats.

    Repeats are drawn without replacement where possible, so each minority sample is used about equally often; the
    augmentation makes every repeat a different shifted/flipped copy. Yields `(index, topup)`: topup is False for a
    sample's own appearance, True for its repeats. `set_epoch` (called by Lightning) reseeds.
    """

    def __init__(self, labels: Sequence[int], seed: int = 0) -> None:
        self.labels = np.asarray(labels)
        self.seed = seed
        self.epoch = 0
        self.classes = np.unique(self.labels)
        self.per_class = int(max((self.labels == c).sum() for c in self.classes)) if len(self.labels) else 0

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this each epoch so the draw differs per epoch but is reproducible."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_class * len(self.classes)

    def __iter__(self) -> Iterator[tuple[int, bool]]:
        rng = np.random.default_rng((self.seed, self.epoch))
        picks = []
        for c in self.classes:
            idx = np.flatnonzero(self.labels == c)
            reps, rest = divmod(self.per_class, len(idx))
            chosen = np.concatenate([np.tile(idx, reps), rng.choice(idx, size=rest, replace=False)])
            picks.append(chosen)
        order = np.concatenate(picks)
        topup = np.concatenate(
            [np.arange(len(p)) >= (self.labels == c).sum() for p, c in zip(picks, self.classes, strict=True)]
        )
        perm = rng.permutation(len(order)) if len(order) else np.zeros(0, np.int64)
        return iter(zip(order[perm].tolist(), topup[perm].tolist(), strict=True))


class ShuffledSampler(Sampler[tuple[int, bool]]):
    """Every sample once per epoch in a random order, no top-ups (`data.balance: none`); yields `(index, False)`
    like the balancing samplers so that `DrawKeys` seeds each draw the same way. `set_epoch` reseeds."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this each epoch so the order differs per epoch but is reproducible."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, bool]]:
        order = np.random.default_rng((self.seed, self.epoch)).permutation(self.n)
        return iter((int(i), False) for i in order)


def train_sampler(labels: np.ndarray, balance: str, seed: int) -> Sampler:
    """The per-sample training sampler of `data.balance` epoch (top-ups) or none (each sample once)."""
    return ShuffledSampler(len(labels), seed) if balance == "none" else BalancedSampler(labels, seed=seed)


class BalancedBatchSampler(Sampler[list[tuple[int, bool]]]):
    """Every batch holds the same number of samples of each class present (the paper's per-iteration balance).

    `batch_size // n_classes` per class; when the batch size is not a multiple of the class count, the remaining
    slots go to the classes in turn (a fixed random class order per epoch, continued from batch to batch), so within
    a batch counts differ by at most one and over the epoch every class gets the same share (±1). An epoch has as
    many batches as `BalancedSampler` has samples / batch size (rounded up); each class's samples are drawn in a
    fresh random order, all of them once (the originals) before any repeats (top-up copies, `topup=True`).
    """

    def __init__(self, labels: Sequence[int], batch_size: int, seed: int = 0) -> None:
        self.labels = np.asarray(labels)
        self.batch_size = int(batch_size)
        self.seed = seed
        self.epoch = 0
        self.classes = np.unique(self.labels)
        if self.batch_size < len(self.classes):
            raise DataError(
                f"data.balance=iteration needs a batch size of at least the class count ({len(self.classes)}), "
                f"got {self.batch_size}"
            )
        self.per_class = int(max((self.labels == c).sum() for c in self.classes)) if len(self.labels) else 0

    def set_epoch(self, epoch: int) -> None:
        """Which epoch the next pass draws. Lightning does not call it on a batch sampler (it looks for
        `.sampler`), so every pass also moves on to the next epoch by itself: reproducible, and new each epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.per_class * len(self.classes) // self.batch_size) if len(self.classes) else 0

    def __iter__(self) -> Iterator[list[tuple[int, bool]]]:
        rng = np.random.default_rng((self.seed, self.epoch, 1))
        self.epoch += 1
        n_cls = len(self.classes)
        base, extra = divmod(self.batch_size, max(1, n_cls))
        order = rng.permutation(n_cls)
        pools = [np.flatnonzero(self.labels == c) for c in self.classes]
        streams: list[list[tuple[int, bool]]] = [[] for _ in pools]
        used = [0] * n_cls

        def draw(c: int, k: int) -> list[tuple[int, bool]]:
            while len(streams[c]) < k:  # refill with a fresh permutation: the first one is the originals
                streams[c].extend((int(i), used[c] > 0) for i in rng.permutation(pools[c]))
                used[c] += 1
            out = streams[c][:k]
            del streams[c][:k]
            return out

        for b in range(len(self)):
            counts = [base] * n_cls
            for j in range(extra):
                counts[order[(b * extra + j) % n_cls]] += 1
            batch = [key for c in range(n_cls) for key in draw(c, counts[c])]
            yield [batch[i] for i in rng.permutation(len(batch))]


class DrawKeys(Sampler):
    """A training sampler whose keys carry where their augmentation is drawn: `(index, topup, epoch, position)`.

    `epoch` is the epoch the wrapped sampler draws (its `epoch` when a pass starts; `set_epoch` is passed on),
    `position` counts the samples of the pass from 0 (a batch sampler's batches sample by sample). The datasets seed
    each sample from these (`draw_seed`), so DataLoader workers, persistent or not, cannot repeat or reorder draws.
    """

    def __init__(self, inner: BalancedSampler | BalancedBatchSampler | ShuffledSampler, batched: bool = False) -> None:
        self.inner = inner  # not `.sampler`: Lightning must not start calling set_epoch on the batch sampler
        self.batched = batched

    def set_epoch(self, epoch: int) -> None:
        """Passed on to the wrapped sampler (Lightning calls it on a sampler each epoch)."""
        self.inner.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self) -> Iterator:
        epoch, position = self.inner.epoch, 0
        for item in self.inner:
            if not self.batched:
                yield (*item, epoch, position)
                position += 1
                continue
            yield [(*key, epoch, position + j) for j, key in enumerate(item)]
            position += len(item)


def check_motion(prepared: pd.DataFrame, cfg: Config) -> None:
    """The prepared folder holds the motion input this config asks for (`data.input`, `data.flow_method`)."""
    want = f"{cfg.data.input}:{cfg.data.flow_method}"
    have = sorted(set(prepared["motion_input"])) if "motion_input" in prepared else []
    if have != [want]:
        found = f"it holds {', '.join(have)}" if have else "it holds apex crops only"
        raise DataError(
            f"data.input={cfg.data.input} (flow method {cfg.data.flow_method}) needs a prepared folder made with the "
            f"same settings, but {found}: re-run `mer prepare` with data.input={cfg.data.input} "
            f"data.flow_method={cfg.data.flow_method} into its own --out folder"
        )


def split_validation(df: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Whole subjects from `df` for validation (about `fraction` of them, at least one when there are ≥3 subjects)."""
    subjects = df["subject"].unique()
    if fraction <= 0 or len(subjects) < 3:
        return df, df.iloc[0:0]
    n_val = max(1, round(fraction * len(subjects)))
    splitter = GroupShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
    train_idx, val_idx = next(splitter.split(df, groups=df["subject"]))
    return df.iloc[train_idx], df.iloc[val_idx]


class MERDataModule(pl.LightningDataModule):
    """Samples of one stage (`pretrain`: macro rows, `finetune`: micro rows); `held_out` subjects are the test set."""

    def __init__(
        self,
        prepared: pd.DataFrame,
        cfg: Config,
        stage: str = "finetune",
        held_out: Sequence[str] = (),
        batch_size: int | None = None,
    ) -> None:
        super().__init__()
        if stage not in STAGE_KIND:
            raise ValueError(f"stage must be one of {list(STAGE_KIND)}")
        self.cfg = cfg
        self.stage_name = stage
        self.stage_cfg = getattr(cfg.train, stage)
        self.batch_size = batch_size or self.stage_cfg.batch_size
        self.classes = list(class_names(cfg.data))
        rows = prepared[(prepared["kind"] == STAGE_KIND[stage]) & prepared["label"].isin(self.classes)]
        if rows.empty:
            raise DataError(
                f"no {STAGE_KIND[stage]}-expression samples for stage '{stage}' in the prepared data "
                f"(prepare the {'CK+/Oulu/JAFFE/MUG' if stage == 'pretrain' else 'CASME II/SAMM/SMIC'} folders)"
            )
        self.motion = cfg.data.input in MOTION_INPUTS
        if self.motion:
            check_motion(prepared, cfg)
        held = set(held_out)
        unknown = held - set(rows["subject"])
        if unknown:
            raise DataError(f"held-out subjects not in the {stage} data: {', '.join(sorted(unknown))}")
        self.test_df = rows[rows["subject"].isin(held)].reset_index(drop=True)
        train_side = rows[~rows["subject"].isin(held)]
        train_df, val_df = split_validation(train_side, self.stage_cfg.val_subjects, cfg.seed)
        self.train_df = train_df.reset_index(drop=True)
        self.val_df = val_df.reset_index(drop=True)
        self._check_no_leak(held)
        present = sorted(set(self.train_df["label"]))
        if len(present) < 2:
            raise DataError(f"the {stage} training set holds only class {present}; need at least two classes")
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        jitter = stage in cfg.augment.jitter_stages
        self.batch_augment = BatchAugment(cfg.augment, jitter=jitter) if cfg.data.augment_on == "device" else None

    def _check_no_leak(self, held: set[str]) -> None:
        for name, df in (("training", self.train_df), ("validation", self.val_df)):
            leaked = held & set(df["subject"])
            if leaked:
                raise AssertionError(f"held-out subjects {sorted(leaked)} found in the {name} set")

    def label_ids(self, df: pd.DataFrame) -> np.ndarray:
        """Class names → indices in `class_names(cfg.data)` order."""
        return df["label"].map({c: i for i, c in enumerate(self.classes)}).to_numpy(dtype=np.int64)

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(crops uint8 (N,H,W) at the network's size, labels) of 'train', 'val' or 'test', loaded once; with a
        motion `data.input` the scaled motion inputs float32 (N,C,H,W) instead of the crops."""
        if split not in self._arrays:
            df = {"train": self.train_df, "val": self.val_df, "test": self.test_df}[split]
            if self.motion:
                size, chans = self.cfg.data.image_size, input_channels(self.cfg.data)
                x = load_motion(df["motion"].tolist(), size, self.cfg.data.input, chans)
                self._arrays[split] = (x, self.label_ids(df))
                return self._arrays[split]
            crops = (
                resize_crops(read_crops(df["crop"].tolist(), hint=REBUILD_HINT), self.cfg.data.image_size)
                if len(df)
                else None
            )
            if crops is None:
                size = self.cfg.data.image_size
                crops = np.zeros((0, size, size), np.uint8)
            self._arrays[split] = (crops, self.label_ids(df))
        return self._arrays[split]

    def _loader(self, split: str, train: bool, shuffle: bool = False) -> DataLoader:
        crops, labels = self.arrays(split)
        data = self.cfg.data
        if self.motion:
            augment = self.cfg.augment if train else None
            ds: Dataset = MotionDataset(crops, labels, data.input, augment, seed=self.cfg.seed, stage=self.stage_name)
        elif train and data.augment_on == "device":
            return self._device_loader(crops, labels)
        else:
            ds = CropDataset(
                crops, labels, self.cfg.augment if train else None, seed=self.cfg.seed, stage=self.stage_name
            )
        workers = {
            "num_workers": data.num_workers,
            "pin_memory": data.pin_memory,
            "persistent_workers": data.persistent_workers and data.num_workers > 0,
        }
        if train and data.balance == "iteration":
            batches = DrawKeys(BalancedBatchSampler(labels, self.batch_size, self.cfg.seed), batched=True)
            return DataLoader(ds, batch_sampler=batches, **workers)
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=DrawKeys(train_sampler(labels, data.balance, self.cfg.seed)) if train else None,
            shuffle=shuffle,
            drop_last=False,
            **workers,
        )

    def _device_loader(self, crops: np.ndarray, labels: np.ndarray) -> DataLoader:
        """Whole uint8 batches gathered on the training device, in the same batches as the per-sample path."""
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        ds = UInt8Crops(crops, labels, device, topups=self.cfg.augment.apply == "topups")
        if self.cfg.data.balance == "iteration":
            batches: Sampler = BalancedBatchSampler(labels, self.batch_size, self.cfg.seed)
        else:  # Lightning still reaches the sampler's set_epoch through batch_sampler.sampler
            batches = BatchSampler(train_sampler(labels, self.cfg.data.balance, self.cfg.seed), self.batch_size,
                                   drop_last=False)  # fmt: skip
        return DataLoader(ds, batch_sampler=batches, collate_fn=keep_batch, num_workers=0)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint8 training batches (augment_on=device) → augmented, normalised float; float batches pass through."""
        x = batch[0]
        if self.batch_augment is None or x.dtype != torch.uint8:
            return batch
        mask = batch[2] if len(batch) > 2 else None
        return self.batch_augment(x, augment=mask), batch[1]

    def train_dataloader(self) -> DataLoader:
        """Augmented batches of the training subjects, class-balanced per epoch or per batch or not (`data.balance`)."""
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader | list:
        """Validation subjects (training side only); empty when too few subjects to spare."""
        return self._loader("val", train=False) if len(self.val_df) else []

    def test_dataloader(self) -> DataLoader:
        """The held-out subjects, unaugmented."""
        return self._loader("test", train=False)

    def eval_dataloader(self, split: str) -> DataLoader:
        """Unaugmented, unshuffled loader of any split (for embeddings)."""
        return self._loader(split, train=False)
