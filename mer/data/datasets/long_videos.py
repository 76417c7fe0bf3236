"""The long-video readers by name (spotting's datasets): `read_long(name, root, **options) -> (videos, report)`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from mer.data.datasets import casme3_lv, casme_sq, samm_lv
from mer.data.longvideo import LongVideo
from mer.data.manifest import make_report
from mer.errors import DataError

LongReader = Callable[..., tuple[list[LongVideo], list[dict[str, Any]]]]
LONG_READERS: dict[str, LongReader] = {"casme_sq": casme_sq.read, "samm_lv": samm_lv.read, "casme3a_lv": casme3_lv.read}
ALIASES = {"casme^2": "casme_sq", "cas(me)^2": "casme_sq", "cas(me)2": "casme_sq",
           "samm-lv": "samm_lv", "sammlv": "samm_lv", "samm_longvideos": "samm_lv",
           "casme3_lv": "casme3a_lv", "cas(me)^3_lv": "casme3a_lv", "cas(me)3_lv": "casme3a_lv",
           "casme3a-lv": "casme3a_lv", "casme3-lv": "casme3a_lv"}  # fmt: skip
LONG_DATASETS = tuple(LONG_READERS)


def long_name(name: str) -> str:
    """The reader name of a long-video dataset name or alias (case-insensitive); DataError listing the known ones."""
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key not in LONG_READERS:
        raise DataError(f"unknown long-video dataset '{name}' (known: {', '.join(LONG_DATASETS)})")
    return key


def read_long(name: str, root: str | Path, **options: Any) -> tuple[list[LongVideo], pd.DataFrame]:
    """The videos of one long-video dataset root and its report table (skipped and fixed rows with their reasons)."""
    videos, report = LONG_READERS[long_name(name)](root, **options)
    return videos, make_report(report)
