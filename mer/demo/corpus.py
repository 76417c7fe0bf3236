"""`generate_corpus`: the demo corpus written to disk, its identities, its summary and the marker that makes re-runs
instant (the contact sheets and the test video are drawn by `mer.demo.pictures`).

The corpus is deterministic from its seed (byte-identical files): three random streams (plan, identities, render)
come from one `SeedSequence`, and the xlsx sheets carry fixed timestamps.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from mer.config import CLASSES
from mer.demo import pictures
from mer.demo.faces import Identity, make_identity, render
from mer.demo.layouts import (
    CASME2_HEADER,
    CASME2_XLSX,
    SAMM_HEADER,
    SAMM_PREAMBLE,
    SAMM_XLSX,
    Sample,
    plan_casme2,
    plan_ckplus,
    plan_jaffe,
    plan_samm,
    plan_smic,
    write_xlsx,
)
from mer.demo.longvideos import LONG, LONG_FOLDERS, long_identity_ids, plan_long, videos_frame, write_long
from mer.demo.spec import DATASETS, FOLDERS, FPS, GENERATOR_VERSION, MACRO, MICRO, POS, DemoSpec
from mer.errors import DataError

MARKER = "demo_corpus.json"
PREVIEW = "demo_preview.png"
IDENTITIES = "demo_identities.png"  # contact sheet: one neutral frame per identity


@dataclass
class DemoSummary:
    """What was generated: dataset roots, the per-dataset × class counts a reader keeps, subjects and ground truth.

    `counts` counts manifest rows (micro: clips; CK+: the last 3 frames of each labelled sequence; JAFFE: each
    labelled image). `samples` lists every generated sample, kept or deliberately unusable (`keep`, `reason`),
    with onset/apex/offset as indices into its numerically sorted frames; `apex` maps (dataset, sample_id) of each
    kept micro clip to its true apex index.
    """

    root: Path
    roots: dict[str, Path]
    counts: pd.DataFrame
    subjects: dict[str, list[str]]
    skipped_expected: int
    seed: int
    quick: bool
    spec: DemoSpec
    samples: pd.DataFrame
    apex: dict[tuple[str, str], int]
    preview: Path
    reused: bool = False
    seconds: float = 0.0
    skipped: dict[str, int] = field(default_factory=dict)
    identities: pd.DataFrame = field(default_factory=pd.DataFrame)
    identity_sheet: Path | None = None
    long_roots: dict[str, Path] = field(default_factory=dict)  # casme_sq, samm_lv → their roots (long videos)
    long_videos: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per long video
    long_intervals: pd.DataFrame = field(default_factory=pd.DataFrame)  # the ground truth `read_long` gives back

    def describe(self) -> str:
        """A short table for the terminal: samples per dataset and class, subjects, skips and the preview path."""
        how = "reused (same seed and spec)" if self.reused else f"generated in {self.seconds:.1f} s"
        size = "quick" if self.quick else "default"
        row = "{:<8} {:<6} {:>8} {:>9} {:>9} {:>9} {:>6} {:>8}"
        lines = [f"Demo corpus in {self.root} (seed {self.seed}, {size} size, {how})"]
        lines.append(row.format("dataset", "kind", "subjects", *CLASSES, "total", "skipped"))
        for dataset, counts in self.counts.iterrows():
            kind = "micro" if dataset in MICRO else "macro"
            values = [int(counts[c]) for c in CLASSES]
            skipped = self.skipped.get(dataset, 0)
            lines.append(row.format(dataset, kind, len(self.subjects[dataset]), *values, sum(values), skipped))
        lines += [
            "micro counts are clips, macro counts are images (CK+: the last 3 frames of each labelled sequence); "
            f"{self.skipped_expected} samples are unusable on purpose and the readers report them as skipped.",
        ]
        micro = self.samples[self.samples["kind"] == "micro"]
        if "fps" in micro:
            rates = ", ".join(f"{d} {int(g['fps'].iloc[0])} fps, {g['n_frames'].min()}–{g['n_frames'].max()} frames"
                              for d, g in micro.groupby("dataset", sort=False))  # fmt: skip
            lines.append(f"micro clips: {rates}")
        if "apex_less" in self.samples and self.samples["apex_less"].any():
            apex_less = self.samples[self.samples["apex_less"]].groupby("dataset").size()
            lines.append("apex-less coding rows (CASME II '/', SAMM -1; each clip has a real apex, which `mer "
                         "prepare` spots): " + ", ".join(f"{d} {n}" for d, n in apex_less.items()))  # fmt: skip
        if len(self.identities):
            roles = self.identities["role"].value_counts()
            lines.append(f"identities: {roles.get('micro', 0)} micro, {roles.get('macro', 0)} macro (none shared), "
                         f"{roles.get('held_out', 0)} held out for the test video")  # fmt: skip
            lines.append(f"identity sheet (one neutral frame per identity): {self.identity_sheet}")
        if len(self.long_videos):
            parts = []
            for d, g in self.long_videos.groupby("dataset", sort=False):
                truth = self.long_intervals[self.long_intervals["dataset"] == d]
                parts.append(f"{d} {len(g)} videos of {g['subject'].nunique()} subjects, {int(g['n_frames'].sum())} "
                             f"frames at {int(g['fps'].iloc[0])} fps, {int((truth['kind'] == 'ME').sum())} ME + "
                             f"{int((truth['kind'] == 'MaE').sum())} MaE")  # fmt: skip
            lines.append("long videos (spotting): " + "; ".join(parts))
        lines.append(f"preview: {self.preview}")
        return "\n".join(lines)


def _streams(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    plan, idents, pixels = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    return plan, idents, pixels


def _write_image(path: Path, image: np.ndarray, spec: DemoSpec) -> None:
    """JPEG (fixed quality), PNG or TIFF by extension; colour arrays are RGB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    params = [cv2.IMWRITE_JPEG_QUALITY, spec.jpeg_quality] if path.suffix == ".jpg" else []
    if not cv2.imwrite(str(path), out, params):
        raise DataError(f"cannot write {path} (is the folder writable?)")


def identity_plan(spec: DemoSpec) -> dict[int, str]:
    """Generator id → the dataset that identity belongs to; ids are unique across the corpus and never shared.

    Micro datasets get ids 0 … 3·micro_subjects − 1, then CK+ and JAFFE; the next id is `held_out_id`, the identity
    of the test video, which no dataset holds.
    """
    sizes = {"casme2": spec.micro_subjects, "samm": spec.micro_subjects, "smic": spec.micro_subjects,
             "ckplus": spec.ckplus_subjects, "jaffe": spec.jaffe_subjects}  # fmt: skip
    owners: dict[int, str] = {}
    for dataset in DATASETS:
        for _ in range(sizes[dataset]):
            owners[len(owners)] = dataset
    return owners


def held_out_id(spec: DemoSpec) -> int:
    """Generator id of the test video's identity: after every dataset's identities, so in no training set."""
    return len(identity_plan(spec))


def _identity_rng(seed: int, ident: int) -> np.random.Generator:
    """Each identity's own random stream: the same person for a seed whatever else the corpus holds."""
    return np.random.default_rng([seed, 7919, ident])


def make_identities(spec: DemoSpec, seed: int) -> dict[int, Identity]:
    """Every identity of the corpus (not the held-out one), at its dataset's frame size."""
    sizes = {**dict.fromkeys(MICRO, spec.micro_size), **dict.fromkeys(MACRO, spec.macro_size)}
    return {i: make_identity(i, sizes[d], _identity_rng(seed, i), spec) for i, d in identity_plan(spec).items()}


def held_out_identity(spec: DemoSpec, seed: int, size: int = pictures.VIDEO_SIZE) -> Identity:
    """The test video's identity: a person that appears in no dataset of the corpus."""
    ident = held_out_id(spec)
    return make_identity(ident, size, _identity_rng(seed, ident), spec)


def identities_table(spec: DemoSpec, seed: int, identities: dict[int, Identity], samples: list[Sample]) -> pd.DataFrame:
    """One row per identity (generator id, dataset, subject, role micro/macro/held_out) with its parameters."""
    subject_of: dict[int, str] = {}
    for s in samples:
        subject_of.setdefault(s.identity, s.subject)
    rows = []
    for i, dataset in identity_plan(spec).items():
        rows.append({"ident": i, "dataset": dataset, "subject": subject_of.get(i, ""),
                     "role": "micro" if dataset in MICRO else "macro", **identities[i].params})  # fmt: skip
    held = held_out_identity(spec, seed)
    rows.append({"ident": held.ident, "dataset": "", "subject": "", "role": "held_out", **held.params})
    return pd.DataFrame(rows)


def write_test_video(path: str | Path, spec: DemoSpec, seed: int, label: str = POS) -> dict[str, Any]:
    """The demo's test video (`mer.demo.pictures.write_test_video`) of the identity no dataset holds."""
    return pictures.write_test_video(path, spec, seed, held_out_identity(spec, seed, pictures.VIDEO_SIZE), label)


def generate_corpus(out: str | Path, seed: int = 0, quick: bool = False, spec: DemoSpec | None = None) -> DemoSummary:
    """Write the demo corpus under `out` (CASME2/, SAMM/, SMIC/, CK+/, JAFFE/, demo_preview.png) and summarise it.

    `spec` sets the sizes (default: `DemoSpec()`, or `DemoSpec.quick()` when `quick`). The same seed and spec give
    byte-identical files; when `out` already holds exactly that corpus (marker file `demo_corpus.json`), nothing is
    regenerated. A folder holding other data under those names is refused rather than overwritten.
    """
    started = time.perf_counter()
    spec = spec or (DemoSpec.quick() if quick else DemoSpec())
    spec.validate()
    out = Path(out)
    digest = spec.digest(seed)
    marker = out / MARKER
    existing = _read_marker(marker)
    if existing is not None and existing.get("digest") == digest:
        summary = _summary_from_marker(out, existing)
        if summary is not None:
            return summary
    _clear(out, existing is not None)
    out.mkdir(parents=True, exist_ok=True)
    # mark the folder as ours before writing, so an interrupted run is cleared (not refused) by the next one
    marker.write_text(json.dumps({"digest": digest, "complete": False}))

    plan_rng, _, render_rng = _streams(seed)
    owners = identity_plan(spec)
    micro_ids = {d: [i for i, o in owners.items() if o == d] for d in MICRO}
    macro_ids = {d: [i for i, o in owners.items() if o == d] for d in MACRO}
    identities = make_identities(spec, seed)

    casme2, casme2_sheet = plan_casme2(spec, plan_rng, micro_ids["casme2"])
    samm, samm_sheet = plan_samm(spec, plan_rng, micro_ids["samm"])
    samples = [
        *casme2,
        *samm,
        *plan_smic(spec, plan_rng, micro_ids["smic"]),
        *plan_ckplus(spec, plan_rng, macro_ids["ckplus"]),
        *plan_jaffe(spec, plan_rng, macro_ids["jaffe"]),
    ]
    roots = {d: out / FOLDERS[d] for d in DATASETS}
    write_xlsx(roots["casme2"] / CASME2_XLSX, CASME2_HEADER, casme2_sheet)
    write_xlsx(roots["samm"] / SAMM_XLSX, SAMM_HEADER, samm_sheet, SAMM_PREAMBLE)

    from tqdm.auto import tqdm  # local, as matplotlib below: only generating a corpus shows progress and plots

    preview_frames: dict[int, list[np.ndarray]] = {}
    wanted = pictures.preview_picks(samples)
    for k, sample in enumerate(tqdm(samples, desc="demo corpus", unit="sample", leave=False)):
        rng = np.random.default_rng(render_rng.integers(0, 2**63))
        frames = render(identities[sample.identity], sample.label, sample.levels, sample.amplitude, spec, rng,
                         sample.gray, nuisance=sample.dataset in MICRO)  # fmt: skip
        root = roots[sample.dataset]
        for rel, frame in zip(sample.files, frames, strict=True):
            _write_image(root / rel, frame, spec)
        if sample.dataset == "ckplus":
            seq_dir = Path(sample.files[-1]).parent.relative_to("cohn-kanade-images")
            emo_dir = root / "Emotion" / seq_dir
            emo_dir.mkdir(parents=True, exist_ok=True)
            if sample.keep:
                name = Path(sample.files[-1]).stem + "_emotion.txt"
                (emo_dir / name).write_text(f"   {float(sample.emotion):.7e}\n")
        if k in wanted:
            preview_frames[k] = frames

    long_videos, long_intervals = _write_long_videos(out, spec, seed)
    table = _samples_table(samples)
    preview = pictures.write_preview(out / PREVIEW, samples, preview_frames, wanted)
    people = identities_table(spec, seed, identities, samples)
    held = held_out_identity(spec, seed, spec.micro_size)
    pictures.write_identity_sheet(out / IDENTITIES, spec, seed, identities, owners, held)
    record = {
        "digest": digest,
        "complete": True,
        "generator": GENERATOR_VERSION,
        "seed": seed,
        "quick": quick,
        "spec": asdict(spec),
        "samples": json.loads(table.to_json(orient="records")),
        "identities": json.loads(people.to_json(orient="records")),
        "long_videos": json.loads(long_videos.to_json(orient="records")),
        "long_intervals": json.loads(long_intervals.to_json(orient="records")),
    }
    marker.write_text(json.dumps(record, indent=1))
    summary = _summary(out, table, people, spec, seed, quick, preview, False, time.perf_counter() - started)
    return _with_long(summary, long_videos, long_intervals)


def _write_long_videos(out: Path, spec: DemoSpec, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The long videos (`mer.demo.longvideos`) and their workbooks: (videos table, ground-truth intervals).

    Their plan and pixels come from streams of their own, so the rest of the corpus is the same with or without them.
    """
    if spec.long_subjects == 0:
        return pd.DataFrame(), pd.DataFrame()
    from tqdm.auto import tqdm

    plans = plan_long(spec, np.random.default_rng([seed, 4243]), long_identity_ids(spec, held_out_id(spec) + 1), seed)
    roots = {d: out / LONG_FOLDERS[d] for d in LONG}
    with tqdm(total=sum(len(p.files) for p in plans), desc="demo long videos", unit="frame", leave=False) as bar:
        truth = write_long(roots, plans, spec, seed, lambda path, image: _write_image(path, image, spec), bar.update)
    return videos_frame(plans), truth


def _with_long(summary: DemoSummary, videos: pd.DataFrame, intervals: pd.DataFrame) -> DemoSummary:
    """The summary with its long videos (roots only when there are any)."""
    if len(videos):
        summary.long_roots = {d: summary.root / LONG_FOLDERS[d] for d in LONG}
        summary.long_videos, summary.long_intervals = videos, intervals
    return summary


def load_summary(out: str | Path) -> DemoSummary:
    """The summary of a corpus generated earlier into `out` (read from its marker file), without regenerating."""
    out = Path(out)
    record = _read_marker(out / MARKER)
    summary = None if record is None else _summary_from_marker(out, record)
    if summary is None:
        raise DataError(f"no complete demo corpus in {out} (missing or stale {MARKER}); run `mer demo --data-only`")
    return summary


def _samples_table(samples: list[Sample]) -> pd.DataFrame:
    rows = []
    for s in samples:
        folder = str(Path(s.files[0]).parent) if len(s.files) > 1 else s.files[0]
        emotion = s.emotion
        if s.dataset == "ckplus" and emotion:
            emotion = str(int(float(emotion)))
        rows.append(
            {
                "dataset": s.dataset,
                "subject": s.subject,
                "sample_id": s.sample_id,
                "kind": "micro" if s.dataset in MICRO else "macro",
                "emotion": emotion,
                "label": s.label if s.keep else "",
                "keep": s.keep,
                "reason": s.reason,
                "path": f"{FOLDERS[s.dataset]}/{folder}",
                "n_frames": len(s.files),
                "onset": s.onset,
                "apex": s.apex,
                "offset": s.offset,
                "rows": s.rows if s.keep else 0,
                "fps": FPS.get(s.dataset, 0.0),
                "identity": s.identity,
                "apex_less": s.apex_less,
            }  # fmt: skip
        )
    return pd.DataFrame(rows)


def _summary(
    out: Path,
    table: pd.DataFrame,
    people: pd.DataFrame,
    spec: DemoSpec,
    seed: int,
    quick: bool,
    preview: Path,
    reused: bool,
    seconds: float,
) -> DemoSummary:
    kept = table[table["keep"]]
    counts = (
        kept.pivot_table(index="dataset", columns="label", values="rows", aggfunc="sum", fill_value=0)
        .reindex(index=list(DATASETS), columns=list(CLASSES), fill_value=0)
        .astype(int)
    )
    counts.index.name, counts.columns.name = "dataset", "label"
    subjects = {d: sorted(table.loc[table["dataset"] == d, "subject"].unique().tolist()) for d in DATASETS}
    micro = kept[kept["kind"] == "micro"]
    apex = {(d, sid): int(a) for d, sid, a in zip(micro["dataset"], micro["sample_id"], micro["apex"], strict=True)}
    skipped = {d: int(((table["dataset"] == d) & ~table["keep"]).sum()) for d in DATASETS}
    return DemoSummary(
        root=out,
        roots={d: out / FOLDERS[d] for d in DATASETS},
        counts=counts,
        subjects=subjects,
        skipped_expected=sum(skipped.values()),
        seed=seed,
        quick=quick,
        spec=spec,
        samples=table,
        apex=apex,
        preview=preview,
        reused=reused,
        seconds=seconds,
        skipped=skipped,
        identities=people,
        identity_sheet=out / IDENTITIES,
    )


def _read_marker(marker: Path) -> dict[str, Any] | None:
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return {}


def _summary_from_marker(out: Path, record: dict[str, Any]) -> DemoSummary | None:
    """The summary stored in the marker, or None when the corpus on disk is incomplete (then it is regenerated)."""
    if not record.get("complete"):
        return None
    try:
        table = pd.DataFrame(record["samples"])
        spec_dict = dict(record["spec"])
        values = {f.name: spec_dict[f.name] for f in fields(DemoSpec)}
        spec = DemoSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
        people = pd.DataFrame(record["identities"])
        long_videos = pd.DataFrame(record["long_videos"])
        long_intervals = pd.DataFrame(record["long_intervals"])
    except (KeyError, TypeError, ValueError):
        return None
    if len(long_intervals):
        long_intervals["apex"] = pd.array(long_intervals["apex"].tolist(), dtype="Int64")
    table["keep"] = table["keep"].astype(bool)
    table["apex_less"] = table["apex_less"].astype(bool)
    files = [out / p for p in table["path"]] + [out / PREVIEW, out / IDENTITIES]
    files += [out / p for p in (long_videos["path"] if len(long_videos) else [])]
    if not all(p.exists() for p in files):
        return None
    summary = _summary(out, table, people, spec, int(record["seed"]), bool(record["quick"]), out / PREVIEW, True, 0.0)
    return _with_long(summary, long_videos, long_intervals)


def _clear(out: Path, ours: bool) -> None:
    """Remove an older demo corpus (one with our marker); refuse to touch dataset folders we did not write."""
    present = [out / f for f in [*(FOLDERS[d] for d in DATASETS), *LONG_FOLDERS.values()] if (out / f).exists()]
    if not present:
        return
    if not ours:
        names = ", ".join(p.name for p in present)
        raise DataError(
            f"{out} already holds {names} without a {MARKER} marker (not a mer demo corpus); "
            "choose an empty folder for the demo so real data is never overwritten"
        )
    (out / MARKER).unlink(missing_ok=True)
    for path in present:
        shutil.rmtree(path)
    (out / PREVIEW).unlink(missing_ok=True)
    (out / IDENTITIES).unlink(missing_ok=True)
