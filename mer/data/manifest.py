"""The Sample table every dataset reader returns, and its CSV form (`manifest.csv`).

Columns: dataset, subject, sample_id, kind (micro|macro), emotion (original label), label
(negative|positive|surprise), frames (list of frame paths, numerically sorted), onset, apex, offset
(indices into `frames`; apex may be missing → <NA>). `subject` is prefixed with the dataset
(`casme2/sub01`) so LOSO folds never collide. Skipped rows go to a report table with their reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from mer.errors import DataError
from mer.files import natural_key

COLUMNS = ["dataset", "subject", "sample_id", "kind", "emotion", "label", "frames", "onset", "apex", "offset"]
INDEX_COLUMNS = ["onset", "apex", "offset"]
REPORT_COLUMNS = ["dataset", "subject", "sample_id", "path", "reason"]
KINDS = ("micro", "macro")


def sort_frames(paths: Iterable[str | Path]) -> list[str]:
    """Frame paths in numeric order of their file names (img2 before img10), as strings."""
    return [str(p) for p in sorted(paths, key=lambda p: natural_key(Path(p).name))]


def as_int(value: Any) -> int | None:
    """An integer from a spreadsheet or list cell (6, 6.0, '6', ' 006 '), or None for blanks, '/', text."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def make_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A manifest DataFrame from row dicts, with the contract's columns and dtypes (indices nullable Int64)."""
    df = pd.DataFrame(rows, columns=COLUMNS) if rows else pd.DataFrame({c: [] for c in COLUMNS})
    for col in INDEX_COLUMNS:
        df[col] = pd.array(df[col].tolist(), dtype="Int64") if len(df) else pd.array([], dtype="Int64")
    for col in ("dataset", "subject", "sample_id", "kind", "emotion", "label"):
        df[col] = df[col].astype(str) if len(df) else df[col].astype(object)
    return df.reset_index(drop=True)


def skip(dataset: str, subject: str, sample_id: str, path: str | Path, reason: str) -> dict[str, Any]:
    """A skipped-row dict with the report columns (`REPORT_COLUMNS`)."""
    return {"dataset": dataset, "subject": subject, "sample_id": sample_id, "path": str(path), "reason": reason}


def make_report(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The skipped-rows table: dataset, subject, sample_id, path, reason."""
    return pd.DataFrame(rows, columns=REPORT_COLUMNS)


def save_manifest(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a manifest CSV; `frames` is stored as a JSON list."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = df.copy()
    out["frames"] = [json.dumps(list(f)) for f in out["frames"]]
    out.to_csv(path, index=False)
    return path


def load_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest CSV written by `save_manifest` (extra columns, e.g. `crop`, are kept)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest not found: {path} (run `mer prepare` first; it writes manifest.csv)")
    df = pd.read_csv(path, dtype={"subject": str, "sample_id": str, "emotion": str})
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: not a mer manifest (missing columns: {', '.join(missing)})")
    df["frames"] = [json.loads(f) for f in df["frames"]]
    for col in INDEX_COLUMNS:
        df[col] = df[col].astype("Int64")
    return df


def counts(df: pd.DataFrame) -> pd.DataFrame:
    """Samples per dataset × label (with totals), for printing after prepare."""
    if df.empty:
        return pd.DataFrame()
    table = pd.crosstab(df["dataset"], df["label"], margins=True, margins_name="total")
    subjects = df.groupby("dataset")["subject"].nunique()
    table["subjects"] = subjects.reindex(table.index).fillna(df["subject"].nunique()).astype(int)
    return table
