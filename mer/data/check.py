"""`mer datasets check`: what a user's dataset folders hold, beside the published counts, before any face detection.

Runs each dataset's reader (no images are decoded, no face is detected, torch is never imported) and counts, per
dataset: rows of its label file, sample folders on disk, rows whose frames are missing, rows without an apex label,
rows whose emotion is outside the 3-class scheme, subjects; with a MEGC2019 list also the listed samples found and
missing. Beside each count stands the published one from `mer/data/official_counts.csv` (`mer.data.official`).
Generic over readers: a reader counts through its rows and report reasons (`_common.NO_FOLDER`, ...), and a dataset
with a label file adds its `label_file` function to `mer.data.datasets.LABEL_FILES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mer.data.datasets import KIND, LABEL_FILES, READERS, canonical, reader_options
from mer.data.datasets._common import KEPT_REMARKS, NO_FOLDER, NO_IMAGES, images
from mer.data.labels import is_label_reason
from mer.data.megc import MEGC_DATASETS, MegcList, list_key, megc_list, sample_key
from mer.data.official import official
from mer.errors import DataError

# The counted quantities (keys of `official_counts.csv`) and their column titles, in table order.
QUANTITIES: dict[str, str] = {
    "sheet_rows": "sheet rows",
    "samples_on_disk": "samples on disk",
    "frames_missing": "frames missing",
    "apex_less": "apex-less",
    "outside_scheme": "outside classes",
    "subjects": "subjects",
}
SHOW_MISSING = 5  # listed samples named per dataset when missing


@dataclass
class DatasetCheck:
    """What one dataset root holds: its label file and version, the counts (None: not applicable) and, with a list,
    the listed samples found and the names of the missing ones."""

    dataset: str
    root: Path
    label_file: str
    version: str
    counts: dict[str, int | None]
    listed: int | None = None
    found: int | None = None
    missing: list[str] = field(default_factory=list)
    expected: int | None = None  # the published number of listed samples for this list variant

    def official(self, quantity: str) -> int | None:
        """The published count of a quantity, or None."""
        hit = official(self.dataset, quantity)
        return hit.value if hit else None

    def differences(self) -> list[tuple[str, int, int]]:
        """(quantity, found, published) for every count that differs from its published value."""
        out = []
        for quantity, value in self.counts.items():
            published = self.official(quantity)
            if value is not None and published is not None and value != published:
                out.append((quantity, value, published))
        if self.found is not None and self.expected is not None and self.found != self.expected:
            out.append(("megc_found", self.found, self.expected))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every count with its published value and source."""
        counts = {}
        for quantity, value in self.counts.items():
            hit = official(self.dataset, quantity)
            counts[quantity] = {
                "found": value,
                "official": hit.value if hit else None,
                "source": hit.source if hit else None,
            }
        out: dict[str, Any] = {
            "root": str(self.root),
            "label_file": self.label_file,
            "version": self.version,
            "counts": counts,
        }
        if self.listed is not None:
            out["megc_list"] = {
                "listed": self.listed,
                "found": self.found,
                "expected": self.expected,
                "missing": self.missing,
            }
        return out


@dataclass
class CheckResult:
    """The check of every root given, and the MEGC2019 list when one was."""

    datasets: list[DatasetCheck]
    megc: MegcList | None = None

    def differences(self) -> list[tuple[str, str, int, int]]:
        """(dataset, quantity, found, published) for every count that differs from the published one."""
        return [(d.dataset, *diff) for d in self.datasets for diff in d.differences()]

    def summary(self) -> str:
        """One line: samples on disk per dataset with the published count, frames missing, listed found, and how many
        counts differ (what `mer prepare` prints before it starts)."""
        parts = []
        for d in self.datasets:
            n, published = d.counts.get("samples_on_disk"), d.official("samples_on_disk")
            text = f"{d.dataset} {n if n is not None else '-'}" + (f" (published {published})" if published else "")
            parts.append(text)
        missing = sum(d.counts.get("frames_missing") or 0 for d in self.datasets)
        line = f"datasets check: {', '.join(parts)} samples on disk; {missing} rows with frames missing"
        if self.megc is not None:
            found = sum(d.found or 0 for d in self.datasets if d.found is not None)
            listed = sum(d.listed or 0 for d in self.datasets if d.listed is not None)
            line += f"; MEGC2019 list ({self.megc.variant}): {found} of {listed} listed samples found"
        diffs = len(self.differences())
        return line + (f"; {diffs} count(s) differ from the published ones (mer datasets check)" if diffs else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of the whole check (`mer datasets check --json`)."""
        out: dict[str, Any] = {"datasets": {d.dataset: d.to_dict() for d in self.datasets}}
        if self.megc is not None:
            out["megc_list"] = {
                "path": str(self.megc.path),
                "variant": self.megc.variant,
                "description": self.megc.describe(),
                "samples": len(self.megc.table),
                "subjects": self.megc.subjects,
            }
        out["differences"] = [
            {"dataset": d, "quantity": q, "found": f, "official": o} for d, q, f, o in self.differences()
        ]
        return out


def _reader_options(name: str) -> dict[str, Any]:
    """Options that make a reader report everything without work: rows outside the classes kept (to count them),
    clips without an apex label kept for the spotter (nothing is spotted here)."""
    options = reader_options(name)
    out: dict[str, Any] = {}
    if "keep_unmapped" in options:
        out["keep_unmapped"] = True
    if "missing_apex" in options:
        out["missing_apex"] = "spot"
    return out


def check_dataset(name: str, root: str | Path, listed: MegcList | None = None) -> DatasetCheck:
    """Read one dataset root with its reader (DataError when the root is missing or does not look like the dataset)
    and count what it holds."""
    name = canonical(name)
    rows, skipped = READERS[name](root, **_reader_options(name))
    label = LABEL_FILES[name](root) if name in LABEL_FILES else None
    reasons = [s for s in skipped if not str(s["reason"]).startswith(KEPT_REMARKS)]
    subjects = {r["subject"] for r in rows} | {s["subject"] for s in skipped if s["sample_id"]}
    counts: dict[str, int | None] = {q: None for q in QUANTITIES}
    counts["sheet_rows"] = label.rows if label is not None else None
    if KIND[name] == "micro":
        folders = {Path(r["frames"][0]).parent for r in rows if r["frames"]}
        folders |= {Path(s["path"]) for s in reasons if s["path"] and images(Path(s["path"]))}
        counts["samples_on_disk"] = len(folders)
    counts["frames_missing"] = sum(str(s["reason"]).startswith((NO_FOLDER, NO_IMAGES)) for s in reasons)
    counts["apex_less"] = sum(r.get("apex_source") != "label" for r in rows)
    counts["outside_scheme"] = sum(not r["label"] for r in rows) + sum(is_label_reason(s["reason"]) for s in reasons)
    counts["subjects"] = len(subjects)
    check = DatasetCheck(
        dataset=name,
        root=Path(root).expanduser(),
        label_file=str(label.path) if label is not None else "",
        version=label.version if label is not None else "",
        counts=counts,
    )
    if listed is not None and name in MEGC_DATASETS:
        table = listed.table[listed.table["dataset"] == name]
        on_disk = {sample_key(r["dataset"], r["subject"], r["frames"]) for r in rows}
        missing = [r.filename for r in table.itertuples() if list_key(name, r.subject, r.filename) not in on_disk]
        check.listed, check.found = len(table), len(table) - len(missing)
        check.missing, check.expected = missing, listed.expected(name)
    return check


def check_roots(roots: Mapping[str, str | Path], megc: str | Path | None = None) -> CheckResult:
    """Check every dataset root (`--data NAME=ROOT`), with the MEGC2019 list when given."""
    if not roots:
        raise DataError("no datasets given: pass --data NAME=ROOT (e.g. --data casme2=/data/CASME2)")
    listed = megc_list(megc) if megc is not None else None
    return CheckResult([check_dataset(name, root, listed) for name, root in roots.items()], listed)


def _cell(value: int | None, published: int | None) -> str:
    if value is None:
        return "-"
    if published is None:
        return str(value)
    return f"{value} ({published})" if value == published else f"{value} ({published}) *"


def render(result: CheckResult) -> list[Any]:
    """The check as printable renderables (a rich Table and lines), for `mer datasets check`."""
    from rich.table import Table  # local: only the CLI renders

    table = Table(title="mer datasets check", title_justify="left")
    table.add_column("dataset")
    for title in QUANTITIES.values():
        table.add_column(title, justify="right")
    if result.megc is not None:
        for title in ("listed", "found", "missing"):
            table.add_column(title, justify="right")
    for d in result.datasets:
        cells = [_cell(v, d.official(q)) for q, v in d.counts.items()]
        if result.megc is not None:
            listed = d.listed is not None
            cells += [
                _cell(d.listed, d.expected) if listed else "-",
                _cell(d.found, d.expected) if listed else "-",
                str(len(d.missing)) if listed else "-",
            ]
        table.add_row(d.dataset, *cells)
    lines: list[Any] = [table]
    lines.append("In brackets: the published count (mer/data/official_counts.csv names each source); * differs.")
    for d in result.datasets:
        if d.version:
            lines.append(f"{d.dataset} label file: {d.version}")
        if d.missing:
            more = f" (+{len(d.missing) - SHOW_MISSING} more)" if len(d.missing) > SHOW_MISSING else ""
            lines.append(f"{d.dataset} listed but not found: {', '.join(d.missing[:SHOW_MISSING])}{more}")
    if result.megc is not None:
        lines.append(result.megc.describe())
    return lines
