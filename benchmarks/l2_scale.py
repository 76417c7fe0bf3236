"""Does the paper's L2 scale (0.2) train? Fine-tunes one fold of the demo setup at several `l2` values, same seed.

Usage: python benchmarks/l2_scale.py --prepared runs/demo/prepared [--l2 0.2,0.001] [--pretrain-epochs 5]
Pre-trains once on the macro rows (conf/demo.yaml), then fine-tunes on the micro rows with each L2 scale (everything
else from the config, the paper's lr_decay included) and prints train cross-entropy, train loss (with the penalty)
and validation accuracy / UF1 per epoch, read from each run's CSV log, as a markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from mer.config import load_config
from mer.models.backbones import save_weights
from mer.prepare import load_prepared
from mer.train import train_stage

COLUMNS = {"train/ce": "train CE", "train/loss": "train loss", "val/acc": "val acc", "val/uf1": "val UF1"}


def epoch_table(log_dir: Path) -> pd.DataFrame:
    """Per-epoch means of the logged columns (Lightning's CSV logger writes train and val rows separately)."""
    df = pd.read_csv(log_dir / "logs" / "metrics.csv")
    cols = [c for c in COLUMNS if c in df.columns]
    return df.groupby("epoch")[cols].mean().rename(columns=COLUMNS)


def markdown(table: pd.DataFrame) -> str:
    """A small markdown table (no tabulate dependency)."""
    head = ["epoch", *table.columns]
    rows = [
        [str(i), *("" if pd.isna(v) else f"{v:.3f}" for v in row)]
        for i, row in zip(table.index, table.values, strict=True)
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", default="runs/demo/prepared")
    ap.add_argument("--out", default="runs/bench/l2_scale")
    ap.add_argument("--config", default="demo")
    ap.add_argument("--l2", default="0.2,0.001")
    ap.add_argument("--pretrain-epochs", type=int, default=5)
    ap.add_argument("--held-out", default=None, help="held-out micro subject (default: the first one)")
    ap.add_argument("overrides", nargs="*", help="dotted config overrides for every run")
    args = ap.parse_args()

    out = Path(args.out)
    prepared = load_prepared(Path(args.prepared))
    base = [*args.overrides, "logging.progress_bar=false", f"train.pretrain.epochs={args.pretrain_epochs}"]
    cfg = load_config(args.config, base)
    held = args.held_out or sorted(prepared.loc[prepared.kind == "micro", "subject"].unique())[0]
    weights = out / "pretrained.pt"
    if not weights.is_file():
        res = train_stage(cfg, prepared, "pretrain", out / "pretrain")
        save_weights(res.module.net, weights)
    results = {}
    for value in [float(v) for v in args.l2.split(",")]:
        run_cfg = load_config(args.config, [*base, f"train.finetune.l2={value}"])
        run_dir = out / f"l2_{value:g}"
        res = train_stage(run_cfg, prepared, "finetune", run_dir, held_out=[held], init_weights=weights)
        table = epoch_table(run_dir)
        results[value] = table
        print(f"\n### l2 = {value:g} (best val UF1 {res.best_score}, epoch {res.best_epoch}; {res.seconds:.0f} s)\n")
        print(markdown(table))
    f = cfg.train.finetune
    setup = {"config": args.config, "backbone": cfg.model.backbone, "held_out": held, "lr": f.lr,
             "lr_decay": f.lr_decay, "epochs": f.epochs, "unfreeze": dict(f.unfreeze)}  # fmt: skip
    (out / "l2_scale.json").write_text(
        json.dumps(
            {"setup": setup, "runs": {str(k): v.reset_index().to_dict("list") for k, v in results.items()}},
            indent=2,
            default=str,
        )  # fmt: skip
    )
    print("\nsetup:", json.dumps(setup))


if __name__ == "__main__":
    main()
