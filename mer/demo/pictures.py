"""Pictures of the demo corpus: the contact-sheet preview (onset / apex / difference per class and dataset), the
identity sheet (one neutral frame per person) and the held-out identity's test video for `mer predict`.

Drawing only: the corpus (`mer.demo.corpus`) decides who and what is shown and passes it in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mer.config import CLASSES
from mer.demo.faces import Identity, micro_levels, render
from mer.demo.layouts import Sample
from mer.demo.spec import DATASETS, FOLDERS, MICRO, POS, DemoSpec
from mer.errors import DataError

VIDEO_SIZE = 256  # side of the held-out identity's test video
VIDEO_FPS = 30.0


def neutral_frame(ident: Identity, spec: DemoSpec, seed: int, gray: bool = False) -> np.ndarray:
    """One neutral frame of an identity (as the corpus renders it, with its own small pose change and noise)."""
    return render(ident, None, np.zeros(1), 0.0, spec, np.random.default_rng([seed, 104729, ident.ident]), gray)[0]


def write_identity_sheet(
    path: Path, spec: DemoSpec, seed: int, identities: dict[int, Identity], owners: dict[int, str], held: Identity
) -> Path:
    """Contact sheet: one neutral frame per identity (`owners`: id → dataset), labelled with its generator id and
    dataset (gray as stored), and the held-out identity last."""
    tile = 112
    gray_sets = {"samm", "ckplus", "jaffe"}
    items = [(i, owners[i], identities[i]) for i in owners] + [(held.ident, "held out", held)]
    cols = 10
    rows = -(-len(items) // cols)
    sheet = np.full((rows * (tile + 14), cols * tile, 3), 255, np.uint8)
    for k, (i, owner, ident) in enumerate(items):
        frame = neutral_frame(ident, spec, seed, gray=owner in gray_sets)
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB) if frame.ndim == 2 else frame
        r, c = divmod(k, cols)
        y, x = r * (tile + 14), c * tile
        sheet[y + 14 : y + 14 + tile, x : x + tile] = cv2.resize(frame, (tile, tile), interpolation=cv2.INTER_AREA)
        cv2.putText(sheet, f"{i} {owner}", (x + 2, y + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path


def write_test_video(path: str | Path, spec: DemoSpec, seed: int, ident: Identity, label: str = POS) -> dict[str, Any]:
    """A short mp4 (cv2.VideoWriter) of `ident` (the held-out identity): neutral, one micro-expression of `label`,
    neutral.

    30 fps, 36 frames (1.2 s), the movement from frame 10 to 22 with its apex at frame 16, at the corpus's micro
    amplitude. Returns what it shows (path, label, apex, fps, frames, identity).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n, onset, apex, offset = 36, 10, 16, 22
    frames = render(ident, label, micro_levels(n, onset, apex, offset), spec.micro_amplitude, spec,
                    np.random.default_rng([seed, 31337]), gray=False)  # fmt: skip
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, (VIDEO_SIZE, VIDEO_SIZE))
    if not writer.isOpened():
        raise DataError(f"OpenCV cannot write the test video {path} (mp4v codec missing?)")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return {"path": str(path), "label": label, "apex": apex, "onset": onset, "offset": offset, "fps": VIDEO_FPS,
            "n_frames": n, "identity": ident.ident}  # fmt: skip


def preview_picks(samples: list[Sample]) -> dict[int, str]:
    """Indices of the samples shown in the preview, with their class: one per class per dataset from different
    subjects (JAFFE: a neutral image and one per class for each of two subjects)."""
    picks: dict[int, str] = {}
    for dataset in DATASETS:
        mine = [i for i, s in enumerate(samples) if s.dataset == dataset]
        subjects = list(dict.fromkeys(samples[i].subject for i in mine))
        if dataset == "jaffe":
            for subject in subjects[:2]:
                for label in (None, *CLASSES):
                    hit = next((i for i in mine if samples[i].subject == subject and samples[i].label == label), None)
                    if hit is not None:
                        picks[hit] = label or "neutral"
            continue
        for ci, label in enumerate(CLASSES):
            kept = [i for i in mine if samples[i].keep and samples[i].label == label]
            wanted = [i for i in kept if samples[i].subject == subjects[(ci + DATASETS.index(dataset)) % len(subjects)]]
            if kept:
                picks[(wanted or kept)[0]] = label
    return picks


def write_preview(
    path: Path, samples: list[Sample], frames: dict[int, list[np.ndarray]], picks: dict[int, str]
) -> Path:
    """Contact sheet, one row per dataset: micro onset / apex / |apex − onset| ×8 per class (CK+: first / last /
    |last − first| ×2); JAFFE neutral and each class for two subjects."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows: dict[str, list[tuple[str, np.ndarray, bool]]] = {d: [] for d in DATASETS}
    order = {"neutral": -1, **{c: k for k, c in enumerate(CLASSES)}}
    for i in sorted(
        picks, key=lambda k: (samples[k].subject if samples[k].dataset == "jaffe" else "", order[picks[k]])
    ):
        s, clip, label = samples[i], frames[i], picks[i]
        short = f"{s.subject.split('/')[1]} {label[:3]}"
        if s.dataset == "jaffe":
            rows[s.dataset].append((f"{s.subject.split('/')[1]} {label} ({s.emotion})", clip[0], False))
            continue
        first, peak, gain = (s.onset, s.apex, 8) if s.dataset in MICRO else (0, len(clip) - 1, 2)
        diff = np.abs(clip[peak].astype(np.float32) - clip[first].astype(np.float32))
        diff = diff.mean(axis=2) if diff.ndim == 3 else diff
        names = ("onset", f"apex #{s.apex}") if s.dataset in MICRO else ("first", "last")
        rows[s.dataset] += [
            (f"{short} {names[0]}", clip[first], False),
            (f"{short} {names[1]}", clip[peak], False),
            (f"|Δ|×{gain}", np.clip(diff * gain, 0, 255).astype(np.uint8), True),
        ]
    ncols = max(len(r) for r in rows.values())
    fig, axes = plt.subplots(len(DATASETS), ncols, figsize=(1.5 * ncols, 1.75 * len(DATASETS)), squeeze=False)
    for r, dataset in enumerate(DATASETS):
        for c in range(ncols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(rows[dataset]):
                title, image, is_diff = rows[dataset][c]
                ax.imshow(image, cmap="magma" if is_diff else "gray", vmin=0, vmax=255)
                ax.set_title(title, fontsize=6.5, pad=2)
        axes[r][0].set_ylabel(FOLDERS[dataset], fontsize=9)
    fig.suptitle("mer demo corpus (generated: public-domain photos + synthetic expression warps)", fontsize=8)
    fig.tight_layout(pad=0.3, h_pad=0.5, w_pad=0.2, rect=(0, 0, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path
