"""Long videos of the demo corpus, for spotting: CAS(ME)^2 and SAMM Long Videos look-alikes in their shipped layouts.

Each video is a mostly neutral face of a synthetic identity (its own, in no other set of the corpus) with embedded
micro-expressions (short, at the micro amplitude) and macro-expressions (longer, at the macro amplitude) of the three
classes at known intervals, and class-free nuisance that a spotter must not report: blinks, talking-like mouth
movement, a slow head drift and quick head movements. The annotation sheets are written as the real ones are
(CAS(ME)^2: headerless code sheet with its naming-rule worksheets; SAMM-LV: preamble, `FACS_Movement_Only`), with
one erratum of each kind the readers fix (an offset 0, an apex -1, a fractional frame number), so the ground truth
this module records is what `mer.data.datasets.long_videos.read_long` returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer.config import CLASSES
from mer.data.datasets import casme_sq, samm_lv
from mer.data.longvideo import INTERVAL_COLUMNS
from mer.demo.faces import (
    DISTRACTORS,
    TALKING,
    Identity,
    class_bumps,
    make_identity,
    micro_levels,
    movement_field,
    render_timeline,
)
from mer.demo.layouts import ACTION_UNITS, write_workbook
from mer.demo.spec import DemoSpec

LONG = ("casme_sq", "samm_lv")
LONG_FOLDERS = {"casme_sq": "CASME_sq", "samm_lv": "SAMM_LV"}
LONG_FPS = {"casme_sq": casme_sq.FPS, "samm_lv": samm_lv.FPS}  # what the readers state for the real sets
CASME_SQ_XLSX = "CAS(ME)^2code_final.xlsx"
SAMM_LV_XLSX = "SAMM_LongVideos_V1_Release.xlsx"
LEAD_SECONDS = 0.5  # neutral time at the start and end of every video
# CAS(ME)^2 stimulus videos: (code, name in the sheet, folder suffix); the codes and names follow naming rule2.
STIMULI = [
    ("0101", "disgust1", "disgustingteeth"),
    ("0102", "disgust2", "eatingworms"),
    ("0401", "anger1", "girlcrashing"),
    ("0402", "anger2", "shoutingman"),
    ("0502", "happy1", "funnyinnovations"),
    ("0503", "happy2", "laughingbaby"),
    ("0505", "happy4", "funnydog"),
    ("0507", "happy5", "comedyshow"),
]
SAMM_LV_PREAMBLE: list[list[Any]] = [
    ["SAMM Long Videos: FACS coded movements (mer demo corpus: generated, not real data)"],
    [],
    ["Onset, Apex and Offset are frame numbers as in the image file names (009_4_0007.jpg -> 7)."],
    ["Type: Macro or Micro - 1/2. Apex -1: no apex was coded."],
    [],
    ["Macro frame numbers may be fractional."],
    [],
    [],
    [],
]
SAMM_LV_HEADER = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type",
                  "Action Units", "Notes"]  # fmt: skip


@dataclass
class Expression:
    """One embedded expression: type, class, frame positions (0-based) and peak displacement in face units."""

    kind: str  # ME | MaE
    label: str
    onset: int
    apex: int
    offset: int
    amplitude: float


@dataclass
class LongPlan:
    """One planned long video: where its frames go, who it shows, its expressions and its nuisance."""

    dataset: str
    subject: str  # prefixed, as the reader names it (casme_sq/s15, samm_lv/009)
    video: str  # the frame folder's name
    identity: int
    files: list[str]  # relative to the dataset root
    fps: float
    expressions: list[Expression]
    gray: bool
    seed: int  # the render stream of this video
    nuisance: list[tuple[str, float, float, float]] = field(default_factory=list)  # (what, start s, length s, strength)


def long_identity_ids(spec: DemoSpec, first: int) -> dict[str, list[int]]:
    """Generator ids of the long videos' identities, from `first` on (after every other identity of the corpus)."""
    n = spec.long_subjects
    return {"casme_sq": list(range(first, first + n)), "samm_lv": list(range(first + n, first + 2 * n))}


def _expressions(n: int, fps: float, spec: DemoSpec, rng: np.random.Generator) -> list[Expression]:
    """Micro and macro expressions in random order, each in its own slot of the timeline (never overlapping)."""
    kinds = ["ME"] * spec.long_micro + ["MaE"] * spec.long_macro
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    lead = int(round(LEAD_SECONDS * fps))
    slot = (n - 2 * lead) / len(kinds)
    out = []
    for k, kind in enumerate(kinds):
        lo_s, hi_s = spec.long_micro_seconds if kind == "ME" else spec.long_macro_seconds
        length = int(round(rng.uniform(lo_s, hi_s) * fps)) + 1
        length = max(4, min(length, int(slot * 0.8)))
        start = lead + int(k * slot) + int(rng.integers(0, max(1, int(slot) - length)))
        onset, offset = start, start + length - 1
        apex = int(np.clip(onset + round(rng.uniform(0.3, 0.7) * (offset - onset)), onset + 1, offset - 1))
        label = CLASSES[int(rng.integers(len(CLASSES)))]
        base, jitter = (spec.micro_amplitude, spec.amplitude_jitter) if kind == "ME" else (
            spec.macro_amplitude, spec.macro_jitter)  # fmt: skip
        out.append(Expression(kind, label, onset, apex, offset, base * rng.uniform(1 - jitter, 1 + jitter)))
    return out


def _nuisance(seconds: float, spec: DemoSpec, rng: np.random.Generator) -> list[tuple[str, float, float, float]]:
    """Blinks, talking spells and quick head movements: (what, start s, length s, strength)."""
    out = []
    for _ in range(int(rng.poisson(spec.long_blinks * seconds))):
        out.append(("blink", float(rng.uniform(0, seconds - 0.2)), float(rng.uniform(0.1, 0.2)), rng.uniform(0.8, 1.2)))
    for _ in range(int(rng.poisson(spec.long_talking))):
        length = float(min(rng.uniform(1.0, 2.5), seconds * 0.5))
        out.append(("talking", float(rng.uniform(0, seconds - length)), length, rng.uniform(0.4, 0.8)))
    for _ in range(int(rng.poisson(spec.long_head_turns))):
        out.append(("head", float(rng.uniform(0, seconds - 0.6)), float(rng.uniform(0.3, 0.6)), rng.uniform(-1, 1)))
    return sorted(out, key=lambda e: e[1])


def plan_long(spec: DemoSpec, rng: np.random.Generator, ids: dict[str, list[int]], seed: int) -> list[LongPlan]:
    """Every long video of both sets: CAS(ME)^2 subjects s15… with `long_videos` stimuli each (colour), SAMM-LV
    subjects 0xx with videos 0xx_1… (gray)."""
    plans = []
    numbers = sorted(rng.choice(np.arange(15, 41), spec.long_subjects, replace=False).tolist())
    for number, ident in zip(numbers, ids["casme_sq"], strict=True):
        for k in rng.choice(len(STIMULI), spec.long_videos, replace=False).tolist():
            code, _, word = STIMULI[k]
            video = f"{number}_{code}{word}"
            folder = f"{casme_sq.FRAMES_DIR}/s{number}/{video}"
            plans.append(_plan("casme_sq", f"casme_sq/s{number}", video, ident, spec, rng, seed,
                               lambda i, f=folder: f"{f}/img{i:03d}.jpg"))  # fmt: skip
    numbers = sorted(rng.choice(np.arange(6, 38), spec.long_subjects, replace=False).tolist())
    for number, ident in zip(numbers, ids["samm_lv"], strict=True):
        for k in range(1, spec.long_videos + 1):
            video = f"{number:03d}_{k}"
            plans.append(_plan("samm_lv", f"samm_lv/{number:03d}", video, ident, spec, rng, seed,
                               lambda i, v=video: f"{samm_lv.FRAMES_DIR}/{v}/{v}_{i:04d}.jpg"))  # fmt: skip
    return plans


def _plan(dataset: str, subject: str, video: str, ident: int, spec: DemoSpec, rng: np.random.Generator, seed: int,
          name: Callable[[int], str]) -> LongPlan:  # fmt: skip
    fps = LONG_FPS[dataset]
    seconds = spec.long_seconds[LONG.index(dataset)]
    n = int(round(seconds * fps))
    return LongPlan(dataset, subject, video, ident, [name(i) for i in range(1, n + 1)], fps,
                    _expressions(n, fps, spec, rng), dataset == "samm_lv", int(rng.integers(0, 2**63)),
                    _nuisance(seconds, spec, rng))  # fmt: skip


def _bump_curve(n: int, fps: float, start: float, length: float) -> np.ndarray:
    """A raised-cosine bump (0 → 1 → 0) over [start, start + length) seconds."""
    t = np.arange(n) / fps
    phase = np.clip((t - start) / length, 0.0, 1.0)
    return np.where((t >= start) & (t < start + length), 0.5 * (1 - np.cos(2 * np.pi * phase)), 0.0)


def layers_and_poses(plan: LongPlan, ident: Identity, spec: DemoSpec, rng: np.random.Generator
                     ) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:  # fmt: skip
    """The (field, level curve) layers of a video's expressions and nuisance, and its per-frame head poses."""
    n, fps, unit = len(plan.files), plan.fps, ident.unit
    layers = []
    for e in plan.expressions:
        curve = micro_levels(n, e.onset, e.apex, e.offset).astype(np.float32)
        layers.append((movement_field(ident, class_bumps(e.label), e.amplitude, spec, rng), curve))
    t = np.arange(n) / fps
    shift = np.zeros((n, 2))
    angle = np.zeros(n)
    for what, start, length, strength in plan.nuisance:
        if what == "blink":
            field_ = movement_field(ident, DISTRACTORS["AU45 blink"], spec.macro_amplitude * strength, spec, rng)
            layers.append((field_, _bump_curve(n, fps, start, length).astype(np.float32)))
        elif what == "talking":
            syllables = 0.5 * (1 - np.cos(2 * np.pi * rng.uniform(3.0, 5.0) * (t - start)))
            envelope = _bump_curve(n, fps, start, length) ** 0.25
            field_ = movement_field(ident, TALKING, spec.macro_amplitude * strength, spec, rng)
            layers.append((field_, (syllables * envelope).astype(np.float32)))
        else:  # a quick head movement that stays: a smooth step of a few pixels and a degree or two
            step = np.clip((t - start) / length, 0.0, 1.0)
            step = 0.5 * (1 - np.cos(np.pi * step))
            shift += np.outer(step, rng.uniform(-1, 1, 2)) * 0.08 * unit * abs(strength) * 3
            angle += step * 1.5 * strength
    phase = rng.uniform(0, 2 * np.pi, 3)
    period = rng.uniform(6.0, 12.0)
    shift[:, 0] += 0.04 * unit * np.sin(2 * np.pi * t / period + phase[0])
    shift[:, 1] += 0.03 * unit * np.sin(2 * np.pi * t / (period * 1.3) + phase[1])
    angle += 1.0 * np.sin(2 * np.pi * t / (period * 0.8) + phase[2])
    centre = ident.landmarks[:2].mean(0)
    poses = np.zeros((n, 2, 3))
    for k in range(n):
        a = math.radians(angle[k])
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        poses[k, :, :2] = rot
        poses[k, :, 2] = centre - rot @ centre + shift[k]
    return layers, poses


def sheets(plans: list[LongPlan]) -> tuple[dict[str, dict[str, list[list[Any]]]], pd.DataFrame]:
    """The two annotation workbooks ({dataset: {worksheet: rows}}) and the ground truth the readers give back.

    Errata written on purpose (as the real sheets have them): the first CAS(ME)^2 macro-expression has offset 0 (the
    reader ends it at the apex), the first SAMM-LV micro-expression apex -1 (no apex), the first SAMM-LV
    macro-expression a fractional onset (rounded back).
    """
    truth = []
    casme_rows: list[list[Any]] = []
    samm_rows: list[list[Any]] = []
    subjects: dict[str, int] = {}
    done: set[str] = set()
    for p in plans:
        for j, e in enumerate(sorted(p.expressions, key=lambda x: x.onset), start=1):
            onset, apex, offset = e.onset + 1, e.apex + 1, e.offset + 1  # 1-based frame numbers of the file names
            row = {"dataset": p.dataset, "subject": p.subject, "video": p.video, "kind": e.kind, "onset": e.onset,
                   "apex": e.apex, "offset": e.offset, "emotion": None, "label": None}  # fmt: skip
            if p.dataset == "casme_sq":
                index = subjects.setdefault(p.subject, len(subjects) + 1)
                name = next(s[1] for s in STIMULI if p.video.split("_")[1].startswith(s[0]))
                offset_cell: Any = offset
                if e.kind == "MaE" and "offset0" not in done:
                    done.add("offset0")
                    offset_cell, row["offset"] = 0, e.apex
                kind = "micro-expression" if e.kind == "ME" else "macro-expression"
                casme_rows.append([index, f"{name}_{j}", onset, apex, offset_cell, ACTION_UNITS[e.label], e.label,
                                   kind, e.label])  # fmt: skip
                row["emotion"], row["label"] = e.label, e.label
            else:
                apex_cell: Any = apex
                onset_cell: Any = onset
                if e.kind == "ME" and "apex-1" not in done:
                    done.add("apex-1")
                    apex_cell, row["apex"] = -1, None
                if e.kind == "MaE" and "fraction" not in done:
                    done.add("fraction")
                    onset_cell = onset + 0.4
                number = int(p.subject.split("/")[1])
                kind = "Micro - 1/2" if e.kind == "ME" else "Macro"
                samm_rows.append([number, f"{p.video}_{j}", int(p.video.split("_")[1]), onset_cell, apex_cell, offset,
                                  offset - onset + 1, kind, ACTION_UNITS[e.label], ""])  # fmt: skip
            truth.append(row)
    rule1 = [[f"p{int(s.split('/s')[1])}", f"s{int(s.split('/s')[1])}", k] for s, k in subjects.items()]
    rule2 = [[int(code), name] for code, name, _ in STIMULI]
    books = {
        "casme_sq": {"CASFEcode_final": casme_rows, "naming rule1": rule1, "naming rule2": rule2},
        "samm_lv": {"Info": [["mer demo corpus: generated, not real data"]],
                    "FACS_Movement_Only": [*SAMM_LV_PREAMBLE, SAMM_LV_HEADER, *samm_rows]},
    }  # fmt: skip
    table = pd.DataFrame(truth, columns=INTERVAL_COLUMNS)
    table["apex"] = pd.array(table["apex"].tolist(), dtype="Int64")
    return books, table.sort_values(["dataset", "subject", "video", "onset"], kind="stable").reset_index(drop=True)


def write_long(
    roots: dict[str, Path],
    plans: list[LongPlan],
    spec: DemoSpec,
    seed: int,
    write_image: Callable[[Path, np.ndarray], None],
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Render and write every planned video and both workbooks under `roots`; returns the ground-truth intervals."""
    identities: dict[int, Identity] = {}
    for p in plans:
        if p.identity not in identities:
            identities[p.identity] = make_identity(p.identity, spec.long_size, np.random.default_rng([seed, 7919,
                                                   p.identity]), spec)  # fmt: skip
        rng = np.random.default_rng(p.seed)
        ident = identities[p.identity]
        layers, poses = layers_and_poses(p, ident, spec, rng)
        for rel, frame in zip(p.files, render_timeline(ident, layers, poses, spec, rng, p.gray), strict=True):
            write_image(roots[p.dataset] / rel, frame)
        if progress is not None:
            progress(len(p.files))
    books, truth = sheets(plans)
    write_workbook(roots["casme_sq"] / CASME_SQ_XLSX, books["casme_sq"])
    write_workbook(roots["samm_lv"] / SAMM_LV_XLSX, books["samm_lv"])
    return truth


def videos_frame(plans: list[LongPlan]) -> pd.DataFrame:
    """One row per generated long video: dataset, subject, video, identity, n_frames, fps, path (relative to the
    corpus root), n_me, n_mae, nuisance counts."""
    rows = []
    for p in plans:
        kinds = [e.kind for e in p.expressions]
        what = [w for w, *_ in p.nuisance]
        rows.append({"dataset": p.dataset, "subject": p.subject, "video": p.video, "identity": p.identity,
                     "n_frames": len(p.files), "fps": p.fps,
                     "path": f"{LONG_FOLDERS[p.dataset]}/{Path(p.files[0]).parent}",
                     "n_me": kinds.count("ME"), "n_mae": kinds.count("MaE"), "blinks": what.count("blink"),
                     "talking": what.count("talking"), "head_moves": what.count("head")})  # fmt: skip
    return pd.DataFrame(rows)
