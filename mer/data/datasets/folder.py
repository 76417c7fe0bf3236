"""Generic reader for a user's own data: `root/<label>/<subject>/<sample>/*.png|jpg`.

`<label>` is negative, positive or surprise. As `folder` (micro) each sample folder is one clip: onset 0,
offset last, apex the 0-based frame index written in `<sample>/apex.txt`; a clip without apex.txt has no apex label
and gets its apex by `missing_apex` (config `data.missing_apex`): "spot" (default) leaves apex <NA> for `mer
prepare`'s optical-flow spotter, "middle" takes the middle frame, "skip" reports the clip instead. As
`folder_macro` every image is one macro row, whether it sits in a sample folder or directly in the subject folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mer.data.datasets._common import (
    SCHEME,
    as_root,
    check_missing_apex,
    images,
    label_or_skip,
    layout_error,
    macro_rows,
    resolve_apex,
    row,
    subdirs,
)
from mer.data.labels import table
from mer.data.manifest import as_int, skip
from mer.errors import DataError

NAME = "folder"
MACRO_NAME = "folder_macro"
EXPECTED = "<root>/<negative|positive|surprise>/<subject>/<sample>/frame001.png"
APEX_FILE = "apex.txt"


def read_apex(sample: Path, n_frames: int) -> int | str | None:
    """The frame index in `sample/apex.txt` (None when there is no file), or a skip reason when it is unusable."""
    path = sample / APEX_FILE
    if not path.is_file():
        return None
    text = path.read_text(errors="replace").strip()
    index = as_int(text.split()[0]) if text else None
    if index is None or not 0 <= index < n_frames:
        return f"{path}: {text[:20]!r} is not a frame index in 0..{n_frames - 1}"
    return index


def read(
    root: str | Path, kind: str = "micro", missing_apex: str = "spot", name: str | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Manifest rows and skipped rows of a `root/<label>/<subject>/<sample>/` tree (`kind` micro or macro).

    `missing_apex` (spot | middle | skip) handles micro clips without `apex.txt`.
    """
    if kind not in ("micro", "macro"):
        raise DataError(f"folder reader kind={kind!r}: use micro or macro")
    check_missing_apex(NAME, missing_apex)
    dataset = name or (NAME if kind == "micro" else MACRO_NAME)
    root = as_root(root, dataset, EXPECTED)
    label_dirs = subdirs(root)
    if not any(d.name.lower() in table(NAME, SCHEME.get()) for d in label_dirs):
        raise layout_error(root, f"a {dataset} dataset", EXPECTED)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for label_dir in label_dirs:
        if images(label_dir):
            reason = f"images directly in {label_dir}; expected {EXPECTED}"
            skipped.append(skip(dataset, "", label_dir.name, label_dir, reason))
        for sub in subdirs(label_dir):
            subject = f"{dataset}/{sub.name}"
            base = skip(dataset, subject, "", sub, "")
            label = label_or_skip(NAME, label_dir.name, base, skipped)
            if label is None:
                continue
            loose = images(sub)
            if loose and kind == "macro":
                rows += macro_rows(dataset, subject, label_dir.name, label, loose, id_prefix=f"{sub.name}_")
            elif loose:
                reason = f"{len(loose)} images directly in {sub}; micro samples need one folder per clip"
                skipped.append({**base, "reason": reason})
            for sample in subdirs(sub):
                sample_id = f"{sub.name}_{sample.name}"
                frames = images(sample)
                if not frames:
                    skipped.append(skip(dataset, subject, sample_id, sample, f"no images in {sample}"))
                    continue
                if kind == "macro":
                    rows += macro_rows(
                        dataset, subject, label_dir.name, label, frames, id_prefix=f"{sample_id}_", onset=frames[0]
                    )
                    continue
                apex_i = read_apex(sample, len(frames))
                if isinstance(apex_i, str):
                    skipped.append(skip(dataset, subject, sample_id, sample, apex_i))
                    continue
                sample = row(
                    dataset, subject, sample_id, kind, label_dir.name, label, frames, 0, apex_i, len(frames) - 1
                )
                if apex_i is None:
                    sample = resolve_apex(sample, missing_apex, f"no apex label (no {APEX_FILE})", skipped)
                    if sample is None:
                        continue
                rows.append(sample)
    return rows, skipped


def read_macro(root: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The `folder_macro` reader: the same tree, one macro row per image."""
    return read(root, kind="macro")
