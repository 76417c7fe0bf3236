"""Demo pre-training and one LOSO fold, old code path vs this checkout, side by side, with a per-part breakdown.

Usage:
  python benchmarks/pretrain_speed.py --prepared runs/demo/prepared [--old-ref 7139cde | --old-root DIR]
      [--rounds 2] [--no-fold] [overrides ...]

The old path is another commit's code (default 7139cde, the HEAD before the second throughput part), unpacked with
`git archive` into a temporary folder, run with its own `conf/demo.yaml`. Every measurement is a fresh Python process
(`--worker`) that puts one checkout first on sys.path, so both sides pay the same imports (not timed) and neither
inherits the other's warm caches. Rounds alternate old, new, old, new ... so load drift on a shared machine hits
both. Each process runs `train_stage` of the demo config (mobilevit_xxs, 64², 15 epochs, validation on held-out macro
subjects) with Lightning's SimpleProfiler, then one fine-tuning fold (the first micro subject held out) from the same
pre-trained weights for both sides: fine-tune, embed, SVM (`fit_network_and_svm`).

Printed per side (median over rounds) and per round: training images/s of the whole pre-training stage (training
images seen / wall seconds of `train_stage`, set-up and best-weights loading included), best macro validation
accuracy, seconds per part, and the new/old ratio of each round. The 1-minute load average is printed before and
after every process. CPU figures on a shared machine are noisy: compare the two sides of one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# SimpleProfiler action → part of the breakdown (the first matching fragment wins; the rest is Lightning and hooks)
PARTS = (
    ("data", ("dataloader_next", "val_next", "batch_to_device", "Module.train_dataloader", "Module.val_dataloader")),
    ("train step (fwd+bwd+opt)", ("run_training_batch",)),
    ("validation forward", ("SingleDeviceStrategy.validation_step",)),
    ("checkpoint", ("ModelCheckpoint",)),
    ("epoch-end logging hooks", ("on_validation_epoch_end", "on_train_epoch_end")),
)


def load() -> float:
    """1-minute load average."""
    return os.getloadavg()[0]


# ---------------------------------------------------------------------------------------------- one process


def worker(args: argparse.Namespace) -> None:
    """Run in a fresh process with `args.worker` first on sys.path: pre-training (+ a fold), results to JSON."""
    root = Path(args.worker).resolve()
    sys.path.insert(0, str(root))
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("WANDB_MODE", "disabled")
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.profilers import SimpleProfiler

    import mer
    import mer.evaluation.loso as loso
    import mer.train as train
    from mer.config import load_config
    from mer.data.prepared import load_prepared
    from mer.models.backbones import save_weights

    if not Path(mer.__file__).resolve().is_relative_to(root):
        raise SystemExit(f"mer imported from {mer.__file__}, not from {root}")
    profilers: list[SimpleProfiler] = []

    class ProfiledTrainer(pl.Trainer):
        """The stage's Trainer with a SimpleProfiler (the same few µs per hook on both sides)."""

        def __init__(self, *a: Any, **k: Any) -> None:
            profilers.append(SimpleProfiler())
            super().__init__(*a, profiler=profilers[-1], **k)

    class Count(Callback):
        """Training images seen."""

        images = 0

        def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, batch_idx: int) -> None:
            Count.images += len(batch[1])

    train.pl = type("pl", (), {"Trainer": ProfiledTrainer, "seed_everything": staticmethod(pl.seed_everything)})
    cfg = load_config("demo", [f"data.prepared={args.prepared}", "logging.progress_bar=false", *args.overrides])
    prepared = load_prepared(args.prepared)
    out = Path(args.out_dir)
    result: dict[str, Any] = {"root": str(root), "load_before": load()}

    def parts(profiler: SimpleProfiler) -> dict[str, float]:
        sums: dict[str, float] = {}
        for action, durations in profiler.recorded_durations.items():
            for part, fragments in PARTS:
                if any(f in action for f in fragments):
                    sums[part] = sums.get(part, 0.0) + sum(durations)
                    break
        return sums

    start = time.perf_counter()
    res = train.train_stage(cfg, prepared, "pretrain", out / "pretrain", callbacks=[Count()])
    wall = time.perf_counter() - start
    result["pretrain"] = {
        "wall_s": wall,
        "fit_s": res.seconds,
        "images": Count.images,
        "images_per_s": Count.images / wall,
        "best_val_acc": res.best_score,
        "best_epoch": res.best_epoch,
        "parts": parts(profilers[-1]),
        "actions": {a: round(sum(d), 3) for a, d in profilers[-1].recorded_durations.items()},
    }
    weights = Path(args.weights) if args.weights else save_weights(res.module.net, out / "pretrained.pt")
    result["weights"] = str(weights)
    if args.fold:
        micro = prepared[prepared["kind"] == "micro"]
        held = sorted(micro["subject"].unique())[0]
        stage_wall: list[float] = []
        inner = loso.train_stage

        def timed_stage(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            r = inner(*a, **k)
            stage_wall.append(time.perf_counter() - t)
            return r

        loso.train_stage = timed_stage
        Count.images = 0
        start = time.perf_counter()
        loso.fit_network_and_svm(
            cfg,
            prepared,
            out / "fold",
            held_out=[held],
            pretrained=weights,
            seed=cfg.seed,
            run_name="f",
            job_type="fold",
            callbacks=[Count()],
        )
        wall = time.perf_counter() - start
        result["fold"] = {
            "held_out": held,
            "wall_s": wall,
            "finetune_s": stage_wall[0],
            "embed_svm_s": wall - stage_wall[0],
            "images": Count.images,
            "parts": parts(profilers[-1]),
        }
    result["load_after"] = load()
    Path(args.json).write_text(json.dumps(result, indent=2))


# ---------------------------------------------------------------------------------------------- the comparison


def old_checkout(ref: str, into: Path) -> Path:
    """`git archive REF` of this repository unpacked into `into`."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_side(root: Path, name: str, args: argparse.Namespace, tmp: Path, k: int, weights: str | None) -> dict:
    """One fresh process on checkout `root`; returns its JSON."""
    js = tmp / f"{name}{k}.json"
    cmd = [sys.executable, __file__, "--worker", str(root), "--prepared", str(args.prepared), "--json", str(js),
           "--out-dir", str(tmp / f"{name}{k}"), *(["--fold"] if args.fold else []),
           *(["--weights", weights] if weights else []), *args.overrides]  # fmt: skip
    print(f"  {name} round {k}: load {load():.2f} ...", flush=True)
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"{name} round {k} failed:\n{done.stderr[-4000:]}")
    res = json.loads(js.read_text())
    p = res["pretrain"]
    fold = f", fold {res['fold']['wall_s']:.1f} s" if "fold" in res else ""
    loads = f"load {res['load_before']:.2f} → {res['load_after']:.2f}"
    print(f"  {name} round {k}: {p['images_per_s']:.2f} images/s ({p['wall_s']:.1f} s), val acc "
          f"{p['best_val_acc']:.4f}{fold}; {loads}", flush=True)  # fmt: skip
    return res


def table(results: dict[str, list[dict]]) -> None:
    """Median over rounds of each side, parts in seconds, and the per-round ratios."""
    med = statistics.median
    rows: list[tuple[str, str, str]] = []

    def row(label: str, get: Any, fmt: str = "{:.2f}") -> None:
        vals = {s: [get(r) for r in results[s]] for s in ("old", "new")}
        rows.append((label, *(fmt.format(med(v)) if all(x is not None for x in v) else "–" for v in vals.values())))

    row("pre-training images/s", lambda r: r["pretrain"]["images_per_s"])
    row("pre-training wall s (train_stage)", lambda r: r["pretrain"]["wall_s"], "{:.1f}")
    row("  of which fit s", lambda r: r["pretrain"]["fit_s"], "{:.1f}")
    for part, _ in PARTS:
        row(f"  {part} s", lambda r, p=part: r["pretrain"]["parts"].get(p, 0.0))
    row(
        "  set-up, best weights, Lightning rest s",
        lambda r: r["pretrain"]["wall_s"] - sum(r["pretrain"]["parts"].values()),
    )
    row("best macro validation accuracy", lambda r: r["pretrain"]["best_val_acc"], "{:.4f}")
    row("training images", lambda r: r["pretrain"]["images"], "{:.0f}")
    if all("fold" in r for rs in results.values() for r in rs):
        row("one fold wall s", lambda r: r["fold"]["wall_s"])
        row("  fine-tune s", lambda r: r["fold"]["finetune_s"])
        for part, _ in PARTS:
            row(f"    {part} s", lambda r, p=part: r["fold"]["parts"].get(p, 0.0))
        row("  embed + SVM s", lambda r: r["fold"]["embed_svm_s"])
    print(f"\n| {'median over rounds':<40} | old | new |\n|---|---:|---:|")
    for label, old, new in rows:
        print(f"| {label:<40} | {old} | {new} |")
    ratios = [n["pretrain"]["images_per_s"] / o["pretrain"]["images_per_s"]
              for o, n in zip(results["old"], results["new"], strict=True)]  # fmt: skip
    print(f"\npre-training images/s new/old per round: {', '.join(f'{x:.2f}' for x in ratios)}; "
          f"median {med(ratios):.2f}×")  # fmt: skip
    if all("fold" in r for rs in results.values() for r in rs):
        folds = [o["fold"]["wall_s"] / n["fold"]["wall_s"] for o, n in zip(results["old"], results["new"], strict=True)]
        print(f"fold wall old/new per round: {', '.join(f'{x:.2f}' for x in folds)}; median {med(folds):.2f}×")


def main() -> None:
    """Parse the arguments; run the comparison (or, with --worker, one side)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prepared", required=True, help="a `mer prepare` folder of the demo corpus")
    ap.add_argument("--old-ref", default="7139cde", help="commit of the old path (git archive of this repository)")
    ap.add_argument("--old-root", help="a checkout of the old path instead of --old-ref")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-fold", dest="fold", action="store_false", help="pre-training only")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", help=argparse.SUPPRESS)
    ap.add_argument("--weights", help=argparse.SUPPRESS)
    ap.add_argument("--fold", dest="fold", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*", help="config overrides for both sides (key=value)")
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    import platform

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; load {load():.2f}")
    with tempfile.TemporaryDirectory(prefix="pretrain_speed_") as t:
        tmp = Path(t)
        old = Path(args.old_root) if args.old_root else old_checkout(args.old_ref, tmp / "old")
        sides = {"old": old, "new": ROOT}
        results: dict[str, list[dict]] = {"old": [], "new": []}
        weights = None  # both sides' folds start from the first old pre-training's weights
        for k in range(args.rounds):
            for name in ("old", "new") if k % 2 == 0 else ("new", "old"):
                res = run_side(sides[name], name, args, tmp, k, weights)
                weights = weights or res["weights"]
                results[name].append(res)
        table(results)
    print(f"load at the end {load():.2f}")


if __name__ == "__main__":
    main()
