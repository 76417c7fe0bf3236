"""Shared fixtures (helpers shared by several test files live in tests/helpers.py)."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from tests.helpers import NET_SIZE, make_prepared  # noqa: E402

pytest_plugins = ["tests.services"]  # real PostgreSQL / Slurm / W&B files for tests/test_services_*.py


@pytest.fixture
def prepared(tmp_path: Path) -> pd.DataFrame:
    """Four macro subjects and six micro subjects over three datasets."""
    subjects = {f"ckplus/S{i:03d}": "macro" for i in range(4)}
    subjects.update({f"{d}/s{i}": "micro" for d in ("casme2", "samm", "smic") for i in range(2)})
    return make_prepared(tmp_path, subjects)


@pytest.fixture(scope="module")
def net():  # noqa: ANN201 - an untrained mobilevit_xxs in eval mode (inference and export tests)
    import torch

    from mer.models.backbones import MERNet

    torch.manual_seed(0)
    return MERNet("mobilevit_xxs", 1, 3, 0.5, NET_SIZE).eval()
