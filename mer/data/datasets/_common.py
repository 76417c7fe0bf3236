"""Helpers shared by the dataset readers: layout checks, image listing, frame numbers, coding-sheet reading, rows."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from mer import class_schemes
from mer.constraints import CONFIG_CONSTRAINTS, check_value
from mer.data.labels import resolve
from mer.data.manifest import as_int, skip, sort_frames
from mer.errors import DataError
from mer.files import FRAME_SUFFIXES, natural_key

APEX_KEPT = "apex (kept):"  # report remark on a kept clip without an apex label (where its apex comes from)
ERRATUM_FIXED = "erratum (fixed):"  # report remark on a kept row whose coding cells were corrected (CAS(ME)^3 errata)
KEPT_REMARKS = (APEX_KEPT, ERRATUM_FIXED)  # remarks about kept rows (dropped from the report with their row)
# Report reasons `mer datasets check` counts (the readers write them through these constants).
NO_FOLDER = "frame folder not found:"
NO_IMAGES = "no images in"
NO_ROW = "frame folder has no row in"
# The class scheme (`data.classes`) the readers label by; `build_manifest` sets it while its readers run.
SCHEME: ContextVar[str] = ContextVar("mer_class_scheme", default=class_schemes.DEFAULT)
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


def find_one(
    root: Path, patterns: Sequence[str], what: str, dataset: str, expected: str, preferred: Sequence[str] = ()
) -> Path:
    """The file in root matching one of the glob patterns; DataError when none matches, or several match and none of
    them is in `preferred` (file names in order of preference: the versions the published counts come from)."""
    hits = sorted(
        {p for pattern in patterns for p in root.glob(pattern) if p.is_file() and not p.name.startswith(("~$", "."))}
    )
    if not hits:
        raise layout_error(root, dataset, expected)
    if len(hits) > 1:
        by_name = {p.name.lower(): p for p in hits}
        for name in preferred:
            if name.lower() in by_name:
                return by_name[name.lower()]
        names = ", ".join(p.name for p in hits)
        raise DataError(f"{root}: several {what} files ({names}); keep one or pass coding=<file> for {dataset}")
    return hits[0]


XLS_HINT = "pip install 'mer-lightning[xls]' (xlrd) or open it and save it as .xlsx"


def excel_engine(path: Path) -> str:
    """The pandas engine for a sheet: openpyxl for .xlsx, xlrd for an Excel 97-2003 .xls (CAS(ME)^3 ships them);
    DataError naming the `xls` extra when xlrd is not installed."""
    if path.suffix.lower() != ".xls":
        return "openpyxl"
    if importlib.util.find_spec("xlrd") is None:
        raise DataError(f"{path} is an Excel 97-2003 .xls file and xlrd is not installed: {XLS_HINT}")
    return "xlrd"


Columns = Sequence[str | Sequence[str]]  # each required column: one name or its accepted spellings


def _spellings(columns: Columns) -> list[list[str]]:
    return [[c] if isinstance(c, str) else list(c) for c in columns]


def _show(spellings: list[list[str]]) -> str:
    return ", ".join(names[0] + (f" (or {' / '.join(names[1:])})" if len(names) > 1 else "") for names in spellings)


def read_sheet(
    path: Path,
    required: Columns,
    dataset: str,
    scan_rows: int = 40,
    prefer_sheets: Sequence[str] = (),
    sheet: str | int | None = None,
) -> pd.DataFrame:
    """Read a coding spreadsheet whose header row may sit below a preamble (SAMM v2: row 14), in any of its sheets.

    Each required column is a name or a list of accepted spellings, compared by `column_key` (case, spaces,
    underscores and hyphens ignored: 'Onset Frame' = 'OnsetFrame'). The header is the first row (within `scan_rows`)
    holding every required column; sheets named in `prefer_sheets` (SAMM.xlsx's MICRO_ONLY) are searched first,
    then the others in workbook order; `sheet` (a name or index) reads that sheet only. Columns are renamed to the
    key of each column's first spelling (others to their own key; blank headers, e.g. CASME II's `Unnamed` columns,
    to `_col<i>`), fully empty rows dropped.
    `attrs` holds `sheet`, `sheets` (how many the workbook has), `header_row` (1-based, as Excel numbers it) and
    `headers` (the cells as written).
    Cells keep their Python types (object dtype), so a Subject of 6 or '006' is normalized by the reader.
    DataError when no sheet fits: it names the columns expected and the best header row found.
    """
    spellings = _spellings(required)
    keys = [[column_key(n) for n in names] for names in spellings]
    engine = excel_engine(path)
    try:
        book = pd.read_excel(path, header=None, dtype=object, engine=engine, sheet_name=sheet)
        book = book if isinstance(book, dict) else {str(sheet): book}
    except Exception as err:  # openpyxl/zipfile raise many types for a corrupt or non-xlsx file
        raise DataError(f"cannot read {dataset} coding file {path}: {type(err).__name__}: {err}".strip()) from None
    wanted = {s.lower() for s in prefer_sheets}
    order = sorted(book, key=lambda name: (name.lower() not in wanted, list(book).index(name)))
    best: tuple[int, str, int, list[str]] = (-1, "", 0, [])
    for name in order:
        raw = book[name]
        for line in range(min(scan_rows, len(raw))):
            cells = [cell_text(v) for v in raw.iloc[line].tolist()]
            found = [column_key(c) if c else "" for c in cells]
            hits = [next((k for k in alias if k in found), None) for alias in keys]
            score = sum(h is not None for h in hits)
            if score > best[0]:
                best = (score, name, line + 1, [c for c in cells if c])
            if score < len(keys):
                continue
            rename = {hit: alias[0] for hit, alias in zip(hits, keys, strict=True)}
            body = raw.iloc[line + 1 :].copy()
            body.columns = [rename.get(k, k) or f"_col{i}" for i, k in enumerate(found)]
            body = body.loc[:, ~body.columns.duplicated()]
            body = body.dropna(how="all").reset_index(drop=True)
            body.attrs = {
                "sheet": name,
                "sheets": len(book),
                "header_row": line + 1,
                "headers": [c for c in cells if c],
            }
            return body
    where = f"sheet '{best[1]}' row {best[2]} with {', '.join(best[3]) or 'nothing'}" if best[0] >= 0 else "none"
    raise DataError(
        f"{path}: no header row with the columns {_show(spellings)} in the first {scan_rows} rows of any sheet; "
        f"closest: {where} (is this the {dataset} coding file?)"
    )


class LabelFile(NamedTuple):
    """What `mer datasets check` reports about a dataset's label file: its path, version and data rows."""

    path: Path
    version: str
    rows: int | None  # data rows (None: labels come from folders)


def sheet_version(path: Path, table: pd.DataFrame, versions: Sequence[tuple[str, str]], subject_column: str) -> str:
    """The label-file version in words: the first of `versions` (file-name regex, name) that matches, then where
    the header is, how many data rows, blank columns and apex-less cells it has."""
    name = next((label for pattern, label in versions if re.search(pattern, path.name, re.IGNORECASE)), "unknown")
    attrs = table.attrs
    blank = sum(str(c).startswith("_col") for c in table.columns)
    parts = [f"{name}: {path.name}"]
    if attrs.get("sheets", 1) > 1:
        parts.append(f"sheet {attrs['sheet']}")
    parts.append(f"header on row {attrs.get('header_row', '?')}")
    parts.append(f"{sheet_rows(table, subject_column)} rows")
    if blank:
        parts.append(f"{blank} blank-header column(s)")
    return ", ".join(parts)


def coded_label_file(
    sheet: Path, columns: Columns, display: str, versions: Sequence[tuple[str, str]], prefer_sheets: Sequence[str] = ()
) -> LabelFile:
    """The `LabelFile` of a coding sheet read with `columns` (its first column counts the data rows)."""
    table = read_sheet(sheet, columns, display, prefer_sheets=prefer_sheets)
    key = column_key(_spellings(columns)[0][0])
    return LabelFile(sheet, sheet_version(sheet, table, versions, key), sheet_rows(table, key))


def sheet_rows(table: pd.DataFrame, subject_column: str) -> int:
    """Data rows of a coding sheet: rows with a Subject cell (text notes below the table are not rows)."""
    return int(sum(bool(cell_text(v)) for v in table.get(subject_column, pd.Series(dtype=object))))


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


def label_or_skip(
    dataset: str, emotion: Any, skip_row: dict[str, Any], skipped: list[dict[str, Any]], keep_unmapped: bool = False
) -> str | None:
    """The class of an emotion under the current scheme (`SCHEME`), or None after appending `skip_row` with the
    label's reason to `skipped`.

    With `keep_unmapped` an emotion outside the mapping gives "" instead (no report row): the row is kept for a
    MEGC2019 list, whose label then wins (`build_manifest` reports the reason of every such row the list leaves out).
    """
    result = resolve(dataset, emotion, SCHEME.get())
    if result.label is None:
        if keep_unmapped:
            return ""
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
    """ConfigError unless `policy` is one of `MISSING_APEX` (a reader's `missing_apex` option; a config's
    data.missing_apex was checked when it was loaded, this guards a reader called directly)."""
    check_value("missing_apex", policy, CONFIG_CONSTRAINTS["data.missing_apex"], f"{dataset} missing_apex option")


def resolve_apex(
    sample: dict[str, Any], policy: str, why: str, skipped: list[dict[str, Any]], key: str = "data.missing_apex"
) -> dict[str, Any] | None:
    """Give a row without an apex label its apex by `policy`: the row, or None when skipped; its report row goes to
    `skipped` either way (kept rows are reported too, so nothing changes silently).

    spot: apex left None with apex_source "spotted" (`mer prepare` spots it); middle: the middle frame of
    onset..offset; skip: no row. `why` says why there is no label (e.g. "no apex label ('/')"), `key` names the
    config key that chose the policy; the report row is a "apex (kept): ..." remark or the skip reason.
    """
    frames = sample["frames"]
    base = skip(sample["dataset"], sample["subject"], sample["sample_id"], Path(frames[0]).parent if frames else "", "")
    if policy == "skip":
        skipped.append({**base, "reason": f"{why}; skipped ({key}=skip)"})
        return None
    onset, offset = sample["onset"] or 0, sample["offset"] if sample["offset"] is not None else len(frames) - 1
    if policy == "middle" or len(frames) == 1:
        index = onset + middle(offset - onset + 1)
        skipped.append({**base, "reason": f"{APEX_KEPT} {why}; middle frame {index} ({key}={policy})"})
        return {**sample, "apex": index, "apex_source": "middle"}
    skipped.append({**base, "reason": f"{APEX_KEPT} {why}; spotted by optical flow ({key}={policy})"})
    return {**sample, "apex": None, "apex_source": "spotted"}


def coded_sample(
    name: str,
    subject: str,
    sample_id: str,
    emotion: str,
    label: str,
    folder: Path,
    cells: dict[str, Any],
    keys: Sequence[str],
    missing_apex: str,
    skipped: list[dict[str, Any]],
    kind: str = "micro",
) -> dict[str, Any] | None:
    """The manifest row of one coding-sheet row whose frames are in `folder` (`keys[2:5]`: onset, apex, offset
    columns), or None with the reason in `skipped`: no frames, frame numbers that do not fit, or an apex-less row
    that `missing_apex` skips. The coded readers (CASME II-like sheets, DFME, MMEW) share it."""
    base = skip(name, subject, sample_id, folder, "")
    frames = images(folder)
    if not frames:
        what = NO_IMAGES if folder.is_dir() else NO_FOLDER
        skipped.append({**base, "reason": f"{what} {folder}"})
        return None
    idx = coded_indices(frames, cells.get(keys[2]), cells.get(keys[3]), cells.get(keys[4]), folder)
    if isinstance(idx, str):
        skipped.append({**base, "reason": idx})
        return None
    sample = row(name, subject, sample_id, kind, emotion, label, frames, *idx)
    if idx[1] is not None:
        return sample
    return resolve_apex(sample, missing_apex, f"no apex label ({apex_cell(cells.get(keys[3]))})", skipped)


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
    columns: Columns,
    subject_folder: Callable[[Any], str | None],
    sample_id: Callable[[str, str], str],
    missing_apex: str = "spot",
    aus: str | None = None,
    keep_unmapped: bool = False,
    prefer_sheets: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of a micro dataset described by a coding sheet (CASME II, SAMM) over `frames_root/<subject>/<filename>/`.

    `columns` are the sheet's Subject, Filename, Onset, Apex, Offset and Emotion headers in that order (each a name
    or its accepted spellings, see `read_sheet`); `keep_unmapped` keeps rows whose emotion is outside the mapping
    (label "", see `label_or_skip`);
    `subject_folder` turns a Subject cell into its folder name; `sample_id(folder, filename)` names a sample.
    A row whose apex cell holds no label ('/', -1, blank) gets its apex by `missing_apex` (`resolve_apex`).
    Frame folders that no coding row names are reported too, so nothing on disk is left out silently.
    `aus` names the action-unit column, parsed into the rows' `aus` (`parse_aus`; 4DME's `AU4(k)`).
    """
    check_missing_apex(name, missing_apex)
    keys = [column_key(names[0]) for names in _spellings(columns)]
    table = read_sheet(sheet, columns, display, prefer_sheets=prefer_sheets)
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
        label = label_or_skip(name, emotion, base, skipped, keep_unmapped)
        if label is None:
            continue
        sample = coded_sample(name, subject, sid, emotion, label, folder, cells, keys, missing_apex, skipped)
        if sample is None:
            continue
        if aus is not None:
            sample["aus"] = parse_aus(cells.get(column_key(aus)))
        rows.append(sample)

    for sub in subdirs(frames_root):
        for folder in subdirs(sub):
            if folder not in used:
                sid = sample_id(sub.name, folder.name)
                reason = f"{NO_ROW} {sheet.name}"
                skipped.append(skip(name, f"{name}/{sub.name}", sid, folder, reason))
    return rows, skipped
