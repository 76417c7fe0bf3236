"""Selection by the official MEGC2019 list (`combined_3class_gt.csv`): the 442 composite samples of 68 subjects.

The list has rows `dataset, subject, filename, label` (no header in the official file; a header row is
tolerated) with label 0 negative / 1 positive / 2 surprise, e.g. `casme2,sub01,EP02_01f,1`, `samm,6,006_1_2,0`
or `smic,s01,s01_ne_01,0`. Two variants circulate: the official `combined_3class_gt-2.csv` (441 rows, LF, a blank
`,,,` line after each row) and the 442-row `combined_3class_gt.csv` (CRLF; adds samm 032_3_1) that HTNet and
CausalNet use; both read the same. Subjects and sample names are compared after one normalization
(`mer.data.names`: CASME II 1 / 01 / sub01 → sub01, SAMM 6 / 006 → 006, SMIC 1 / s01 / s1 → s1, and in sample
names SMIC s01_ne_01 → s1_ne_01, SAMM 6_1_2 → 006_1_2, case ignored), so the list matches the folders as shipped.
A listed sample is kept with the list's label even when its coding-sheet emotion is outside the 3-class mapping.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mer.config import CLASSES
from mer.data.manifest import as_int, make_report, skip
from mer.data.names import dataset_key, normalize_sample, normalize_subject
from mer.data.official import official
from mer.errors import DataError

MEGC_DATASETS = ("casme2", "samm", "smic")
LIST_COLUMNS = ["dataset", "subject", "filename", "label"]
LABEL_FROM_LIST = "label (list):"  # report remark on a listed sample kept with the list's label
NOT_LISTED = "not in the MEGC2019 list"
_FORMAT = "rows 'dataset,subject,filename,label' with label 0 negative / 1 positive / 2 surprise"
# The one sample the 442-row variant adds to the official 441-row file (normalized key).
EXTRA_442 = ("samm", "032", "032_3_1")
VARIANTS = {
    "442": "the 442-sample variant (combined_3class_gt.csv of HTNet and CausalNet: the official list + samm 032_3_1)",
    "441": "the official 441-sample list (combined_3class_gt-2.csv from the MEGC2019 site)",
}


def _parse_label(value: object) -> str | None:
    text = str(value).strip().lower()
    number = as_int(text)
    if number is not None:
        return CLASSES[number] if 0 <= number < len(CLASSES) else None
    return text if text in CLASSES else None


def read_megc_list(path: str | Path) -> pd.DataFrame:
    """The list as a table: dataset (casme2|samm|smic), subject (normalized), filename (as written), label (class
    name). Blank lines (`,,,` in the official file) and CRLF line ends are accepted."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"MEGC2019 list not found: {path} (expected combined_3class_gt.csv: {_FORMAT})")
    try:
        raw = pd.read_csv(path, header=None, dtype=str, skipinitialspace=True, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read MEGC2019 list {path}: {err} (expected {_FORMAT})") from None
    if raw.shape[1] < 4:
        raise DataError(f"{path}: {raw.shape[1]} column(s); expected {_FORMAT}")
    raw = raw.iloc[:, :4]
    raw.columns = LIST_COLUMNS
    if len(raw) and _parse_label(raw.iloc[0]["label"]) is None:
        raw = raw.iloc[1:]  # a header row
    out = []
    for line, cells in enumerate(raw.to_dict("records"), start=1):
        if not any(str(v).strip() for v in cells.values()):
            continue
        dataset = dataset_key(cells["dataset"])
        label = _parse_label(cells["label"])
        if dataset not in MEGC_DATASETS or label is None:
            raise DataError(f"{path}: row {line} {list(cells.values())} is not a MEGC2019 entry (expected {_FORMAT})")
        subject = normalize_subject(dataset, cells["subject"])
        out.append({"dataset": dataset, "subject": subject, "filename": str(cells["filename"]).strip(), "label": label})
    table = pd.DataFrame(out, columns=LIST_COLUMNS).drop_duplicates(["dataset", "subject", "filename"])
    return table.reset_index(drop=True)


def list_key(dataset: str, subject: object, sample: object) -> tuple[str, str, str]:
    """(dataset, normalized subject, normalized sample name): how list entries and rows are matched."""
    return dataset, normalize_subject(dataset, subject), normalize_sample(dataset, sample)


def sample_key(dataset: str, subject: str, frames: list[str]) -> tuple[str, str, str]:
    """The `list_key` of a reader row: its sample is the name of its frame folder."""
    folder = Path(frames[0]).parent.name if len(frames) else ""
    return list_key(dataset, subject, folder)


@dataclass(frozen=True)
class MegcList:
    """A MEGC2019 list as read: its file, which variant it is, and its samples and subjects per dataset."""

    path: Path
    table: pd.DataFrame
    variant: str  # "442", "441" or "custom"

    @property
    def counts(self) -> dict[str, int]:
        """Listed samples per dataset."""
        return {d: int((self.table["dataset"] == d).sum()) for d in MEGC_DATASETS}

    @property
    def subjects(self) -> int:
        """Listed subjects (over the three datasets)."""
        return len(set(zip(self.table["dataset"], self.table["subject"], strict=True)))

    def expected(self, dataset: str) -> int | None:
        """The published number of `dataset` samples in this variant (None for a custom list)."""
        hit = official(dataset, f"megc{self.variant}") if self.variant in VARIANTS else None
        return hit.value if hit else None

    def describe(self) -> str:
        """One line: the file, the variant, and the samples it lists per dataset against the published counts."""
        what = VARIANTS.get(self.variant, f"a custom list of {len(self.table)} samples (neither published variant)")
        per = ", ".join(
            f"{d} {n}" + (f" (expected {e})" if (e := self.expected(d)) is not None and e != n else "")
            for d, n in self.counts.items()
        )
        size = f"{len(self.table)} samples of {self.subjects} subjects"
        return f"MEGC2019 list {self.path.name}: {what}; expects {size}: {per}"


def megc_list(path: str | Path) -> MegcList:
    """Read a MEGC2019 list and tell its variant: 442 rows with samm 032_3_1, 441 rows without it, or custom."""
    table = read_megc_list(path)
    keys = {list_key(r.dataset, r.subject, r.filename) for r in table.itertuples()}
    variant = "custom"
    if len(table) == 442 and EXTRA_442 in keys:
        variant = "442"
    elif len(table) == 441 and EXTRA_442 not in keys:
        variant = "441"
    counts = {d: int((table["dataset"] == d).sum()) for d in MEGC_DATASETS}
    if variant != "custom" and any(counts[d] != official(d, f"megc{variant}").value for d in MEGC_DATASETS):
        variant = "custom"
    return MegcList(Path(path).expanduser(), table, variant)


def select_megc(
    manifest: pd.DataFrame,
    list_path: str | Path,
    datasets: Iterable[str] | None = None,
    unmapped: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the CASME II / SAMM / SMIC rows the MEGC2019 list names (other datasets' rows pass through).

    `unmapped` holds reader rows whose emotion is outside the 3-class mapping (label empty): a listed one is kept
    with the list's label, the others are dropped (their readers' reasons are reported by the caller).
    Report (report columns): manifest rows of those datasets not in the list ("not in the MEGC2019 list"),
    list entries with no row (for the datasets read: `datasets`, default those in the manifest), and every listed
    row whose label comes from the list because the sheet's emotion maps elsewhere or nowhere ("label (list): ...";
    the row is kept with the list's label, so results compare with published ones).
    """
    listed = read_megc_list(list_path)
    wanted = {list_key(r.dataset, r.subject, r.filename): r.label for r in listed.itertuples()}
    spelled = {list_key(r.dataset, r.subject, r.filename): r.filename for r in listed.itertuples()}
    present = set(datasets) if datasets is not None else set(manifest["dataset"])
    extra = unmapped if unmapped is not None and len(unmapped) else None
    candidates = pd.concat([manifest, extra], ignore_index=True) if extra is not None else manifest
    keep: list[bool] = []
    labels: list[str] = []
    found: set[tuple[str, str, str]] = set()
    report = []
    for r in candidates.itertuples(index=False):
        if r.dataset not in MEGC_DATASETS:
            keep.append(bool(r.label))
            labels.append(r.label)
            continue
        key = sample_key(r.dataset, r.subject, list(r.frames))
        path = str(Path(r.frames[0]).parent) if len(r.frames) else ""
        if key not in wanted:
            keep.append(False)
            labels.append(r.label)
            if r.label:  # an unmapped row keeps its reader's reason
                report.append(skip(r.dataset, r.subject, r.sample_id, path, NOT_LISTED))
            continue
        found.add(key)
        keep.append(True)
        labels.append(wanted[key])
        if wanted[key] != r.label:
            sheet = f"emotion '{r.emotion}' " + (f"maps to {r.label}" if r.label else "is outside the 3-class mapping")
            reason = f"{LABEL_FROM_LIST} MEGC2019 list says {wanted[key]}, {sheet}; kept with the list's label"
            report.append(skip(r.dataset, r.subject, r.sample_id, path, reason))
    for key, label in wanted.items():
        dataset, subject, _ = key
        if key not in found and dataset in present:
            reason = f"in the MEGC2019 list ({label}) but not in the manifest: missing from the root or skipped above"
            report.append(skip(dataset, f"{dataset}/{subject}", spelled[key], str(list_path), reason))
    selected = candidates.copy()
    selected["label"] = labels
    selected = selected[pd.Series(keep, index=selected.index, dtype=bool)].reset_index(drop=True)
    return selected, make_report(report)


def selection_summary(listed: MegcList, manifest: pd.DataFrame, report: pd.DataFrame) -> str:
    """One line after a selection: listed samples found per dataset, and how many take the list's label."""
    datasets = [d for d in MEGC_DATASETS if d in set(manifest["dataset"]) or d in set(report["dataset"])]
    per = ", ".join(f"{d} {int((manifest['dataset'] == d).sum())}/{listed.counts[d]}" for d in datasets)
    found = int(manifest["dataset"].isin(MEGC_DATASETS).sum())
    relabelled = int(report["reason"].astype(str).str.startswith(LABEL_FROM_LIST).sum())
    return (
        f"MEGC2019 list: {found} of {len(listed.table)} listed samples found ({per}); {relabelled} take the list's "
        f"label over the coding sheet's ('{LABEL_FROM_LIST}' rows in prepare_report.csv)"
    )
