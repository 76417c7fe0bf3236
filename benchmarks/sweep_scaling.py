"""Sweep throughput: trials per hour with 1 and 2 worker processes on this machine, and the speed-up.

Usage: python benchmarks/sweep_scaling.py [--points 8] [--epochs 1] [--size 32] [--configs 1x2,1x1,2x1] [--repeat 2]
Each run is a fresh grid study of tiny trials (mobilevit_xxs, 2 inner folds over 6 synthetic micro subjects) in
its own folder; a configuration is WORKERSxTHREADS (torch threads per worker). "wall" counts everything a user
waits for (process start, imports, study creation); "steady" counts from the first trial's start to the last
trial's end. On a shared machine the figures are noisy: compare the rows of one run with each other (runs
alternate their order and the best of each configuration is reported).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.helpers.make_prepared

import optuna  # noqa: E402

from mer.sweep import open_storage, run_sweep, sweep_from_dict, trials_per_hour  # noqa: E402
from tests.helpers import make_prepared  # noqa: E402

LRS = [0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.03, 0.05]


def spec_for(out: Path, points: int, epochs: int, size: int, threads: int) -> dict:
    """A grid sweep of `points` learning rates (× 2 L2 weights when points > 8) with tiny trials."""
    l2 = [1.0e-4, 1.0e-2] if points > len(LRS) else [1.0e-3]
    lrs = LRS[: max(1, points // len(l2))]
    return {
        "study": "scaling",
        "base": ["default", "tiny"],  # mobilevit_xxs, max_shift 2, linear SVM
        "overrides": {
            "data.image_size": size,
            "face.size": size,
            "train.threads": threads,
            "train.finetune.epochs": epochs,
            "train.finetune.batch_size": 16,
            "train.finetune.val_subjects": 0.0,
            "train.finetune.unfreeze": {0: "all"},
            "logging.progress_bar": False,
            "svm.C": [1.0],
            "svm.inner_folds": 2,
        },
        "sampler": {"type": "grid", "seed": 0},
        "inner_folds": 2,
        "search": {"train.finetune.lr": lrs, "train.finetune.l2": l2},
        "out": str(out),
    }


def main() -> None:
    """Run the same grid with each worker count and print trials/hour and the speed-up over one worker."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument(
        "--configs", default="1x2,1x1,2x1", help="WORKERSxTHREADS (torch threads per worker), comma-separated."
    )
    ap.add_argument("--repeat", type=int, default=2, help="Runs per worker count, alternating the order.")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="Also write the rows as JSON here.")
    args = ap.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="sweep_scaling_"))
    subjects = {f"{d}/s{i}": "micro" for d in ("casme2", "samm") for i in range(3)}
    data = make_prepared(root / "prepared", subjects, per_class=2, size=args.size)
    cpus = os.cpu_count() or 1
    configs = [tuple(int(x) for x in c.split("x")) for c in args.configs.split(",")]  # (workers, threads each)
    order = [c for r in range(args.repeat) for c in (configs if r % 2 == 0 else configs[::-1])]
    rows = []
    for run, (workers, threads) in enumerate(order):
        out = root / f"run{run}-{workers}x{threads}"
        spec = sweep_from_dict(spec_for(out, args.points, args.epochs, args.size, threads))
        load = os.getloadavg()[0]
        start = time.perf_counter()
        summary = run_sweep(spec, prepared=data, workers=workers, live=False)
        wall = time.perf_counter() - start
        study = optuna.load_study(study_name="scaling", storage=open_storage(summary.storage, create=False))
        n = summary.n_complete + summary.n_pruned
        rows.append({"config": f"{workers}x{threads}", "workers": workers, "threads": threads, "trials": n,
                     "wall_s": round(wall, 1), "per_hour_wall": round(3600 * n / wall, 1),
                     "per_hour_steady": round(trials_per_hour(study), 1), "load_before": round(load, 2),
                     "load_after": round(os.getloadavg()[0], 2)})  # fmt: skip
    print(f"\nsweep scaling on {cpus} CPU cores (shared machine: noisy; 1-min load average shown), "
          f"{args.points} tiny trials per run ({args.epochs} epoch(s), {args.size}² crops, 2 inner folds)")  # fmt: skip
    head = f"{'workers×threads':>15} {'trials':>6} {'wall s':>7} {'trials/h wall':>14} {'trials/h steady':>16}"
    print(f"{head} {'load':>11}")
    for r in rows:
        print(f"{r['config']:>15} {r['trials']:>6} {r['wall_s']:>7} {r['per_hour_wall']:>14} "
              f"{r['per_hour_steady']:>16} {r['load_before']:>5}→{r['load_after']:<5}")  # fmt: skip
    names = [f"{w}x{t}" for w, t in configs]
    best = {c: max((r for r in rows if r["config"] == c), key=lambda r: r["per_hour_wall"]) for c in names}
    base = best[names[0]]
    print(f"best of {args.repeat} per configuration, speed-up relative to {names[0]}:")
    for c, r in best.items():
        wall_x = r["per_hour_wall"] / base["per_hour_wall"]
        steady_x = r["per_hour_steady"] / base["per_hour_steady"]
        print(f"  {c:>5}: {r['per_hour_wall']} trials/h wall, {r['per_hour_steady']} steady; "
              f"speed-up {wall_x:.2f} wall / {steady_x:.2f} steady")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
