"""Helpers shared by the dataset readers: layout checks, image listing, frame numbers, coding-sheet reading, rows."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mer.data.labels import resolve
from mer.data.manifest import as_int, skip, sort_frames
from mer.errors import DataError
from mer.files import FRAME_SUFFIXES, natural_key

MISSING_APEX = ("spot", "middle", "skip")  # what a reader does with a clip that has no apex label
APEX_KEPT = "apex (kept):"  # report remark on a kept clip without an apex label (where its apex comes from)
ERRATUM_FIXED = "erratum (fixed):"  # report remark on a kept row whose coding cells were corrected (CAS(ME)^3 errata)
KEPT_REMARKS = (APEX_KEPT, ERRATUM_FIXED)  # remarks about kept rows (dropped from the report with their row)
_DIGITS = re.compile(r"\d+")
_KEY = re.compile(r"[\s_\-]+")


def as_root(root: str | Path, dataset: str, expected: str) -> Path:
    """The root as an absolute Path; DataError naming the expected layout when it is not a folder."""
    path = Path(root).expanduser()
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "not found"
        raise DataError(f"{dataset} root {what}: {path} (expected {expected})")
    return path.absolute()


def found(folder: Path, limit: int = 6) -> str:
    """A short listing of a folder for error messages: 'a/, b.txt, c/ (+12 more)' or 'an empty folder'."""
    try:
        entries = sorted(folder.iterdir(), key=natural_key)
    except OSError as err:
        return f"an unreadable folder ({err.strerror})"
    if not entries:
        return "an empty folder"
    names = [e.name + ("/" if e.is_dir() else "") for e in entries[:limit]]
    more = f" (+{len(entries) - limit} more)" if len(entries) > limit else ""
    return ", ".join(names) + more


def layout_error(root: Path, dataset: str, expected: str, look_in: Path | None = None) -> DataError:
    """The one-line error for a root that does not look like the dataset: what was expected, what is there."""
    where = look_in or root
    return DataError(f"{root} does not look like {dataset}: expected {expected}; found in {where}: {found(where)}")


def is_image(path: str | Path) -> bool:
    """True for an image file name (jpg/jpeg/png/bmp/tif/tiff, any case); hidden files (._x.jpg) excluded."""
    name = Path(path).name
    return Path(name).suffix.lower() in FRAME_SUFFIXES and not name.startswith(".")


def images(folder: Path) -> list[str]:
    """Image files directly in a folder, numerically sorted (img2 before img10), as strings ([] if no folder)."""
    try:
        with os.scandir(folder) as entries:
            return sort_frames(str(folder / e.name) for e in entries if is_image(e.name) and e.is_file())
    except OSError:
        return []


def subdirs(folder: Path) -> list[Path]:
    """Sub-folders of a folder in natural order, hidden ones excluded ([] if no folder)."""
    try:
        with os.scandir(folder) as entries:
            dirs = [folder / e.name for e in entries if not e.name.startswith(".") and e.is_dir()]
    except OSError:
        return []
    return sorted(dirs, key=natural_key)


def frame_number(path: str | Path) -> int | None:
    """The frame number in a file name: the last digit run of the stem (img46 → 46, 006_05562 → 5562)."""
    digits = _DIGITS.findall(Path(path).stem)
    return int(digits[-1]) if digits else None


def cell_text(value: Any) -> str:
    """A spreadsheet cell as stripped text ('' for blanks; 6.0 → '6')."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return ""
    number = as_int(value)
    if number is not None and not isinstance(value, str):
        return str(number)
    return str(value).strip()


_AU_SPLIT = re.compile(r"[+,，;/\s]+|\bor\b", re.IGNORECASE)


def parse_aus(value: Any) -> str:
    """Action-unit numbers of a coding cell, '+'-joined in order: '4+L9+14' → '4+9+14', '4，11' (a Chinese comma,
    CAS(ME)^3 Part C) → '4+11', 'AU4(k)+AU12' (4DME) → '4+12', '(R6 or R12)+R15' → '6+12+15'; '?' or blank → ''."""
    out: list[str] = []
    for token in _AU_SPLIT.split(cell_text(value)):
        digits = _DIGITS.search(token or "")
        if digits and str(int(digits.group())) not in out:
            out.append(str(int(digits.group())))
    return "+".join(out)


def column_key(name: Any) -> str:
    """Header cell → comparison key: 'Onset Frame', 'OnsetFrame', 'onset_frame' → 'onsetframe'."""
    return _KEY.sub("", str(name).strip().lower())


def find_one(root: Path, patterns: Sequence[str], what: str, dataset: str, expected: str) -> Path:
    """The single file in root matching one of the glob patterns; DataError when none or several match."""
    hits = sorted(
        {p for pattern in patterns for p in root.glob(pattern) if p.is_file() and not p.name.startswith("~$")}
    )
    if not hits:
        raise layout_error(root, dataset, expected)
    if len(hits) > 1:
        names = ", ".join(p.name for p in hits)
        raise DataError(f"{root}: several {what} files ({names}); keep one or pass coding=<file> for {dataset}")
    return hits[0]


def read_sheet(
    path: Path, required: Iterable[str], dataset: str, scan_rows: int = 40, sheet: str | int = 0
) -> pd.DataFrame:
    """Read a coding spreadsheet whose header row may sit below a preamble (SAMM: row 14).

    The header is the first row (within `scan_rows`) holding every required column name (compared by
    `column_key`); columns are renamed to those keys, fully empty rows dropped. Cells keep their Python
    types (object dtype), so a Subject of 6 or '006' is normalized by the reader, not by pandas' guess.
    `sheet` names the worksheet (default: the first).
    """
    required = [column_key(c) for c in required]
    try:
        raw = pd.read_excel(path, sheet_name=sheet, header=None, dtype=object, engine="openpyxl")
    except Exception as err:  # openpyxl/zipfile raise many types for a corrupt or non-xlsx file
        raise DataError(f"cannot read {dataset} coding file {path}: {type(err).__name__}: {err}".strip()) from None
    for row in range(min(scan_rows, len(raw))):
        keys = [column_key(v) if cell_text(v) else "" for v in raw.iloc[row].tolist()]
        if all(k in keys for k in required):
            body = raw.iloc[row + 1 :].copy()
            body.columns = [k or f"_col{i}" for i, k in enumerate(keys)]
            body = body.loc[:, ~body.columns.duplicated()]
            return body.dropna(how="all").reset_index(drop=True)
    raise DataError(
        f"{path}: no header row with the columns {', '.join(required)} in its first {scan_rows} rows "
        f"(is this the {dataset} coding file?)"
    )


def row(
    dataset: str,
    subject: str,
    sample_id: str,
    kind: str,
    emotion: str,
    label: str,
    frames: list[str],
    onset: int | None,
    apex: int | None,
    offset: int | None,
    apex_source: str | None = None,
) -> dict[str, Any]:
    """A manifest-row dict with the contract's columns (apex None → <NA> in the frame).

    `apex_source` defaults to "label" when an apex is given; a row without one gets it from `resolve_apex`.
    """
    return {
        "dataset": dataset,
        "subject": subject,
        "sample_id": sample_id,
        "kind": kind,
        "emotion": emotion,
        "label": label,
        "frames": list(frames),
        "onset": onset,
        "apex": apex,
        "offset": offset,
        "apex_source": apex_source or ("label" if apex is not None else None),
    }


def label_or_skip(dataset: str, emotion: Any, skip_row: dict[str, Any], skipped: list[dict[str, Any]]) -> str | None:
    """The class of an emotion, or None after appending `skip_row` with the label's reason to `skipped`."""
    result = resolve(dataset, emotion)
    if result.label is None:
        skipped.append({**skip_row, "reason": result.reason})
    return result.label


def macro_rows(
    dataset: str,
    subject: str,
    emotion: str,
    label: str,
    frames: Sequence[str],
    id_prefix: str = "",
    onset: str | None = None,
) -> list[dict[str, Any]]:
    """One macro row per image, sample_id = prefix + file stem. With `onset` (the sequence's first, neutral frame:
    what the motion inputs take as onset) frames=[onset, path], onset=0, apex=offset=1; else frames=[path], all 0.
    A row whose image is the onset itself stays single-frame."""
    out = []
    for f in frames:
        pair = [onset, f] if onset is not None and onset != f else [f]
        k = len(pair) - 1
        out.append(row(dataset, subject, id_prefix + Path(f).stem, "macro", emotion, label, pair, 0, k, k))
    return out


def index_of(numbers: Sequence[int | None], frame: int) -> int | None:
    """Index of a frame number in the sample's frame numbers, or None."""
    try:
        return list(numbers).index(frame)
    except ValueError:
        return None


def no_apex_label(apex: Any) -> bool:
    """True for a coding cell that holds no apex: blank, '/' (CASME II), a negative number such as -1 (SAMM), text."""
    number = as_int(apex)
    return number is None or number < 0


def coded_indices(
    frames: Sequence[str], onset: Any, apex: Any, offset: Any, folder: Path
) -> tuple[int, int | None, int] | str:
    """Convert coding-sheet frame numbers (as in the file names) to indices into `frames`, or a skip reason.

    An apex cell without a label (`no_apex_label`) gives apex None; a numbered apex must exist in the folder.
    Onset and offset snap to the first frame at or after the onset / the last at or before the offset; blank or
    invalid ones fall back to the first / last frame.
    """
    numbers = [frame_number(f) for f in frames]
    apex_i: int | None = None
    if not no_apex_label(apex):
        apex_n = as_int(apex)
        apex_i = index_of(numbers, apex_n) if apex_n is not None else None
        if apex_i is None:
            valid = [n for n in numbers if n is not None]
            span = f"{min(valid)}..{max(valid)}" if valid else "none numbered"
            return f"apex frame {apex_n} not found in {folder} (frames {span})"
    onset_n, offset_n = as_int(onset), as_int(offset)
    numbered = [(i, n) for i, n in enumerate(numbers) if n is not None]
    onset_i = next((i for i, n in numbered if onset_n is not None and n >= onset_n), 0)
    offset_i = next((i for i, n in reversed(numbered) if offset_n is not None and n <= offset_n), len(frames) - 1)
    if apex_i is not None:
        onset_i = min(onset_i, apex_i)
        offset_i = max(offset_i, apex_i)
    elif onset_i > offset_i:  # an onset after the offset: the span is unusable, spot or take the middle of all
        onset_i, offset_i = 0, len(frames) - 1
    return onset_i, apex_i, offset_i


def check_missing_apex(dataset: str, policy: str) -> None:
    """DataError unless `policy` is one of `MISSING_APEX` (a reader's `missing_apex` option)."""
    if policy not in MISSING_APEX:
        raise DataError(f"{dataset} missing_apex option {policy!r} unknown; use one of: {', '.join(MISSING_APEX)}")


def resolve_apex(
    sample: dict[str, Any], policy: str, why: str, key: str = "data.missing_apex"
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Give a row without an apex label its apex by `policy`: (the row or None when skipped, its report row).

    spot: apex left None with apex_source "spotted" (`mer prepare` spots it); middle: the middle frame of
    onset..offset; skip: no row. `why` says why there is no label (e.g. "no apex label ('/')"), `key` names the
    config key that chose the policy; the report row is a "apex (kept): ..." remark or the skip reason.
    """
    frames = sample["frames"]
    base = skip(sample["dataset"], sample["subject"], sample["sample_id"], Path(frames[0]).parent if frames else "", "")
    if policy == "skip":
        return None, {**base, "reason": f"{why}; skipped ({key}=skip)"}
    onset, offset = sample["onset"] or 0, sample["offset"] if sample["offset"] is not None else len(frames) - 1
    if policy == "middle" or len(frames) == 1:
        index = onset + middle(offset - onset + 1)
        kept = {**sample, "apex": index, "apex_source": "middle"}
        return kept, {**base, "reason": f"{APEX_KEPT} {why}; middle frame {index} ({key}={policy})"}
    kept = {**sample, "apex": None, "apex_source": "spotted"}
    return kept, {**base, "reason": f"{APEX_KEPT} {why}; spotted by optical flow ({key}={policy})"}


def apex_cell(value: Any) -> str:
    """How a coding cell without an apex is quoted in the report: 'blank' or the cell's text in quotes."""
    text = cell_text(value)
    return repr(text) if text else "blank"


def middle(n: int) -> int:
    """The middle index of n frames (rounded down: 5 → 2, 4 → 1)."""
    return max(n - 1, 0) // 2


def read_coded(
    name: str,
    display: str,
    frames_root: Path,
    sheet: Path,
    columns: Sequence[str],
    subject_folder: Callable[[Any], str | None],
    sample_id: Callable[[str, str], str],
    missing_apex: str = "spot",
    aus: str | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of a micro dataset described by a coding sheet (CASME II, SAMM) over `frames_root/<subject>/<filename>/`.

    `columns` are the sheet's Subject, Filename, Onset, Apex, Offset and Emotion headers in that order;
    `subject_folder` turns a Subject cell into its folder name; `sample_id(folder, filename)` names a sample.
    A row whose apex cell holds no label ('/', -1, blank) gets its apex by `missing_apex` (`resolve_apex`).
    Frame folders that no coding row names are reported too, so nothing on disk is left out silently.
    `aus` names the action-unit column, parsed into the rows' `aus` (`parse_aus`; 4DME's `AU4(k)`).
    """
    check_missing_apex(name, missing_apex)
    keys = [column_key(c) for c in columns]
    table = read_sheet(sheet, columns, display)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    used: set[Path] = set()
    for line, cells in enumerate(table.to_dict("records"), start=1):
        subject_cell, filename = cell_text(cells.get(keys[0])), cell_text(cells.get(keys[1]))
        folder_name = subject_folder(cells.get(keys[0]))
        subject = f"{name}/{folder_name or subject_cell}"
        if folder_name is None or not filename:
            reason = f"coding row {line}: Subject {subject_cell!r} / Filename {filename!r} unusable"
            skipped.append(skip(name, subject, filename, sheet, reason))
            continue
        sid = sample_id(folder_name, filename)
        folder = frames_root / folder_name / filename
        used.add(folder)
        base = skip(name, subject, sid, folder, "")
        emotion = cell_text(cells.get(keys[5]))
        label = label_or_skip(name, emotion, base, skipped)
        if label is None:
            continue
        frames = images(folder)
        if not frames:
            what = "no images in" if folder.is_dir() else "frame folder not found:"
            skipped.append({**base, "reason": f"{what} {folder}"})
            continue
        idx = coded_indices(frames, cells.get(keys[2]), cells.get(keys[3]), cells.get(keys[4]), folder)
        if isinstance(idx, str):
            skipped.append({**base, "reason": idx})
            continue
        sample = row(name, subject, sid, "micro", emotion, label, frames, *idx)
        if aus is not None:
            sample["aus"] = parse_aus(cells.get(column_key(aus)))
        if idx[1] is None:
            kept, remark = resolve_apex(sample, missing_apex, f"no apex label ({apex_cell(cells.get(keys[3]))})")
            skipped.append(remark)
            if kept is None:
                continue
            sample = kept
        rows.append(sample)

    for sub in subdirs(frames_root):
        for folder in subdirs(sub):
            if folder not in used:
                sid = sample_id(sub.name, folder.name)
                reason = f"frame folder has no row in {sheet.name}"
                skipped.append(skip(name, f"{name}/{sub.name}", sid, folder, reason))
    return rows, skipped
