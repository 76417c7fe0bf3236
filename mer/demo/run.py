"""`mer demo`: the whole pipeline on the generated corpus — prepare → pretrain → LOSO per seed → final bundle →
test video → summary — and `run_ablations`, the paper's ablations on the same corpus and seeds.

Stage times (wall and CPU seconds) go to OUT/demo_timings.json, the seed table and the ablation table to
OUT/demo_summary.md and OUT/ablations.md; `run_methods` (`mer demo --methods`) writes OUT/methods.md.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from mer.config import CONF_DIR, Config, as_override, load_config, to_yaml
from mer.demo.corpus import DemoSummary, write_test_video
from mer.evaluation.bootstrap import bootstrap_intervals
from mer.evaluation.loso import run_final
from mer.evaluation.methods import load_methods, run_compare
from mer.evaluation.run_folder import CLASSIFIERS, RunFolder
from mer.evaluation.runs import load_run
from mer.evaluation.seeds import run_seeds as run_seed_study
from mer.prepare import run_prepare
from mer.train import run_pretrain

SEEDS = 3  # LOSO runs of the default demo (seed, seed + 1, seed + 2); `--quick` runs one
TIMINGS = "demo_timings.json"
SUMMARY = "demo_summary.md"
ABLATIONS = "ablations.md"
METHODS = "methods.md"
METHOD_CONFIGS = CONF_DIR / "method" / "demo"  # conf/method/*.yaml at the demo's sizes
METHOD_NAMES = ("paper", "ststnet", "off_apexnet", "lbptop")
SYNTHETIC_NOTE = (
    "Synthetic data: these numbers come from the generated demo corpus and are not comparable with published results "
    "on CASME II, SAMM and SMIC."
)


class StageClock:
    """Wall and CPU seconds per named stage (CPU: this process, all threads), written as JSON."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the body of a `with` block as stage `name`."""
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.stages[name] = {"wall_s": round(time.perf_counter() - wall, 2),
                                 "cpu_s": round(time.process_time() - cpu, 2)}  # fmt: skip

    def write(self, path: Path, extra: dict[str, Any]) -> None:
        """The stages and `extra` (load, sizes) as JSON."""
        path.write_text(json.dumps({"stages": self.stages, **extra}, indent=2))


def demo_config(out: Path, quick: bool = False, seed: int = 0, overrides: list[str] | None = None) -> Config:
    """`conf/demo.yaml` pointed at `out`; with `quick`, the `conf/tiny.yaml` overlay on top (the tests' sizes)."""
    items = [f"seed={seed}", f"data.prepared={out / 'prepared'}", f"out={out}"]
    if quick:  # a handful of tiny folds: starting worker processes would cost more than it saves
        items.append("loso.workers=1")
    return load_config(["demo", "tiny"] if quick else "demo", items + list(overrides or []))


def run_seeds(cfg: Config, out: Path, weights: Path | None, seeds: Sequence[int]) -> dict[int, Path]:
    """LOSO once per seed into `out/seed<k>/` (`loso.seeds`, `mer.evaluation.seeds`); returns {seed: run folder}."""
    study = load_config(text=to_yaml(cfg), overrides=[f"loso.seeds={list(seeds)}"])
    run_seed_study(study, out, weights)
    return {k: RunFolder(out).seed(k).path for k in seeds}


def seed_table(runs: dict[int, Path]) -> pd.DataFrame:
    """Composite UF1 / UAR of the SVM and the softmax head per seed, then the mean and sd over seeds."""
    rows = []
    for k, run_dir in runs.items():
        scores = load_run(run_dir).scores()
        row: dict[str, Any] = {"seed": str(k)}
        for clf in CLASSIFIERS:
            comp = scores.get(clf, {}).get("composite", {})
            row[f"{clf} UF1"], row[f"{clf} UAR"] = comp.get("uf1"), comp.get("uar")
        rows.append(row)
    table = pd.DataFrame(rows)
    values = table.drop(columns="seed").astype(float)
    mean = {"seed": "mean", **values.mean().to_dict()}
    sd = {"seed": "sd", **values.std(ddof=1).to_dict()} if len(values) > 1 else {"seed": "sd"}
    return pd.concat([table, pd.DataFrame([mean, sd])], ignore_index=True)


def bootstrap_uf1(runs: dict[int, Path], classifier: str = "svm", n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95 % interval of the seed-mean composite UF1 over subjects (`mer.evaluation.bootstrap`, as the reports)."""
    frames = [load_run(d).predictions for d in runs.values()]
    lo, hi = bootstrap_intervals(frames, CLASSIFIERS[classifier], n_resamples=n, seed=seed)["composite"]["uf1"]
    return (float("nan") if lo is None else lo, float("nan") if hi is None else hi)


def _mean_sd(table: pd.DataFrame, column: str) -> str:
    mean = table.loc[table["seed"] == "mean", column].iloc[0]
    sd = table.loc[table["seed"] == "sd", column].iloc[0] if "sd" in set(table["seed"]) else float("nan")
    if pd.isna(mean):
        return "–"
    return f"{mean:.3f} ± {sd:.3f}" if not pd.isna(sd) else f"{mean:.3f}"


def _md(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        cells = [f"{v:.3f}" if isinstance(v, float) and not pd.isna(v) else ("–" if pd.isna(v) else str(v)) for v in r]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def run_demo(
    out: Path,
    summary: DemoSummary,
    quick: bool = False,
    seed: int = 0,
    overrides: list[str] | None = None,
    seeds: Sequence[int] | None = None,
) -> Path:
    """Run every stage on the generated corpus whose readers' roots are in `summary.roots`; returns the summary path.

    LOSO runs once per seed (default: `seed`, `seed`+1, `seed`+2; `quick`: `seed` only) into OUT/loso/seed<k>/;
    then the `--final` bundle on every micro subject (OUT/final/bundle) and a test video of an identity that no
    dataset holds, one per class (OUT/test_videos/<class>.mp4), each classified by the bundle; the last lines
    printed are those predictions beside the truth and a `mer predict` command to try.
    """
    out = Path(out)
    cfg = demo_config(out, quick, seed, [*_roots(summary), *(overrides or [])])
    seeds = list(seeds) if seeds is not None else [seed + i for i in range(1 if quick else SEEDS)]
    clock = StageClock()
    clock.stages["corpus"] = {"wall_s": round(summary.seconds, 2)}
    load_before = _load()
    started = time.perf_counter()
    with clock.stage("prepare"):
        run_prepare(cfg, preview=True)  # into data.prepared = out/prepared
    with clock.stage("pretrain"):
        weights = run_pretrain(cfg, out / "pretrain")
    with clock.stage(f"loso {len(seeds)} seed(s)"):
        runs = run_seeds(cfg, out / "loso", weights, seeds)
    with clock.stage("final bundle"):
        bundle = run_final(cfg, out / "final", weights)
    with clock.stage("test videos + summary"):
        videos = test_videos(out / "test_videos", summary, bundle, list(cfg.data.classes))
        table = seed_table(runs)
        interval = bootstrap_uf1(runs, "svm", n=200 if quick else 1000)
        text = _summary_text(cfg, summary, runs, table, interval, videos, bundle)
        (out / SUMMARY).write_text(text)
    total = time.perf_counter() - started
    clock.write(out / TIMINGS, {"load_before": load_before, "load_after": _load(), "seeds": seeds,
                                "quick": quick, "stages_total_s": round(total, 1)})  # fmt: skip
    times = ", ".join(f"{name} {t['wall_s']:.0f} s" for name, t in clock.stages.items())
    print(f"\n{_seed_lines(table, interval)}")
    print(f"demo finished in {total:.0f} s ({times})")
    print(f"reports: {', '.join(str(d / 'report.md') for d in runs.values())}")
    print(f"summary: {out / SUMMARY}")
    first = videos[0]
    where = f"apex at frame {first['apex']} of {first['n_frames']}"
    print(f"test videos of held-out identity {first['identity']} (in no training set; one per class, {where}), "
          "as `mer predict` with the final model classifies them:")  # fmt: skip
    print(_md(video_table(videos)))
    print(f"{_agreement(videos)}. Predict one yourself with:")
    print(f"  mer predict {first['path']} --model {bundle}")
    return out / SUMMARY


def test_videos(folder: Path, summary: DemoSummary, bundle: Path, classes: Sequence[str]) -> list[dict[str, Any]]:
    """One test video per class of the held-out identity (`folder/<class>.mp4`), each classified by the final
    bundle as `mer predict` does: what it shows (`write_test_video`) plus `predicted`, `classifier` and the softmax
    `probabilities`, whatever the model answers."""
    from mer.inference.bundle import load_bundle  # torch, ONNX: only now
    from mer.inference.predict import predict_path

    model = load_bundle(bundle)
    videos = []
    for label in classes:
        video = write_test_video(folder / f"{label}.mp4", summary.spec, summary.seed, label=label)
        result = predict_path(video["path"], model, progress=False)
        videos.append({**video, "predicted": result["label"], "classifier": result["classifier"],
                       "probabilities": result["probabilities"], "predicted_apex": result["apex_frame"]})  # fmt: skip
    return videos


def video_table(videos: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Video, what it shows, what the final model predicts (and by which classifier), the softmax probabilities."""
    rows = []
    for v in videos:
        row = {"video": v["path"], "shows": v["label"], "predicted": v["predicted"], "by": v["classifier"],
               "agrees": "yes" if v["predicted"] == v["label"] else "no"}  # fmt: skip
        row.update({f"p({c})": f"{p:.2f}" for c, p in v["probabilities"].items()})
        rows.append(row)
    return pd.DataFrame(rows)


def _agreement(videos: Sequence[dict[str, Any]]) -> str:
    right = sum(v["predicted"] == v["label"] for v in videos)
    return (
        f"{right} of {len(videos)} test videos predicted as the class they show (one clip per class: a spot "
        "check of the bundle, not a score; the LOSO reports are the estimate)"
    )


def _roots(summary: DemoSummary) -> list[str]:
    """The corpus's dataset folders as `data.roots.NAME` overrides."""
    return [as_override(f"data.roots.{name}", str(root)) for name, root in summary.roots.items()]


def _seed_lines(table: pd.DataFrame, interval: tuple[float, float]) -> str:
    lo, hi = interval
    return (f"composite UF1 over {int((~table['seed'].isin(['mean', 'sd'])).sum())} seed(s): "
            f"SVM {_mean_sd(table, 'svm UF1')} (95 % subject bootstrap {lo:.3f}–{hi:.3f}), "
            f"softmax {_mean_sd(table, 'softmax UF1')}; chance 0.333. {SYNTHETIC_NOTE}")  # fmt: skip


def _summary_text(
    cfg: Config,
    summary: DemoSummary,
    runs: dict[int, Path],
    table: pd.DataFrame,
    interval: tuple[float, float],
    videos: Sequence[dict[str, Any]],
    bundle: Path,
) -> str:
    micro = summary.samples[(summary.samples["kind"] == "micro") & summary.samples["keep"]]
    lines = [
        "# mer demo: summary",
        "",
        f"> {SYNTHETIC_NOTE}",
        "",
        f"Corpus: {len(micro)} micro clips of {micro['subject'].nunique()} LOSO subjects, "
        f"{int(summary.counts.loc[['ckplus', 'jaffe']].values.sum())} macro images; config `{cfg.name}` "
        f"({cfg.model.backbone}, {cfg.data.image_size}² crops, eye mask {cfg.face.eye_mask}).",
        "",
        "## Composite scores per seed (leave-one-subject-out)",
        "",
        _md(table),
        "",
        _seed_lines(table, interval),
        "",
        "Runs: " + ", ".join(f"`{d}`" for d in runs.values()),
        "",
        "## Ready to use",
        "",
        f"- final model (every micro subject): `{bundle}`",
        f"- test videos of held-out identity {videos[0]['identity']}, one per class (apex at frame "
        f"{videos[0]['apex']} of {videos[0]['n_frames']}, {videos[0]['fps']:.0f} fps), and what the final model "
        "predicts for each:",
        "",
        _md(video_table(videos)),
        "",
        f"{_agreement(videos)}.",
        "",
        f"- `mer predict {videos[0]['path']} --model {bundle}`",
        "",
    ]
    return "\n".join(lines)


def run_ablations(out: Path, summary: DemoSummary, quick: bool = False, seed: int = 0) -> Path:
    """The paper's ablations on the demo's corpus and seeds (run `run_demo` first): no transfer (from scratch) and
    eye mask off (its own prepare and pre-training); SVM vs softmax come from every run. Writes OUT/ablations.md."""
    out = Path(out)
    seeds = [seed + i for i in range(1 if quick else SEEDS)]
    cfg = demo_config(out, quick, seed, _roots(summary))
    prepared, weights = out / "prepared", out / "pretrain" / "pretrained.pt"
    demo_runs = run_seeds(cfg, out / "loso", weights, seeds)  # complete folds are reused, not rerun
    no_transfer = load_config(["demo", "tiny", "ablation/no_transfer"] if quick else ["demo", "ablation/no_transfer"],
                              [f"seed={seed}", f"data.prepared={prepared}", f"out={out}"])  # fmt: skip
    rows = {"demo (transfer, eye mask, SVM)": seed_table(demo_runs)}
    rows["no transfer (from scratch)"] = seed_table(
        run_seeds(no_transfer, out / "ablations" / "no_transfer", None, seeds)
    )
    nomask_prepared = out / "ablations" / "no_eye_mask" / "prepared"
    nomask = demo_config(out, quick, seed, [*_roots(summary), "face.eye_mask=none", f"data.prepared={nomask_prepared}"])
    run_prepare(nomask)
    nomask_weights = run_pretrain(nomask, out / "ablations" / "no_eye_mask" / "pretrain")
    rows["eye mask off (own prepare + pre-training)"] = seed_table(
        run_seeds(nomask, out / "ablations" / "no_eye_mask" / "loso", nomask_weights, seeds)
    )
    base = rows["demo (transfer, eye mask, SVM)"]
    lines = ["# mer demo: ablations", "", f"> {SYNTHETIC_NOTE}", "",
             f"Composite UF1, mean ± sd over seeds {', '.join(map(str, seeds))} (load {_load()}).", "",
             "| run | SVM UF1 | softmax UF1 | SVM UF1 per seed | Δ SVM UF1 vs demo |",
             "|---|---:|---:|---|---:|"]  # fmt: skip
    for name, table in rows.items():
        per_seed = table.loc[~table["seed"].isin(["mean", "sd"]), "svm UF1"].astype(float)
        delta = float(table.loc[table["seed"] == "mean", "svm UF1"].iloc[0]) - float(
            base.loc[base["seed"] == "mean", "svm UF1"].iloc[0]
        )
        lines.append(f"| {name} | {_mean_sd(table, 'svm UF1')} | {_mean_sd(table, 'softmax UF1')} | "
                     f"{' / '.join(f'{v:.3f}' for v in per_seed)} | {delta:+.3f} |")  # fmt: skip
    path = out / ABLATIONS
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[4:]))
    print(f"ablations: {path}")
    return path


def run_methods(out: Path, summary: DemoSummary, quick: bool = False, seed: int = 0) -> Path:
    """The four methods (conf/method/demo/*.yaml) through `mer compare` on the demo corpus and seeds, into
    OUT/methods/; the Methods table with the wall time and load goes to OUT/methods.md. Reuses OUT/prepared when
    `mer demo` made it; `quick` runs one seed of 2-epoch trainings (the tests' sizes)."""
    out = Path(out)
    seeds = [seed + i for i in range(1 if quick else SEEDS)]
    overrides = [*_roots(summary), f"data.prepared={out / 'prepared'}", f"out={out}"]
    if quick:
        overrides += ["loso.workers=1", "train.pretrain.epochs=2", "train.finetune.epochs=2"]
    files = [METHOD_CONFIGS / f"{name}.yaml" for name in METHOD_NAMES]
    load_before, started = _load(), time.perf_counter()
    md = run_compare(load_methods(files, (), overrides), out / "methods", seeds=seeds, resamples=200 if quick else 1000)
    wall = time.perf_counter() - started
    body = md.read_text().split("\n", 1)[1]  # compare.md without its title
    text = "\n".join([
        "# mer demo: methods", "", f"> {SYNTHETIC_NOTE}", "",
        f"Every method through LOSO on seeds {', '.join(map(str, seeds))} (`mer compare "
        f"{' '.join(str(p.relative_to(CONF_DIR.parent)) for p in files)}`): {wall:.0f} s wall, load average "
        f"{load_before} before and {_load()} after, {os.cpu_count()} CPU cores.", "", body.lstrip(),
    ])  # fmt: skip
    path = out / METHODS
    path.write_text(text)
    timing = {"wall_s": round(wall, 1), "load_before": load_before, "load_after": _load(), "seeds": seeds,
                   "quick": quick, "methods": [p.stem for p in files]}  # fmt: skip
    (out / "methods" / "methods_timing.json").write_text(json.dumps(timing, indent=2))
    print(f"methods finished in {wall:.0f} s (load {load_before} → {_load()}): {path}")
    return path
