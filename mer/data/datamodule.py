"""MERDataModule: the samples of one stage and fold, class-balanced training epochs, subject-wise validation.

The held-out subjects of a fold are split off first and only ever reach `test_dataloader`; the validation subjects
(for checkpoint selection and early stopping) come from the training side. Crops are loaded into memory once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import GroupShuffleSplit
from torch.utils.data import DataLoader, Dataset, Sampler

from mer.config import AugmentConfig, Config
from mer.data.prepared import REBUILD_HINT
from mer.data.transforms import normalize, resize_crops, train_transform
from mer.errors import DataError
from mer.files import read_crops

STAGE_KIND = {"pretrain": "macro", "finetune": "micro"}


class CropDataset(Dataset):
    """In-memory crops + integer labels; applies the augmentation (if any) then normalises to (1, H, W)."""

    def __init__(self, crops: np.ndarray, labels: np.ndarray, augment: AugmentConfig | None = None, seed: int = 0):
        self.crops = crops
        self.labels = torch.tensor(np.asarray(labels), dtype=torch.long)
        self.transform = train_transform(augment, seed=seed) if augment is not None else None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.crops[i]
        if self.transform is not None:
            img = self.transform(image=img)["image"]
        return normalize(img)[0], self.labels[i]


class BalancedSampler(Sampler[int]):
    """Every class contributes as many samples per epoch as the largest class: all of its own, then random repeats.

    Repeats are drawn without replacement where possible, so each minority sample is used about equally often; the
    augmentation makes every repeat a different shifted/flipped copy. `set_epoch` (called by Lightning) reseeds.
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

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng((self.seed, self.epoch))
        picks = []
        for c in self.classes:
            idx = np.flatnonzero(self.labels == c)
            reps, rest = divmod(self.per_class, len(idx))
            chosen = np.concatenate([np.tile(idx, reps), rng.choice(idx, size=rest, replace=False)])
            picks.append(chosen)
        order = np.concatenate(picks)
        rng.shuffle(order)
        return iter(order.tolist())


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
        self.classes = list(cfg.data.classes)
        rows = prepared[(prepared["kind"] == STAGE_KIND[stage]) & prepared["label"].isin(self.classes)]
        if rows.empty:
            raise DataError(
                f"no {STAGE_KIND[stage]}-expression samples for stage '{stage}' in the prepared data "
                f"(prepare the {'CK+/Oulu/JAFFE/MUG' if stage == 'pretrain' else 'CASME II/SAMM/SMIC'} folders)"
            )
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

    def _check_no_leak(self, held: set[str]) -> None:
        for name, df in (("training", self.train_df), ("validation", self.val_df)):
            leaked = held & set(df["subject"])
            if leaked:
                raise AssertionError(f"held-out subjects {sorted(leaked)} found in the {name} set")

    def label_ids(self, df: pd.DataFrame) -> np.ndarray:
        """Class names → indices in `cfg.data.classes` order."""
        return df["label"].map({c: i for i, c in enumerate(self.classes)}).to_numpy(dtype=np.int64)

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(crops uint8 (N,H,W) at the network's size, labels) of 'train', 'val' or 'test', loaded once."""
        if split not in self._arrays:
            df = {"train": self.train_df, "val": self.val_df, "test": self.test_df}[split]
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
        ds = CropDataset(crops, labels, self.cfg.augment if train else None, seed=self.cfg.seed)
        data = self.cfg.data
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=BalancedSampler(labels, seed=self.cfg.seed) if train else None,
            shuffle=shuffle,
            num_workers=data.num_workers,
            pin_memory=data.pin_memory,
            persistent_workers=data.persistent_workers and data.num_workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        """Class-balanced, augmented batches of the training subjects."""
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
