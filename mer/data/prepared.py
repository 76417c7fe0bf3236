"""Reading a `mer prepare` folder back: `prepared.csv` with absolute crop paths, checked before any training starts.

Here, in the data package, so training, LOSO and sweeps read prepared data without importing `mer.prepare` (and
the face pipeline behind it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mer import class_schemes
from mer.data.manifest import load_manifest
from mer.errors import DataError

REBUILD_HINT = "re-run `mer prepare` to rebuild the crop cache"


ARRAY_COLUMNS = ("motion", "features")  # optional cached arrays: motion inputs (data.input), LBP-TOP features


def absolute_crops(prepared: pd.DataFrame, folder: str | Path) -> pd.DataFrame:
    """A copy of prepared rows with `crop` (and `motion` / `features`, where present) made absolute; empty stays."""
    df = prepared.copy()
    df["crop"] = [str((Path(folder) / c).resolve()) for c in df["crop"]]
    for col in ARRAY_COLUMNS:
        if col in df:
            df[col] = [str((Path(folder) / c).resolve()) if isinstance(c, str) and c else "" for c in df[col]]
    return df


def load_prepared(prepared_dir: str | Path) -> pd.DataFrame:
    """Read `prepared.csv` from a `mer prepare` folder with `crop` as absolute paths; DataError when not prepared."""
    folder = Path(prepared_dir)
    path = folder / "prepared.csv"
    if not path.is_file():
        hint = " (only manifest.csv: it was run with --manifest-only)" if (folder / "manifest.csv").is_file() else ""
        raise DataError(f"{path} not found{hint}: run `mer prepare --out {folder}` first (it writes the aligned crops)")
    df = load_manifest(path)
    if "crop" not in df.columns:
        raise DataError(f"{path}: no 'crop' column; it is not a prepared.csv written by `mer prepare`")
    df = absolute_crops(df, folder)
    df["face_note"] = df["face_note"].fillna("").astype(str) if "face_note" in df else ""
    for col in ("motion_note", "features_note", "motion_input"):
        if col in df:
            df[col] = df[col].fillna("").astype(str)
    arrays = [c for col in ARRAY_COLUMNS if col in df for c in df[col] if c]
    missing = [c for c in df["crop"] if not os.path.isfile(c)]
    what = "crop"
    if not missing:
        missing, what = [c for c in arrays if not os.path.isfile(c)], "cached motion/feature"
    if missing:
        raise DataError(
            f"{path}: {len(missing)} {what} file(s) missing (first: {missing[0]}); re-run `mer prepare` to rebuild them"
        )
    return df


def check_scheme(prepared_dir: str | Path, classes: Any) -> None:
    """DataError when `mer prepare` wrote the folder under another class scheme than `classes` (data.classes): its
    labels (and the samples it kept, e.g. `others`) belong to that scheme. A folder without config.yaml passes."""
    path = Path(prepared_dir) / "config.yaml"
    if not path.is_file():
        return
    try:
        written = ((yaml.safe_load(path.read_text()) or {}).get("data") or {}).get("classes")
        before = class_schemes.scheme_of(written if written is not None else class_schemes.DEFAULT)
    except (yaml.YAMLError, ValueError, AttributeError):
        return  # an unreadable config is load_prepared's business, not the scheme's
    now = class_schemes.scheme_of(classes)
    if before != now:
        raise DataError(
            f"{Path(prepared_dir)} was prepared with data.classes={before}, this run uses {now}: run `mer prepare` "
            f"with data.classes={now} into another data.prepared folder"
        )
