"""Shared fixtures: a synthetic prepared set (aligned-crop stand-ins) so training tests need no face detection."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mer.config import Config, load_config  # noqa: E402
from mer.data.manifest import make_frame  # noqa: E402

pytest_plugins = ["tests.services"]  # real PostgreSQL / Slurm / W&B files for tests/test_services_*.py

CLASSES = ("negative", "positive", "surprise")


def make_prepared(
    root: Path, subjects: dict[str, str], per_class: int = 4, size: int = 64, seed: int = 0, skew: bool = False
) -> pd.DataFrame:
    """Write class-patterned grayscale crops and return a prepared table (manifest columns + `crop`).

    `subjects` maps subject id (e.g. 'casme2/sub01') to kind ('micro'|'macro'). Class c draws a bright bar at a
    class-specific place plus noise, so a small network can learn it. `skew` gives class 0 three times the samples.
    """
    rng = np.random.default_rng(seed)
    rows, crops = [], []
    for subject, kind in subjects.items():
        dataset = subject.split("/")[0]
        for ci, label in enumerate(CLASSES):
            n = per_class * (3 if skew and ci == 0 else 1)
            for k in range(n):
                img = rng.normal(110, 20, (size, size)).clip(0, 255)
                y0 = size // 6 + ci * size // 4
                img[y0 : y0 + size // 8, size // 5 : 4 * size // 5] += 90
                img = img.clip(0, 255).astype(np.uint8)
                sample_id = f"{subject.replace('/', '_')}_{label}_{k}"
                path = root / "crops" / f"{sample_id}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path), img)
                rows.append(
                    {
                        "dataset": dataset,
                        "subject": subject,
                        "sample_id": sample_id,
                        "kind": kind,
                        "emotion": label,
                        "label": label,
                        "frames": [str(path)],
                        "onset": 0,
                        "apex": 0,
                        "offset": 0,
                    }  # fmt: skip
                )
                crops.append(str(path))
    df = make_frame(rows)
    df["crop"] = crops
    return df


def tiny_config(*extra: str) -> Config:
    """A config that trains mobilevit_xxs on 64² crops in seconds."""
    items = [
        "model.backbone=mobilevit_xxs",
        "data.image_size=64",
        "face.size=64",
        "augment.max_shift=2",
        "train.threads=2",
        "train.pretrain.epochs=2",
        "train.pretrain.batch_size=16",
        "train.finetune.epochs=2",
        "train.finetune.batch_size=16",
        "train.finetune.unfreeze={0: head, 1: all}",
        "logging.progress_bar=false",
    ]
    items += list(extra)
    return load_config("default", items)


@pytest.fixture
def prepared(tmp_path: Path) -> pd.DataFrame:
    """Four macro subjects and six micro subjects over three datasets."""
    subjects = {f"ckplus/S{i:03d}": "macro" for i in range(4)}
    subjects.update({f"{d}/s{i}": "micro" for d in ("casme2", "samm", "smic") for i in range(2)})
    return make_prepared(tmp_path, subjects)


def write_prepared_dir(root: Path, df: pd.DataFrame) -> Path:
    """Save a table from `make_prepared` as a `mer prepare` folder (prepared.csv with crops relative to it)."""
    from mer.data.manifest import save_manifest

    out = df.copy()
    out["crop"] = [str(Path(c).resolve().relative_to(root.resolve())) for c in out["crop"]]
    out["face_note"] = ""
    save_manifest(out, root / "prepared.csv")
    return root
