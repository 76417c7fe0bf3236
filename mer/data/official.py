"""The published counts of each dataset as shipped (`official_counts.csv`, shipped as package data), with sources.

One row per (dataset, quantity): `sheet_rows`, `samples_on_disk`, `subjects`, `frames_missing`, `outside_scheme`,
`apex_less`, and the MEGC2019 list's `megc441` / `megc442` / `megc_subjects` (dataset `all` for the list's totals).
`mer datasets check` prints them beside what it finds; a reader added later adds its rows to the CSV, no code.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import NamedTuple

import pandas as pd

from mer.errors import DataError

COLUMNS = ["dataset", "quantity", "value", "source"]
QUANTITIES = (
    "sheet_rows",
    "samples_on_disk",
    "subjects",
    "frames_missing",
    "apex_less",
    "outside_scheme",
    "megc441",
    "megc442",
    "megc_subjects",
)


class Official(NamedTuple):
    """One published count and where it comes from."""

    value: int
    source: str


@cache
def official_counts() -> pd.DataFrame:
    """The shipped table (columns `COLUMNS`); DataError when a row names an unknown quantity or has no source."""
    with resources.files("mer.data").joinpath("official_counts.csv").open(encoding="utf-8") as fh:
        table = pd.read_csv(fh, dtype={"dataset": str, "quantity": str, "value": int, "source": str})
    bad = sorted(set(table["quantity"]) - set(QUANTITIES))
    if bad or list(table.columns) != COLUMNS or table["source"].isna().any():
        raise DataError(
            f"mer/data/official_counts.csv: unknown quantities {bad} or missing sources (columns {COLUMNS})"
        )
    return table


def official(dataset: str, quantity: str) -> Official | None:
    """The published count of a dataset's quantity, or None when no public source gives one."""
    table = official_counts()
    hit = table[(table["dataset"] == dataset) & (table["quantity"] == quantity)]
    return Official(int(hit.iloc[0]["value"]), str(hit.iloc[0]["source"])) if len(hit) else None
