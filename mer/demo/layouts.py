"""The corpus plan in the real datasets' layouts: every sample with its files, label and timing, before any pixel is
drawn, plus the coding sheets (xlsx) that CASME II and SAMM ship.

One planner per dataset writes its real quirks (CASME II's apex "/", SAMM's preamble and apex -1, CK+ sequences
without an emotion file, JAFFE's neutral images) so the demo runs the real readers.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from mer.config import CLASSES
from mer.demo.faces import macro_levels, micro_levels
from mer.demo.spec import JAFFE_CODES, NEG, POS, SAMM_PAD, SUR, DemoSpec

CASME2_XLSX = "CASME2-coding-20140508.xlsx"
SAMM_XLSX = "SAMM_Micro_FACS_Codes_v2.xlsx"
FIXED_TIME = datetime(2014, 5, 8, 12, 0, 0)  # stamped into the xlsx files so they are byte-identical across runs

# Original emotion labels written for each class (negatives cycle through the dataset's negative emotions).
EMOTIONS: dict[str, dict[str, list[str]]] = {
    "casme2": {NEG: ["disgust", "repression"], POS: ["happiness"], SUR: ["surprise"]},
    "samm": {NEG: ["Anger", "Contempt", "Disgust", "Fear", "Sadness"], POS: ["Happiness"], SUR: ["Surprise"]},
    "smic": {NEG: ["negative"], POS: ["positive"], SUR: ["surprise"]},
    "ckplus": {NEG: ["1", "2", "3", "4", "6"], POS: ["5"], SUR: ["7"]},  # CK+ codes: 1 anger ... 7 surprise
    "jaffe": {NEG: ["AN", "DI", "FE", "SA"], POS: ["HA"], SUR: ["SU"]},
}
ACTION_UNITS = {NEG: "4+15", POS: "6+12", SUR: "1+2+26"}
SMIC_SHORT = {NEG: "ne", POS: "po", SUR: "sur"}


@dataclass
class Sample:
    """One planned sample: where its files go, its class and emotion code, and its expression timing."""

    dataset: str
    subject: str  # prefixed, as the readers write it (casme2/sub01)
    sample_id: str  # as the readers name it (sub01_EP02_01f, 006_1_2, s1_ne_01, S005_001, KA.HA1.39)
    label: str | None  # class of the warp; None = neutral
    emotion: str
    files: list[str]  # paths relative to the corpus root
    onset: int
    apex: int
    offset: int
    levels: np.ndarray
    amplitude: float
    identity: int
    gray: bool
    keep: bool = True
    reason: str = ""
    rows: int = 1  # manifest rows a reader makes from it when kept
    apex_less: bool = False  # a coding row without an apex (CASME II "/", SAMM -1); its clip still has one


def _class_plan(per_class: int, rng: np.random.Generator) -> list[str]:
    """per_class labels of each class in a shuffled order."""
    labels = [c for c in CLASSES for _ in range(per_class)]
    return [labels[i] for i in rng.permutation(len(labels))]


def _amp(base: float, jitter: float, rng: np.random.Generator) -> float:
    """`base` times a random factor in [1 − jitter, 1 + jitter]."""
    return base * rng.uniform(1 - jitter, 1 + jitter)


def _sample(
    spec: DemoSpec,
    rng: np.random.Generator,
    timing: tuple[int, int, int, int, np.ndarray],
    *,
    micro: bool,
    **fields: Any,
) -> Sample:
    """A planned Sample from its (frames, onset, apex, offset, levels) timing, its amplitude drawn now (after the
    timing, the order of random draws every corpus byte depends on)."""
    _, onset, apex, offset, levels = timing
    base, jitter = (spec.micro_amplitude, spec.amplitude_jitter) if micro else (spec.macro_amplitude, spec.macro_jitter)
    return Sample(onset=onset, apex=apex, offset=offset, levels=levels, amplitude=_amp(base, jitter, rng), **fields)


def _micro_clip(dataset: str, spec: DemoSpec, rng: np.random.Generator) -> tuple[int, int, int, int, np.ndarray]:
    """(frames, onset, apex, offset, levels) of one micro clip at the dataset's frame rate.

    The movement lasts a random duration within `spec.micro_seconds`; the apex sits at 30–70 % of it (SMIC: within
    a sixth of the clip around the middle frame, which is where its reader, lacking an apex label, looks).
    """
    n = spec.frames(dataset, float(rng.uniform(*spec.micro_seconds)))
    onset, offset = (SAMM_PAD, n - 1 - SAMM_PAD) if dataset == "samm" else (0, n - 1)
    if dataset == "smic":
        middle, spread = (n - 1) // 2, max(1, n // 6)
        apex = middle + int(rng.integers(-spread, spread + 1))
    else:
        apex = onset + int(round(rng.uniform(0.3, 0.7) * (offset - onset)))
    apex = int(np.clip(apex, onset + 1, offset - 1))
    return n, onset, apex, offset, micro_levels(n, onset, apex, offset)


APEX_LESS_CLASSES = (POS, NEG, SUR)  # warps of the apex-less clips, in turn


def plan_casme2(spec: DemoSpec, rng: np.random.Generator, ids: list[int]) -> tuple[list[Sample], list[list[Any]]]:
    """CASME II clips (colour, imgN.jpg from a random start, onset to offset at 200 fps) and the coding-sheet rows;
    `spec.apex_less` extra rows with ApexFrame "/" (one per subject, first subjects) and one `fear` row."""
    numbers = sorted(rng.choice(np.arange(1, 27), spec.micro_subjects, replace=False).tolist())
    samples, sheet = [], []
    cycle = 0
    for s_i, (number, ident) in enumerate(zip(numbers, ids, strict=True)):
        sub = f"sub{number:02d}"
        labels = _class_plan(spec.micro_per_class, rng)
        extra = (["skip_apex"] if s_i < spec.apex_less else []) + (["skip_fear"] if s_i == 0 else [])
        labels = [*labels, *extra]
        episodes = rng.choice(np.arange(1, max(20, len(labels) + 3)), len(labels), replace=False)
        for k, label in enumerate(labels):
            filename = f"EP{episodes[k]:02d}_{int(rng.integers(1, 10)):02d}{'f' if rng.random() < 0.3 else ''}"
            start = int(rng.integers(20, 300))
            timing = n, onset, apex, offset, levels = _micro_clip("casme2", spec, rng)
            warp, keep, reason, apex_less = label, True, "", False
            if label == "skip_apex":  # a real CASME II quirk: the apex cell holds "/"
                warp = APEX_LESS_CLASSES[s_i % 3]
                emotion, apex_cell = EMOTIONS["casme2"][warp][0], "/"
                keep, reason, apex_less = True, "", True  # kept: mer prepare spots its apex (data.missing_apex)
            elif label == "skip_fear":  # an emotion the MEGC2019 protocol drops
                warp, emotion, apex_cell = NEG, "fear", start + apex
                keep, reason = False, "emotion 'fear' is not in the MEGC2019 3-class protocol"
            else:
                choices = EMOTIONS["casme2"][label]
                emotion = choices[cycle % len(choices)]
                cycle += 1
                apex_cell = start + apex
            files = [f"CASME2_RAW_selected/{sub}/{filename}/img{start + i}.jpg" for i in range(n)]
            samples.append(_sample(spec, rng, timing, micro=True, dataset="casme2", subject=f"casme2/{sub}",
                                   sample_id=f"{sub}_{filename}", label=warp, emotion=emotion, files=files,
                                   identity=ident, gray=False, keep=keep, reason=reason,
                                   apex_less=apex_less))  # fmt: skip
            sheet.append([number, filename, start + onset, apex_cell, start + offset, ACTION_UNITS[warp], emotion])
    return samples, sheet


def plan_samm(spec: DemoSpec, rng: np.random.Generator, ids: list[int]) -> tuple[list[Sample], list[list[Any]]]:
    """SAMM clips (gray, 200 fps, neutral frames either side of onset and offset) and the coding-sheet rows;
    `spec.apex_less` extra rows with Apex Frame -1 (one per subject, last subjects)."""
    numbers = sorted(rng.choice(np.arange(6, 38), spec.micro_subjects, replace=False).tolist())
    samples, sheet = [], []
    cycle = 0
    for s_i, (number, ident) in enumerate(zip(numbers, ids, strict=True)):
        sub = f"{number:03d}"
        labels = _class_plan(spec.micro_per_class, rng)
        if s_i >= spec.micro_subjects - spec.apex_less:
            labels.append("skip_apex")
        clips = rng.choice(np.arange(10, max(80, len(labels) + 11)), len(labels), replace=False)
        for k, label in enumerate(labels):
            filename = f"{sub}_{clips[k] // 10}_{clips[k] % 10 + 1}"
            start = int(rng.integers(1000, 9000))
            timing = n, onset, apex, offset, levels = _micro_clip("samm", spec, rng)
            warp, keep, reason, apex_cell, apex_less = label, True, "", start + apex, False
            if label == "skip_apex":  # a real SAMM quirk: apex -1 when the coders marked none
                warp = APEX_LESS_CLASSES[(s_i + 1) % 3]
                emotion, apex_cell = EMOTIONS["samm"][warp][0], -1
                keep, reason, apex_less = True, "", True  # kept: mer prepare spots its apex (data.missing_apex)
            else:
                choices = EMOTIONS["samm"][label]
                emotion = choices[cycle % len(choices)]
                cycle += 1
            files = [f"SAMM/{sub}/{filename}/{sub}_{start + i:05d}.jpg" for i in range(n)]
            samples.append(_sample(spec, rng, timing, micro=True, dataset="samm", subject=f"samm/{sub}",
                                   sample_id=filename, label=warp, emotion=emotion, files=files, identity=ident,
                                   gray=True, keep=keep, reason=reason, apex_less=apex_less))  # fmt: skip
            sheet.append([sub, filename, f"{sub}_{k + 1}", start + onset, apex_cell, start + offset, offset - onset + 1,
                          "Micro - 1/2", ACTION_UNITS[warp], "", emotion])  # fmt: skip
    return samples, sheet


def plan_smic(spec: DemoSpec, rng: np.random.Generator, ids: list[int]) -> list[Sample]:
    """SMIC-HS clips (100 fps) in class folders; no coding sheet, so the reader takes the middle frame as apex."""
    numbers = sorted(rng.choice(np.arange(1, 21), spec.micro_subjects, replace=False).tolist())
    samples = []
    for number, ident in zip(numbers, ids, strict=True):
        sub = f"s{number}"
        seen = dict.fromkeys(CLASSES, 0)
        for label in _class_plan(spec.micro_per_class, rng):
            seen[label] += 1
            clip = f"{sub}_{SMIC_SHORT[label]}_{seen[label]:02d}"
            start = int(rng.integers(10000, 900000))
            timing = n, onset, apex, offset, levels = _micro_clip("smic", spec, rng)
            files = [f"HS/{sub}/micro/{label}/{clip}/image{start + i:06d}.jpg" for i in range(n)]
            samples.append(_sample(spec, rng, timing, micro=True, dataset="smic", subject=f"smic/{sub}",
                                   sample_id=clip, label=label, emotion=label, files=files, identity=ident,
                                   gray=False))  # fmt: skip
    return samples


def plan_ckplus(spec: DemoSpec, rng: np.random.Generator, ids: list[int]) -> list[Sample]:
    """CK+ neutral → peak sequences (gray PNG), some without an emotion file."""
    numbers = sorted(rng.choice(np.arange(5, 140), spec.ckplus_subjects, replace=False).tolist())
    samples = []
    cycle = 0
    lo, hi = spec.ckplus_frames
    for number, ident in zip(numbers, ids, strict=True):
        sub = f"S{number:03d}"
        labels: list[str | None] = list(_class_plan(spec.ckplus_per_class, rng))
        labels += [None] * spec.ckplus_unlabelled
        labels = [labels[i] for i in rng.permutation(len(labels))]
        for seq_i, label in enumerate(labels, start=1):
            seq = f"{seq_i:03d}"
            n = int(rng.integers(lo, hi + 1))
            stem = f"{sub}_{seq}"
            files = [f"cohn-kanade-images/{sub}/{seq}/{stem}_{i:08d}.png" for i in range(1, n + 1)]
            warp = label if label is not None else CLASSES[int(rng.integers(0, 3))]
            if label is None:  # CK+ labels only some sequences; the others have an empty Emotion folder
                emotion, keep, reason = "", False, "no emotion file (sequence not labelled)"
            else:
                choices = EMOTIONS["ckplus"][label]
                emotion = choices[cycle % len(choices)]
                cycle += 1
                keep, reason = True, ""
            samples.append(_sample(spec, rng, (0, 0, n - 1, n - 1, macro_levels(n)), micro=False, dataset="ckplus",
                                   subject=f"ckplus/{sub}", sample_id=stem, label=warp, emotion=emotion, files=files,
                                   identity=ident, gray=True, keep=keep, reason=reason, rows=min(3, n)))  # fmt: skip
    return samples


def plan_jaffe(spec: DemoSpec, rng: np.random.Generator, ids: list[int]) -> list[Sample]:
    """JAFFE still images (gray TIFF) named code.EMOn.number, with neutral ones the protocol drops."""
    codes = sorted(rng.choice(np.array(JAFFE_CODES), spec.jaffe_subjects, replace=False).tolist())
    number = int(rng.integers(1, 30))
    samples = []
    for code, ident in zip(codes, ids, strict=True):
        plan: list[tuple[str | None, str]] = []
        for label in CLASSES:
            choices = EMOTIONS["jaffe"][label]
            plan += [(label, choices[i % len(choices)]) for i in range(spec.jaffe_per_class)]
        plan += [(None, "NE")] * spec.jaffe_neutral
        seen: dict[str, int] = {}
        for label, emo in sorted(plan, key=lambda p: p[1]):  # real JAFFE numbers expressions in alphabetical runs
            seen[emo] = seen.get(emo, 0) + 1
            stem = f"{code}.{emo}{seen[emo]}.{number}"
            number += 1
            keep = label is not None
            reason = "" if keep else "emotion 'neutral' is not in the MEGC2019 3-class protocol"
            levels = np.array([1.0 if keep else 0.0])
            samples.append(_sample(spec, rng, (0, 0, 0, 0, levels), micro=False, dataset="jaffe",
                                   subject=f"jaffe/{code}", sample_id=stem, label=label, emotion=emo,
                                   files=[f"{stem}.tiff"], identity=ident, gray=True, keep=keep,
                                   reason=reason))  # fmt: skip
    return samples


CASME2_HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]
SAMM_HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
               "Type", "Action Units", "Notes", "Estimated Emotion"]  # fmt: skip
SAMM_PREAMBLE: list[list[Any]] = [
    ["SAMM Micro-Movement Database: FACS codes (mer demo corpus: generated, not real data)"],
    [],
    ["Onset, Apex and Offset Frame are frame numbers as in the image file names (006_05562.jpg -> 5562)."],
    ["Apex Frame -1: no apex was coded for the movement."],
    ["Estimated Emotion: Anger, Contempt, Disgust, Fear, Happiness, Sadness, Surprise, Other."],
    [],
    ["Action Units follow FACS."],
    ["Inducement Code names the stimulus video."],
    ["Duration is Offset Frame - Onset Frame + 1."],
    [],
    ["The header row is row 14, as in SAMM_Micro_FACS_Codes_v2.xlsx."],
    [],
    [],
]


def write_xlsx(
    path: Path,
    header: list[Any],
    rows: list[list[Any]],
    preamble: list[list[Any]] = (),
    title: str = "Sheet1",
    before: Sequence[str] = (),
) -> None:
    """An xlsx coding sheet (openpyxl) with fixed timestamps inside and in the zip, so the bytes are reproducible.

    `title` names the sheet; `before` puts other (one-cell) sheets in front of it, as `SAMM.xlsx` has them.
    """
    from openpyxl import Workbook  # local: only generating a corpus writes xlsx, a reused one never does

    wb = Workbook()
    ws = wb.active
    ws.title = title
    for name in before:
        wb.create_sheet(name, 0)["A1"] = "not the coding table"
    for line in preamble:
        ws.append(line)
    ws.append(header)
    for line in rows:
        ws.append(line)
    _save(wb, path)


def write_workbook(path: Path, sheets: dict[str, list[list[Any]]]) -> None:
    """An xlsx workbook with one worksheet per name (rows from A1, in order) and fixed timestamps, byte-reproducible."""
    from openpyxl import Workbook  # local: only generating a corpus writes xlsx, a reused one never does

    wb = Workbook()
    for k, (name, lines) in enumerate(sheets.items()):
        ws = wb.active if k == 0 else wb.create_sheet(name)
        ws.title = name
        for line in lines:
            ws.append(line)
    _save(wb, path)


def _save(wb: Any, path: Path) -> None:
    """Save an openpyxl workbook with fixed timestamps inside and in the zip, so the bytes are reproducible."""
    wb.properties.creator = "mer demo generator"
    wb.properties.created = FIXED_TIME
    buffer = io.BytesIO()
    wb.save(buffer)
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = io.BytesIO()
    with zipfile.ZipFile(buffer) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", lambda m: m.group(1) + stamp.encode(), data)
            dst.writestr(zipfile.ZipInfo(info.filename, date_time=FIXED_TIME.timetuple()[:6]), data,
                         compress_type=zipfile.ZIP_DEFLATED)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out.getvalue())
