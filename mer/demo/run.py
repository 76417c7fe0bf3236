"""`mer demo`: the whole pipeline on the generated corpus — prepare → pretrain → LOSO → report — in one call."""

from __future__ import annotations

import time
from pathlib import Path

from mer.config import Config, as_override, load_config
from mer.demo.corpus import DemoSummary
from mer.evaluation.loso import run_loso
from mer.prepare import run_prepare
from mer.train import run_pretrain


def demo_config(out: Path, quick: bool = False, seed: int = 0, overrides: list[str] | None = None) -> Config:
    """`conf/demo.yaml` pointed at `out`; with `quick`, the `conf/tiny.yaml` overlay on top (the tests' sizes)."""
    items = [f"seed={seed}", f"data.prepared={out / 'prepared'}", f"out={out}"]
    return load_config(["demo", "tiny"] if quick else "demo", items + list(overrides or []))


def run_demo(
    out: Path, summary: DemoSummary, quick: bool = False, seed: int = 0, overrides: list[str] | None = None
) -> Path:
    """Run every stage on the generated corpus whose readers' roots are in `summary.roots`; returns the report path."""
    out = Path(out)
    roots = [as_override(f"data.roots.{name}", str(root)) for name, root in summary.roots.items()]
    cfg = demo_config(out, quick, seed, [*roots, *(overrides or [])])
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    run_prepare(cfg, preview=True)  # into data.prepared = out/prepared
    timings["prepare"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    weights = run_pretrain(cfg, out / "pretrain")
    timings["pretrain"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    run_loso(cfg, out / "loso", weights)
    timings["loso"] = time.perf_counter() - t2
    total = time.perf_counter() - t0
    report = out / "loso" / "report.md"
    print(
        "demo finished in {:.0f} s (prepare {:.0f} s, pretrain {:.0f} s, LOSO {:.0f} s)\nreport: {}\nhtml:   {}".format(
            total, timings["prepare"], timings["pretrain"], timings["loso"], report, report.with_suffix(".html")
        )
    )
    return report
