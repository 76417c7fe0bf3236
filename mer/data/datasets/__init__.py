"""Dataset readers: one per dataset, each `read(root, **options) -> (manifest rows, skipped rows)`.

`build_manifest` runs the readers named in `roots` (name → dataset folder), gives clips without an apex label
their apex by one policy (`missing_apex`: spot | middle | skip; SMIC, which has no apex labels at all, by
`smic_apex`), optionally keeps only the samples of the official MEGC2019 list, and returns the manifest table
(`mer.data.manifest.make_frame`) and the report of every skipped sample with its reason (`make_report`), which
`mer prepare` writes as manifest.csv and prepare_report.csv.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mer import class_schemes
from mer.constraints import MISSING_APEX
from mer.data.datasets import casme2, casme3, ckplus, dfme, folder, fourdme, jaffe, mmew, mug, oulu, samm, smic
from mer.data.datasets._common import APEX_KEPT, KEPT_REMARKS, SCHEME, LabelFile
from mer.data.labels import resolve
from mer.data.manifest import make_frame, make_report, skip
from mer.data.megc import MEGC_DATASETS, select_megc
from mer.data.names import dataset_key
from mer.errors import ConfigError, DataError

Rows = list[dict[str, Any]]
Reader = Callable[..., tuple[Rows, Rows]]

READERS: dict[str, Reader] = {
    "casme2": casme2.read,
    "samm": samm.read,
    "smic": smic.read,
    "casme3a": casme3.read,
    "casme3c": casme3.read_c,
    "4dme": fourdme.read,
    "mmew": mmew.read,
    "dfme": dfme.read,
    "ckplus": ckplus.read,
    "oulu": oulu.read,
    "jaffe": jaffe.read,
    "mug": mug.read,
    "folder": folder.read,
    "folder_macro": folder.read_macro,
}
# Where a dataset has a label file: `label_file(root, ...)` → its path, version and data rows (`_common.LabelFile`),
# which `mer datasets check` (`mer.data.check`) reports. Readers without one (folders carry the labels) are not listed.
LABEL_FILES: dict[str, Callable[..., LabelFile]] = {
    "casme2": casme2.label_file,
    "samm": samm.label_file,
    "smic": smic.label_file,
    "casme3a": casme3.label_file,
    "casme3c": casme3.label_file_c,
    "4dme": fourdme.label_file,
    "mmew": mmew.label_file,
    "dfme": dfme.label_file,
}
DATASETS: tuple[str, ...] = tuple(READERS)
KIND: dict[str, str] = {
    "casme2": "micro",
    "samm": "micro",
    "smic": "micro",
    "casme3a": "micro",
    "casme3c": "micro",
    "4dme": "micro",
    "mmew": "micro",
    "dfme": "micro",
    "ckplus": "macro",
    "oulu": "macro",
    "jaffe": "macro",
    "mug": "macro",
    "folder": "micro",
    "folder_macro": "macro",
}
MICRO: tuple[str, ...] = tuple(n for n in DATASETS if KIND[n] == "micro")
MACRO: tuple[str, ...] = tuple(n for n in DATASETS if KIND[n] == "macro")


def canonical(name: str) -> str:
    """The reader name for a dataset name or alias (case-insensitive); DataError listing the known names."""
    key = dataset_key(name)
    if key not in READERS:
        raise DataError(f"unknown dataset '{name}' (known: {', '.join(DATASETS)})")
    return key


def parse_data_args(items: Sequence[str]) -> dict[str, str]:
    """`["casme2=/data/CASME2", ...]` → {"casme2": "/data/CASME2"}; DataError on anything not NAME=ROOT."""
    roots: dict[str, str] = {}
    for item in items:
        name, sep, root = str(item).partition("=")
        name, root = name.strip(), root.strip()
        if not sep or not name or not root:
            raise DataError(f"--data '{item}' is not of the form NAME=ROOT (e.g. --data casme2=/data/CASME2)")
        if name in roots:
            raise DataError(f"--data {name} given twice ({roots[name]!r} and {root!r}); give one root per dataset")
        roots[name] = root
    return roots


def read_dataset(name: str, root: str | Path, **options: Any) -> tuple[Rows, Rows]:
    """Run one reader by (alias-tolerant) name: manifest rows and skipped rows."""
    return READERS[canonical(name)](root, **options)


def _drop_duplicates(rows: Rows, skipped: Rows) -> Rows:
    """Keep the first row of each (dataset, sample_id); report the others (two roots of one dataset, say)."""
    seen: set[tuple[str, str]] = set()
    kept: Rows = []
    for r in rows:
        key = (r["dataset"], r["sample_id"])
        if key in seen:
            path = r["frames"][0] if r["frames"] else ""
            skipped.append(skip(r["dataset"], r["subject"], r["sample_id"], path, "duplicate sample_id in the dataset"))
            continue
        seen.add(key)
        kept.append(r)
    return kept


def reader_options(name: str) -> list[str]:
    """The keyword options a reader takes besides the root (e.g. mug: frames; casme2: coding, frames_dir)."""
    params = list(inspect.signature(READERS[canonical(name)]).parameters.values())[1:]
    return [p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]


def build_manifest(
    roots: Mapping[str, str | Path],
    megc_list: str | Path | None = None,
    smic_apex: str = "middle",
    options: Mapping[str, Mapping[str, Any]] | None = None,
    missing_apex: str = "spot",
    classes: Any = class_schemes.DEFAULT,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read every dataset in `roots` (name → folder) into (manifest, report).

    `missing_apex` (config `data.missing_apex`) is what happens to a clip without an apex label (CASME II "/",
    SAMM -1, a `folder` clip without apex.txt): "spot" keeps it for `mer prepare`'s optical-flow spotter, "middle"
    takes the middle frame, "skip" reports it; `smic_apex` ("middle" or "spot") is that policy for SMIC, which
    has no apex labels at all. Kept ones are listed in the report as "apex (kept): ..." and the manifest's
    `apex_source` says label, spotted or middle.
    `megc_list` (the official `combined_3class_gt.csv`) keeps exactly the listed CASME II / SAMM / SMIC samples
    and reports the rest; a listed sample whose sheet emotion is outside the 3-class mapping is kept with the list's
    label and reported as "label (list): ..."; `options` passes reader options per dataset, e.g. {"mug": {"frames": 6},
    "casme2": {"frames_dir": "Cropped"}} (a `missing_apex` there overrides the policy for that dataset).
    `classes` (config `data.classes`) is the class scheme the labels follow (`mer.class_schemes`); a dataset whose
    labels cannot express it is refused, and the MEGC2019 list, a 3-class list, needs megc3.
    """
    if not roots:
        raise DataError(
            "no datasets given: pass --data NAME=ROOT (names: " + ", ".join(DATASETS) + ") or set data.roots"
        )
    try:
        scheme = class_schemes.scheme_of(classes)
    except ValueError as err:
        raise ConfigError(f"data.classes: {err}") from None
    if megc_list is not None and scheme != class_schemes.DEFAULT:
        raise ConfigError(
            f"data.megc_list selects the MEGC2019 3-class samples; it needs data.classes=megc3, not {scheme}"
        )
    names = {}
    for given in roots:
        name = canonical(given)
        if name in names:
            raise DataError(f"dataset '{name}' given twice ({names[name]!r} and {given!r}); give one root per dataset")
        names[name] = given
    per_dataset: dict[str, dict[str, Any]] = {name: {} for name in names}
    for given, opts in (options or {}).items():
        name = canonical(given)
        unknown = sorted(set(opts) - set(reader_options(name)))
        if unknown:
            allowed = ", ".join(reader_options(name)) or "none"
            raise ConfigError(f"unknown option(s) {', '.join(unknown)} for the {name} reader (options: {allowed})")
        per_dataset.setdefault(name, {}).update(opts)
    for name in names:
        if "missing_apex" in reader_options(name):
            per_dataset[name].setdefault("missing_apex", smic_apex if name == "smic" else missing_apex)
        if megc_list is not None and name in MEGC_DATASETS and "keep_unmapped" in reader_options(name):
            per_dataset[name].setdefault("keep_unmapped", True)  # the list's label wins over the sheet's mapping
    refused = class_schemes.refusal(scheme, list(names))
    if refused:
        raise ConfigError(refused)
    rows: Rows = []
    skipped: Rows = []
    token = SCHEME.set(scheme)
    try:
        for name, given in names.items():
            got, missed = READERS[name](roots[given], **per_dataset[name])
            rows += got
            skipped += missed
    finally:
        SCHEME.reset(token)
    rows = _drop_duplicates(rows, skipped)
    unmapped = [r for r in rows if not r["label"]]
    manifest = make_frame([r for r in rows if r["label"]])
    if megc_list is not None:
        manifest, listed = select_megc(manifest, megc_list, datasets=list(names), unmapped=make_frame(unmapped))
        skipped += listed.to_dict("records")
    kept = set(zip(manifest["dataset"], manifest["sample_id"], strict=True))
    for r in unmapped:  # outside the mapping and not kept by a list: the reason the reader would have given
        if (r["dataset"], r["sample_id"]) not in kept:
            path = Path(r["frames"][0]).parent if r["frames"] else ""
            skipped.append(
                skip(
                    r["dataset"], r["subject"], r["sample_id"], path, resolve(r["dataset"], r["emotion"], scheme).reason
                )
            )
    return manifest, make_report(_remarks_of_kept(skipped, manifest))


def _remarks_of_kept(skipped: Rows, manifest: pd.DataFrame) -> Rows:
    """The report without "apex (kept)" / "erratum (fixed)" remarks about rows that are not in the manifest (e.g.
    not in the MEGC list)."""
    present = set(zip(manifest["dataset"], manifest["sample_id"], strict=True))
    return [s for s in skipped if not s["reason"].startswith(KEPT_REMARKS) or (s["dataset"], s["sample_id"]) in present]


__all__ = [
    "APEX_KEPT",
    "LABEL_FILES",
    "DATASETS",
    "KIND",
    "MACRO",
    "MICRO",
    "MISSING_APEX",
    "READERS",
    "build_manifest",
    "canonical",
    "parse_data_args",
    "read_dataset",
    "reader_options",
]
