"""`mer spot VIDEO`: a user's long video → region features → the MEGC baseline spotter → intervals, labelled by a
recognition model when one is given; the JSON (`SCHEMA_KEYS`, `INTERVAL_KEYS`), the table and the score-curve plot.

Labels: each interval's apex frame is read again, aligned with the model's own face settings (`bundle.cfg.face`, the
tracked landmarks at that frame) and classified by `Bundle.classify`, as `mer predict` classifies its apex.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

import mer
from mer.errors import MerError
from mer.inference.bundle import Bundle
from mer.spotting.baseline import BASELINE_PAPER, BaselineConfig, SpotResult, required_windows, spot_baseline
from mer.spotting.features import FeatureConfig, VideoFeatures, extract_features
from mer.spotting.video import open_long_video

SCHEMA = "mer.spot/1"
SCHEMA_KEYS = (
    "schema", "input", "fps", "fps_source", "n_frames", "frames_with_face", "face_runs", "alignments", "spotter",
    "settings", "thresholds", "intervals", "notes", "model", "classes", "mer_version", "timing_s",
)  # fmt: skip
INTERVAL_KEYS = (
    "onset", "apex", "offset", "onset_s", "apex_s", "offset_s", "duration_s", "kind", "score", "label", "probabilities",
)  # fmt: skip


def _time(times: np.ndarray, i: int) -> float:
    return round(float(times[i]), 4)


def label_apexes(
    path: str | Path, features: VideoFeatures, apexes: list[int], bundle: Bundle
) -> tuple[list[str], np.ndarray]:
    """Classify the aligned face at each apex frame with `bundle` (labels and softmax probabilities, in order)."""
    from mer.face.align import align_face

    if not apexes:
        return [], np.zeros((0, len(bundle.classes)))
    wanted = set(apexes)
    crops: dict[int, np.ndarray] = {}
    video = open_long_video(path, features.fps if features.fps_source == "given" else None)
    for i, _, frame in video.frames(max(apexes) + 1):
        if i in wanted:
            lm, box = features.landmarks[i], features.boxes[i]
            crops[i] = align_face(frame, lm, bundle.cfg.face, box)
    missing = [i for i in apexes if i not in crops]
    if missing:
        raise MerError(f"{path}: frame {missing[0]} could not be read again (is the file being written?)")
    labels, probs, _ = bundle.classify(np.stack([crops[i] for i in apexes]))
    return list(labels), np.asarray(probs)


def spot_video(
    path: str | Path,
    bundle: Bundle | None = None,
    cfg: BaselineConfig | None = None,
    feature_cfg: FeatureConfig | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], SpotResult, VideoFeatures]:
    """Spot ME/MaE intervals in a video or frames folder; returns the `SCHEMA_KEYS` dict, the spotter's result and
    the features. Unreadable input raises `MerError`; a video without a face gives no interval and a note."""
    cfg = cfg or BaselineConfig()
    t0 = time.perf_counter()
    video = open_long_video(path, fps)
    n = video.n_frames if max_frames is None else min(video.n_frames, max_frames)
    feats = extract_features(video, required_windows(video.fps, n, cfg), feature_cfg, max_frames=max_frames,
                             progress=progress)  # fmt: skip
    t1 = time.perf_counter()
    result = spot_baseline(feats, cfg)
    timing = dict(feats.timing)
    timing["score"] = round(time.perf_counter() - t1, 3)
    labels: list[str] = []
    probs = np.zeros((0, 0))
    if bundle is not None and result.intervals:
        t2 = time.perf_counter()
        labels, probs = label_apexes(path, feats, [iv.apex for iv in result.intervals], bundle)  # type: ignore[misc]
        timing["classify"] = round(time.perf_counter() - t2, 3)
    timing["total"] = round(time.perf_counter() - t0, 3)
    rows = []
    for j, iv in enumerate(result.intervals):
        apex = int(iv.apex if iv.apex is not None else iv.onset)
        row = {
            "onset": iv.onset,
            "apex": apex,
            "offset": iv.offset,
            "onset_s": _time(feats.times, iv.onset),
            "apex_s": _time(feats.times, apex),
            "offset_s": _time(feats.times, iv.offset),
            "duration_s": round(float(feats.times[iv.offset] - feats.times[iv.onset]) + 1.0 / feats.fps, 4),
            "kind": iv.kind,
            "score": iv.score,
            "label": labels[j] if labels else None,
            "probabilities": (
                {c: round(float(p), 6) for c, p in zip(bundle.classes, probs[j], strict=True)} if labels else None
            ),
        }
        assert tuple(row) == INTERVAL_KEYS
        rows.append(row)
    notes = list(feats.notes)
    if feats.track.several:
        notes.append(f"several faces in {feats.track.several} detected frame(s): followed the largest / tracked one")
    out = {
        "schema": SCHEMA,
        "input": str(video.path),
        "fps": round(feats.fps, 4),
        "fps_source": feats.fps_source,
        "n_frames": feats.n_frames,
        "frames_with_face": int(feats.face.sum()),
        "face_runs": [[a, b] for a, b in feats.face_runs],
        "alignments": feats.alignments,
        "spotter": f"MEGC baseline (MDMD optical flow; {BASELINE_PAPER})",
        "settings": {
            "p": cfg.p,
            "k_frames": {name: sc.k for name, sc in result.scales.items()},
            "bounds": cfg.bounds,
            "min_contrast": cfg.min_contrast,
            "me_max_seconds": cfg.me_max_seconds,
        },
        "thresholds": {
            name: (None if not np.isfinite(sc.threshold) else round(sc.threshold, 6))
            for name, sc in result.scales.items()
        },
        "intervals": rows,
        "notes": notes,
        "model": str(bundle.source) if bundle is not None else None,
        "classes": list(bundle.classes) if bundle is not None else None,
        "mer_version": mer.__version__,
        "timing_s": timing,
    }
    assert tuple(out) == SCHEMA_KEYS
    return out, result, feats


def spot_table(out: dict[str, Any]) -> Any:
    """A rich Table of the spotted intervals: frames and seconds of start, apex and end, type, score, label, probs."""
    from rich.table import Table

    classes = out["classes"] or []
    table = Table(title=f"mer spot: {Path(out['input']).name} ({out['n_frames']} frames, {out['fps']:g} fps)")
    for col in ("#", "start", "apex", "end", "start s", "apex s", "end s", "type", "score", "label"):
        table.add_column(col, justify="right" if col not in ("type", "label") else "left", no_wrap=True)
    for c in classes:
        table.add_column(c, justify="right", no_wrap=True)
    for j, r in enumerate(out["intervals"], 1):
        probs = r["probabilities"] or {}
        table.add_row(
            str(j), str(r["onset"]), str(r["apex"]), str(r["offset"]),
            f"{r['onset_s']:.3f}", f"{r['apex_s']:.3f}", f"{r['offset_s']:.3f}", r["kind"],
            "-" if r["score"] is None else f"{r['score']:.3f}", r["label"] or "-",
            *(f"{probs[c]:.3f}" if c in probs else "-" for c in classes),
        )  # fmt: skip
    return table


def plot_spot(out: dict[str, Any], result: SpotResult, feats: VideoFeatures, path: str | Path) -> Path:
    """PNG of each scale's contrast curve over time with its threshold, the spotted intervals and no-face frames."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t = feats.times if len(feats.times) else np.zeros(0)
    fig, axes = plt.subplots(len(result.scales), 1, figsize=(10, 2.6 * max(1, len(result.scales))), sharex=True,
                             squeeze=False)  # fmt: skip
    colours = {"ME": "tab:red", "MaE": "tab:blue"}
    for ax, (name, sc) in zip(axes[:, 0], result.scales.items(), strict=True):
        ax.plot(t, sc.contrast, lw=1, color="k", label=f"{name} contrast C (k = {sc.k} frames)")
        if np.isfinite(sc.threshold):
            ax.axhline(sc.threshold, color="tab:orange", ls="--", lw=1, label=f"threshold T (p = {result.config.p:g})")
        for iv in result.intervals:
            ax.axvspan(t[iv.onset], t[iv.offset], color=colours.get(iv.kind, "tab:green"), alpha=0.2)
            if iv.apex is not None and iv.kind == name:
                ax.axvline(t[iv.apex], color=colours.get(iv.kind, "tab:green"), lw=1)
        for i in np.flatnonzero(~feats.face):
            ax.axvspan(t[i] - 0.5 / feats.fps, t[i] + 0.5 / feats.fps, color="0.6", alpha=0.5, lw=0)
        ax.set_ylabel("C (crop px)")
        ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("time (s); shaded: spotted intervals (red ME, blue MaE), grey: no face")
    fig.suptitle(f"mer spot: {Path(out['input']).name}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
