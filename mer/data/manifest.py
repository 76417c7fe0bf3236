"""The Sample table every dataset reader returns, and its CSV form (`manifest.csv`).

Columns: dataset, subject, sample_id, kind (micro|macro), emotion (original label), label
(negative|positive|surprise), frames (list of frame paths, numerically sorted), onset, apex, offset
(indices into `frames`; apex may be missing → <NA>), apex_source (where the apex comes from: `label` the dataset's
annotation, macro images included; `middle` the middle frame of onset..offset; `spotted` the optical-flow spotter of
`mer prepare`, so apex is <NA> in manifest.csv and filled in prepared.csv). `subject` is prefixed with the dataset
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

COLUMNS = [
    "dataset",
    "subject",
    "sample_id",
    "kind",
    "emotion",
    "label",
    "frames",
    "onset",
    "apex",
    "offset",
    "apex_source",
]
# Columns only some readers fill (kept when any row has them): the clip's frame rate (DFME: per clip), the
# dataset's own split (DFME train / testA / testB: the official protocol), the action units ('4+11', see parse_aus).
OPTIONAL_COLUMNS = ["fps", "split", "aus"]
REQUIRED_COLUMNS = COLUMNS[:-1]  # manifests written before apex_source existed still load (see default_apex_source)
APEX_SOURCES = ("label", "spotted", "middle")
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


def default_apex_source(dataset: str, apex: Any) -> str:
    """apex_source of a row that does not state it (older manifests): empty apex → spotted, SMIC → middle, else label.

    SMIC has no apex annotation, so an SMIC apex was always the middle frame; any other apex came from a label.
    """
    if apex is None or apex is pd.NA or (isinstance(apex, float) and pd.isna(apex)):
        return "spotted"
    return "middle" if dataset == "smic" else "label"


def _fill_apex_source(df: pd.DataFrame) -> None:
    given = df["apex_source"] if "apex_source" in df else pd.Series([None] * len(df), index=df.index, dtype=object)
    df["apex_source"] = [
        str(s) if isinstance(s, str) and s else default_apex_source(d, a)
        for s, d, a in zip(given, df["dataset"], df["apex"], strict=True)
    ]
    bad = sorted(set(df["apex_source"]) - set(APEX_SOURCES))
    if bad:
        raise DataError(f"apex_source {bad} unknown; one of: {', '.join(APEX_SOURCES)}")


def make_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A manifest DataFrame from row dicts, with the contract's columns and dtypes (indices nullable Int64).

    A row without `apex_source` gets `default_apex_source`; `OPTIONAL_COLUMNS` are kept when any row has them.
    """
    columns = COLUMNS + [c for c in OPTIONAL_COLUMNS if any(c in r for r in rows)]
    df = pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame({c: [] for c in COLUMNS})
    for col in INDEX_COLUMNS:
        df[col] = pd.array(df[col].tolist(), dtype="Int64") if len(df) else pd.array([], dtype="Int64")
    for col in ("dataset", "subject", "sample_id", "kind", "emotion", "label"):
        df[col] = df[col].astype(str) if len(df) else df[col].astype(object)
    if len(df):
        _fill_apex_source(df)
    else:
        df["apex_source"] = df["apex_source"].astype(object)
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
    """Read a manifest CSV written by `save_manifest` (extra columns, e.g. `crop`, are kept).

    A manifest from before `apex_source` existed gets the column from `default_apex_source`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest not found: {path} (run `mer prepare` first; it writes manifest.csv)")
    df = pd.read_csv(path, dtype={"subject": str, "sample_id": str, "emotion": str})
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: not a mer manifest (missing columns: {', '.join(missing)})")
    df["frames"] = [json.loads(f) for f in df["frames"]]
    for col in INDEX_COLUMNS:
        df[col] = df[col].astype("Int64")
    if "apex_source" not in df.columns:
        df.insert(df.columns.get_loc("offset") + 1, "apex_source", None)
    _fill_apex_source(df)
    return df


def counts(df: pd.DataFrame) -> pd.DataFrame:
    """Samples per dataset × label (with totals), for printing after prepare."""
    if df.empty:
        return pd.DataFrame()
    table = pd.crosstab(df["dataset"], df["label"], margins=True, margins_name="total")
    subjects = df.groupby("dataset")["subject"].nunique()
    table["subjects"] = subjects.reindex(table.index).fillna(df["subject"].nunique()).astype(int)
    return table
