"""`mer prepare`: dataset folders → manifest.csv → one aligned face crop per sample → prepared.csv.

Writes into the output folder (default `data.prepared`):

* ``manifest.csv``        every usable sample the readers found (`mer.data.manifest` contract);
* ``prepare_report.csv``  every skipped sample or frame with its reason (readers' skips, then face problems, which
                          start with ``face:``; a crop kept despite a remark, e.g. several faces, starts with
                          ``face (kept):``, a sample kept without an apex label with ``apex (kept):``);
* ``crops/``              the content-addressed crop cache (`mer.face.cache`); re-runs cost no detection;
* ``prepared.csv``        the manifest rows that got a face, plus ``crop`` (path relative to the folder),
                          ``crop_index`` (which frame was cropped) and ``face_note``;
* ``config.yaml``, ``run_info.json``, and with ``--preview`` ``preview.png`` (aligned crops per dataset and class).

With a motion ``data.input`` (apex_minus_onset, flow, flow_strain) every kept row also gets its onset→apex array
(``onset_index``, ``motion``, ``motion_input``, ``motion_note``; onset and apex aligned with one transform, cached under
``crops/<cfg_hash>/motion/``), and with ``model.backbone=lbptop`` every micro row the LBP-TOP feature of its aligned
onset..offset clip (``features``, ``features_note``). Rows without usable motion follow ``data.flow_fallback``; both
cases are reported (docs/motion.md).

Which frame is cropped: the apex frame when the row has one (micro-expressions; macro rows hold a single frame);
a clip without an apex label gets one by ``data.missing_apex`` (CASME II "/", SAMM -1, folder clips without
apex.txt; SMIC, which has no labels, by ``data.smic_apex``): ``middle`` frame, ``skip``, or ``spot`` (default):
the readers leave apex empty with ``apex_source=spotted``, and here the clip is aligned on its onset frame's face and
the apex spotted (`mer.face.spot.spot_apex`); the spotted index is written to ``apex`` and noted in ``face_note``.
Such clips are listed in prepare_report.csv as ``apex (kept): ...`` remarks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from tqdm.auto import tqdm

from mer.config import MOTION_INPUTS, Config, input_channels
from mer.data import datasets
from mer.data.check import check_roots
from mer.data.datasets import parse_data_args  # noqa: F401 - re-exported: `mer prepare --data NAME=ROOT`
from mer.data.manifest import counts, make_report, save_manifest, skip
from mer.data.megc import megc_list, selection_summary
from mer.data.prepared import REBUILD_HINT, absolute_crops
from mer.errors import DataError, MerError
from mer.face.align import align, region_mask, warp_face
from mer.face.cache import CropCache
from mer.face.detect import FaceDetector
from mer.face.flow import MOTION_VERSION, align_pair, motion_channels, tvl1_available
from mer.face.lbptop import LBPTOP_VERSION, aligned_clip_lbptop, clip_indices, feature_length, min_frames, settings
from mer.face.spot import spot_apex
from mer.files import file_sha256, read_gray, read_image
from mer.provenance import write_run_info
from mer.runtime import configure_torch

SPOT_VERSION = 1  # bump when apex spotting changes (invalidates the stored spotted apexes)


def merged_roots(cfg: Config) -> dict[str, str]:
    """`data.roots` from the config under the readers' canonical names (`--data NAME=ROOT` arrives as data.roots)."""
    return {datasets.canonical(k): str(v) for k, v in (cfg.data.roots or {}).items()}


def run_prepare(cfg: Config, *, manifest_only: bool = False, preview: bool = False) -> Path:
    """The `mer prepare` command: read `data.roots` (with `data.megc_list`), write the manifest and report, then crop
    faces into `data.prepared`; returns that folder."""
    roots = merged_roots(cfg)
    if not roots:
        raise MerError("no datasets given: pass --data NAME=ROOT (e.g. --data casme2=/data/CASME2) or set data.roots")
    out_dir = Path(cfg.data.prepared)
    megc = Path(cfg.data.megc_list) if cfg.data.megc_list else None
    _echo(check_roots(roots, megc).summary())  # `mer datasets check` in one line (and every root checked first)
    manifest, report = datasets.build_manifest(
        roots,
        megc_list=megc,
        smic_apex=cfg.data.smic_apex,
        missing_apex=cfg.data.missing_apex,
        classes=cfg.data.classes,
    )
    if megc is not None:  # which variant of the list, what it expects, and what was found
        listed = megc_list(megc)
        _echo(listed.describe())
        _echo(selection_summary(listed, manifest, report))
    # train.threads also caps MTCNN's threads (oversubscribed cores slow it down many times); torch is set up, and
    # imported at all, only when a crop must be detected: a warm cache needs neither torch nor facenet-pytorch
    f = cfg.face
    setup = partial(configure_torch, cfg.train.threads, cfg.train.tf32)
    detector = FaceDetector(f.device, f.min_face_size, f.batch_size, on_load=setup)
    return prepare_from_manifest(
        cfg, manifest, report, out_dir, manifest_only=manifest_only, preview=preview, detector=detector
    )


def prepare_from_manifest(
    cfg: Config,
    manifest: pd.DataFrame,
    report: pd.DataFrame | None,
    out: Path,
    manifest_only: bool = False,
    preview: bool = False,
    detector: FaceDetector | None = None,
    progress: bool = True,
) -> Path:
    """Everything `mer prepare` does after the readers: write manifest/report/run info, crop faces, preview."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_run_info(cfg, out, trains=False)  # prepare trains nothing: no precision to resolve, no torch import
    save_manifest(manifest, out / "manifest.csv")
    report = report if report is not None else make_report([])
    report.to_csv(out / "prepare_report.csv", index=False)
    _print_counts("manifest", manifest, len(report))
    if manifest_only or manifest.empty:
        stale = [p for p in (out / "prepared.csv", out / "preview.png") if p.is_file()]
        for p in stale:  # they described an earlier manifest (the crop cache stays; re-running is cheap)
            p.unlink()
        gone = f"; removed the earlier {', '.join(p.name for p in stale)}" if stale else ""
        _echo(f"wrote {out / 'manifest.csv'} and {out / 'prepare_report.csv'}{gone}")
        return out
    prepared, face_report, cache = prepare_faces(cfg, manifest, out, detector=detector, progress=progress)
    report = pd.concat([report, face_report], ignore_index=True) if len(face_report) else report
    report.to_csv(out / "prepare_report.csv", index=False)
    save_manifest(prepared, out / "prepared.csv")
    _print_counts("prepared (with a face)", prepared, len(report))
    s = cache.stats
    _echo(
        f"faces: {len(prepared)}/{len(manifest)} samples; cache: {s['hits']} hits, {s['detected']} detected, "
        f"{s['aligned']} aligned, {s['failed']} without a face"
    )
    if preview:
        png = write_preview(absolute_crops(prepared, out), out / "preview.png")
        _echo(f"wrote {png}")
    _echo(f"wrote {out / 'prepared.csv'} and {out / 'prepare_report.csv'}")
    return out


def _skip(row: dict[str, Any], path: str, reason: str) -> dict[str, Any]:
    """A report row (`mer.data.manifest.skip`) for a manifest row."""
    return skip(row["dataset"], row["subject"], row["sample_id"], path, reason)


def _valid_index(value: Any, n: int) -> int | None:
    if value is None or pd.isna(value):
        return None
    i = int(value)
    return i if 0 <= i < n else None


def prepare_faces(
    cfg: Config,
    manifest: pd.DataFrame,
    out: Path,
    detector: FaceDetector | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, CropCache]:
    """Crop one face per manifest row through the cache at `out/crops`: (prepared rows, face report rows, cache)."""
    out = Path(out)
    cache = CropCache(out / "crops", cfg.face, detector=detector, progress=progress)
    rows = manifest.to_dict("records")
    skipped: list[dict[str, Any]] = []
    chosen: dict[int, int] = {}  # row position → frame index to crop
    notes: dict[int, str] = {}
    to_spot: list[int] = []
    for i, row in enumerate(rows):
        frames = list(row["frames"])
        if not frames:
            skipped.append(_skip(row, "", "face: sample has no frames"))
            continue
        apex = row["apex"]
        if apex is not None and not pd.isna(apex):
            idx = _valid_index(apex, len(frames))
            if idx is None:
                skipped.append(_skip(row, frames[0], f"face: apex index {apex} outside 0..{len(frames) - 1}"))
                continue
            chosen[i] = idx
        elif len(frames) == 1:
            chosen[i] = 0
            row["apex"], row["apex_source"] = 0, "middle"  # the middle (and only) frame
        else:
            to_spot.append(i)
    if to_spot:
        _spot_clips(cache, cfg, rows, to_spot, chosen, notes, skipped, progress)
    order = sorted(chosen)
    results = cache.get_or_make([rows[i]["frames"][chosen[i]] for i in order], desc="faces")
    kept: list[dict[str, Any]] = []
    apex_results: list[Any] = []
    for i, res in zip(order, results, strict=True):
        row = rows[i]
        if not res.ok:
            skipped.append(_skip(row, res.source, f"face: {res.reason}"))
            continue
        note = "; ".join(n for n in (notes.get(i, ""), res.note) if n)
        if res.note:
            skipped.append(_skip(row, res.source, f"face (kept): {res.note}"))
        kept.append(
            {
                **row,
                "crop": res.crop.relative_to(out).as_posix() if res.crop else "",
                "crop_index": chosen[i],
                "face_note": note,
            }
        )
        apex_results.append(res)
    extras: list[str] = []
    if cfg.data.input in MOTION_INPUTS:
        kept, apex_results = _add_motion(cfg, cache, kept, apex_results, out, skipped, progress)
        extras += ["onset_index", "motion", "motion_input", "motion_note"]
    if cfg.model.backbone == "lbptop":
        kept = _add_lbptop(cfg, cache, kept, apex_results, out, skipped, progress)
        extras += ["features", "features_note"]
    prepared = _frame_with_extras(kept, manifest, extras)
    return prepared, make_report(skipped), cache


def _onset_index(row: dict[str, Any]) -> int:
    """The onset frame of a row: its onset label when valid, else the first frame (macro and SMIC: the first)."""
    return _valid_index(row["onset"], len(row["frames"])) or 0


def _bad_clip(row: dict[str, Any], onset: int) -> str | None:
    """Why a kept row has no onset→apex motion (a single frame, onset = apex), or None."""
    if len(row["frames"]) < 2:
        return "single-frame sample (no onset frame)"
    if onset == row["crop_index"]:
        return f"onset equals apex (frame {onset})"
    return None


def _fallback(
    cfg: Config, row: dict[str, Any], source: str, what: str, reason: str, skipped: list[dict[str, Any]]
) -> bool:
    """Report a sample without `what` (motion / LBP-TOP) by `data.flow_fallback`; True when it stays (zero input)."""
    if cfg.data.flow_fallback == "skip":
        skipped.append(_skip(row, source, f"{what}: {reason}; sample skipped (data.flow_fallback=skip)"))
        return False
    skipped.append(_skip(row, source, f"{what} (kept): {reason}; zero input (data.flow_fallback=zero)"))
    return True


def _add_motion(
    cfg: Config,
    cache: CropCache,
    kept: list[dict[str, Any]],
    apex_results: list[Any],
    out: Path,
    skipped: list[dict[str, Any]],
    progress: bool,
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Onset→apex motion input (`data.input`) of every kept row, on onset and apex aligned with one transform.

    Bad clips (one frame, onset = apex, no face on the onset frame, a flow that cannot be computed) follow
    `data.flow_fallback` and are listed in the report either way.
    """
    mode, method = cfg.data.input, cfg.data.flow_method
    if method == "tvl1" and not tvl1_available():
        raise MerError(
            "data.flow_method=tvl1 needs OpenCV's contrib module: pip install 'mer-lightning[flow-tvl1]' "
            "(opencv-contrib-python-headless), or use data.flow_method=farneback"
        )
    onsets = [_onset_index(row) for row in kept]
    reasons = {j: r for j, row in enumerate(kept) if (r := _bad_clip(row, onsets[j])) is not None}
    need = [j for j in range(len(kept)) if j not in reasons]
    onset_res = cache.get_or_make([kept[j]["frames"][onsets[j]] for j in need], desc="onset faces")
    by_row = dict(zip(need, onset_res, strict=True))
    for j, res in by_row.items():
        if not res.ok:
            reasons[j] = f"onset frame {onsets[j]} has no face ({res.reason})"
    size, chans = cfg.face.size, input_channels(cfg.data)
    rows: list[dict[str, Any]] = []
    results: list[Any] = []
    for j, row in enumerate(tqdm(kept, desc=f"motion ({mode})", unit="sample", disable=not progress, leave=False)):
        apex = apex_results[j]
        note = ""
        path = None
        if j not in reasons:
            onset = by_row[j]
            key = hashlib.sha256(
                f"motion{MOTION_VERSION}:{mode}:{method}:{onset.content_hash}:{apex.content_hash}".encode()
            ).hexdigest()
            path = cache.array_get("motion", key)
            if path is None:
                try:
                    pair = align_pair(read_image(onset.source), read_image(apex.source), apex.landmarks, cfg.face,
                                      apex.box)  # fmt: skip
                    field = motion_channels(pair.onset, pair.apex, mode, method)
                    path = cache.array_put("motion", key, field.astype(np.float16))
                except (DataError, OSError, ValueError, cv2.error) as exc:
                    reasons[j] = f"cannot compute the motion ({exc})"
        if j in reasons:
            if not _fallback(cfg, row, row["frames"][onsets[j]], "motion", reasons[j], skipped):
                continue
            note = f"zero {mode} input: {reasons[j]}"
            path = cache.array_get("motion", f"zero-{size}-{chans}")
            if path is None:
                path = cache.array_put("motion", f"zero-{size}-{chans}", np.zeros((size, size, chans), np.float16))
        rows.append({**row, "onset_index": onsets[j], "motion": path.relative_to(out).as_posix(),
                     "motion_input": f"{mode}:{method}", "motion_note": note})  # fmt: skip
        results.append(apex)
    return rows, results


def _add_lbptop(
    cfg: Config,
    cache: CropCache,
    kept: list[dict[str, Any]],
    apex_results: list[Any],
    out: Path,
    skipped: list[dict[str, Any]],
    progress: bool,
) -> list[dict[str, Any]]:
    """LBP-TOP feature (`lbptop` settings) of every micro row's onset..offset clip, every frame aligned with the
    apex's transform; macro rows are kept without one (LBP-TOP is not pre-trained). Clips too short for LBP-TOP
    (under 2·ceil(R_T) + 1 frames) follow `data.flow_fallback`. The cache key holds the settings."""
    side = min(cfg.face.size, cfg.lbptop.size)
    args = settings(cfg.lbptop)
    length = feature_length(args["grid"], args["points"], args["method"])  # type: ignore[arg-type]
    need = min_frames(cfg.lbptop)
    setting = json.dumps(args, sort_keys=True)
    rows: list[dict[str, Any]] = []
    for row, apex in tqdm(list(zip(kept, apex_results, strict=True)), desc="LBP-TOP", unit="clip",
                          disable=not progress, leave=False):  # fmt: skip
        if row["kind"] != "micro":
            rows.append({**row, "features": "", "features_note": ""})
            continue
        frames = row["frames"]
        onset = _onset_index(row)
        end = _valid_index(row["offset"], len(frames))
        end = end if end is not None and end > onset else len(frames) - 1
        picks = clip_indices(onset, end, cfg.lbptop.frames)
        short = len(picks) < need
        reason = f"clip of {len(picks)} frame(s) is too short for LBP-TOP (needs {need})" if short else None
        path = None
        if reason is None:
            hashes = "|".join(file_sha256(frames[k]) for k in picks)
            text = f"lbptop{LBPTOP_VERSION}:{setting}:{side}:{hashes}:{apex.content_hash}"
            key = hashlib.sha256(text.encode()).hexdigest()
            path = cache.array_get("lbptop", key)
            if path is None:
                try:
                    feature = aligned_clip_lbptop([read_image(frames[k]) for k in picks], read_image(apex.source),
                                                  apex.landmarks, cfg.face, apex.box, lbptop=cfg.lbptop)  # fmt: skip
                    path = cache.array_put("lbptop", key, feature)
                except (DataError, OSError, ValueError, cv2.error) as exc:
                    reason = f"cannot compute LBP-TOP ({exc})"
        note = ""
        if reason is not None:
            if not _fallback(cfg, row, frames[onset], "lbptop", reason, skipped):
                continue
            note = f"zero LBP-TOP feature: {reason}"
            path = cache.array_get("lbptop", f"zero-{length}")
            if path is None:
                path = cache.array_put("lbptop", f"zero-{length}", np.zeros(length, np.float32))
        rows.append({**row, "features": path.relative_to(out).as_posix(), "features_note": note})
    return rows


def _frame_with_extras(kept: list[dict[str, Any]], manifest: pd.DataFrame, extras: Sequence[str] = ()) -> pd.DataFrame:
    """Prepared rows in manifest column order + crop, crop_index, face_note (+ `extras`), with the manifest's dtypes."""
    columns = [*manifest.columns, "crop", "crop_index", "face_note", *extras]
    df = pd.DataFrame(kept, columns=columns)
    for col in ("onset", "apex", "offset"):
        if col in df:
            df[col] = pd.array(df[col].tolist(), dtype="Int64")
    return df.reset_index(drop=True)


def _spot_clips(
    cache: CropCache,
    cfg: Config,
    rows: list[dict[str, Any]],
    to_spot: list[int],
    chosen: dict[int, int],
    notes: dict[int, str],
    skipped: list[dict[str, Any]],
    progress: bool,
) -> None:
    """Apex for clips without one: align every frame with the onset frame's face, take the frame of peak motion."""
    spans: dict[int, tuple[int, int]] = {}
    for i in to_spot:
        n = len(rows[i]["frames"])
        onset = _valid_index(rows[i]["onset"], n) or 0
        offset = _valid_index(rows[i]["offset"], n)
        spans[i] = (onset, offset if offset is not None and offset > onset else n - 1)
    onsets = cache.get_or_make([rows[i]["frames"][spans[i][0]] for i in to_spot], desc="onset faces")
    mask = region_mask(cfg.face)
    for i, res in tqdm(
        list(zip(to_spot, onsets, strict=True)),
        desc="spotting apex",
        unit="clip",
        disable=not progress or len(to_spot) < 2,
        leave=False,
    ):
        row = rows[i]
        onset, offset = spans[i]
        if not res.ok or res.landmarks is None:
            skipped.append(
                _skip(row, res.source, f"face: onset frame has no usable face ({res.reason}); cannot spot the apex")
            )
            continue
        span = row["frames"][onset : offset + 1]
        try:
            key = hashlib.sha256(f"spot{SPOT_VERSION}:{'|'.join(file_sha256(f) for f in span)}".encode()).hexdigest()
            memo = cache.memo_get("spots", key)
            if memo is None:
                ref = align(read_image(res.source), res.landmarks, cfg.face, res.box)
                clip = [warp_face(read_image(f), ref.matrix, cfg.face, ref.landmarks[:2]) for f in span]
                k, scores = spot_apex(clip, mask)
                cache.memo_put("spots", key, {"apex": k, "scores": np.round(scores, 5).tolist()})
            else:
                k = int(memo["apex"])
        except (DataError, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            skipped.append(_skip(row, res.source, f"face: cannot spot the apex ({reason})"))
            continue
        chosen[i] = onset + k
        row["apex"] = onset + k
        notes[i] = f"apex spotted at frame {onset + k}"


def write_preview(prepared: pd.DataFrame, path: str | Path, per_group: int = 8, thumb: int = 96) -> Path:
    """Contact sheet PNG: one row per (dataset, label) with up to `per_group` aligned crops from different subjects.

    `prepared` must have absolute `crop` paths (as `mer.data.prepared.load_prepared` returns).
    """
    path = Path(path)
    label_w = 150
    groups = list(prepared.groupby(["dataset", "label"], sort=True)) if len(prepared) else []
    if not groups:
        raise DataError("nothing to preview: no sample got a face crop (see prepare_report.csv)")
    sheet = np.full((len(groups) * (thumb + 4) + 4, label_w + per_group * (thumb + 4) + 4), 255, dtype=np.uint8)
    for r, ((dataset, label), df) in enumerate(groups):
        y = 4 + r * (thumb + 4)
        picks = _spread(df, per_group)
        text = [f"{dataset}", f"{label}", f"n={len(df)}"]
        for j, t in enumerate(text):
            cv2.putText(sheet, t, (8, y + 24 + 26 * j), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 0, 1, cv2.LINE_AA)
        for c, crop_path in enumerate(picks):
            img = read_gray(crop_path, size=thumb, hint=REBUILD_HINT)
            x = label_w + 4 + c * (thumb + 4)
            sheet[y : y + thumb, x : x + thumb] = img
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), sheet):
        raise DataError(f"{path}: cannot write the preview PNG")
    return path


def _spread(df: pd.DataFrame, k: int) -> list[str]:
    """Up to k crops, one per subject first (round robin over subjects), in a stable order."""
    by_subject = [list(g["crop"]) for _, g in df.sort_values(["subject", "sample_id"]).groupby("subject", sort=True)]
    picks: list[str] = []
    depth = 0
    while len(picks) < k and any(depth < len(s) for s in by_subject):
        picks += [s[depth] for s in by_subject if depth < len(s)][: k - len(picks)]
        depth += 1
    return picks


def _echo(text: str) -> None:
    Console(highlight=False).print(text)


def _print_counts(title: str, df: pd.DataFrame, n_skipped: int) -> None:
    """Per-dataset × class sample counts as a table (rich)."""
    console = Console(highlight=False)
    table_df = counts(df)
    if table_df.empty:
        console.print(f"{title}: no samples ({n_skipped} skipped rows in prepare_report.csv)")
        return
    console.print(f"{title}: {len(df)} samples; {n_skipped} rows in prepare_report.csv")
    table = Table()
    table.add_column("dataset")
    for col in table_df.columns:
        table.add_column(str(col), justify="right")
    for name, values in table_df.iterrows():
        table.add_row(str(name), *(str(int(v)) for v in values))
    console.print(table)
