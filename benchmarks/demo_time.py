"""Wall time of `mer demo` by stage (corpus, prepare, pretrain, LOSO per seed, final bundle, report), with the load.

Usage: python benchmarks/demo_time.py [--out runs/demo_time] [--quick] [--keep]
Runs `mer demo` in a fresh folder as a subprocess, so imports and start-up count as a user sees them. Stage times come
from the demo's `demo_timings.json` (wall and CPU seconds per stage); older versions of the demo that only print a
summary line are parsed from their output. The 1-minute load average before and after is printed: on a shared
machine, wall time says little without it, and CPU seconds / cores estimates the wall time on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path


def _legacy_stages(text: str) -> dict[str, dict[str, float]]:
    """Stage wall times from the output of a demo that writes no timings file (the 9-subject demo of before)."""
    stages: dict[str, dict[str, float]] = {}
    corpus = re.search(r"generated in ([\d.]+) s", text)
    if corpus:
        stages["corpus"] = {"wall_s": float(corpus.group(1))}
    line = re.search(r"prepare (\d+) s, pretrain (\d+) s, LOSO (\d+) s", text)
    if line:
        for name, value in zip(("prepare", "pretrain", "loso"), line.groups(), strict=True):
            stages[name] = {"wall_s": float(value)}
    return stages


def main() -> None:
    """Run the demo once and print a table of stage times, the total, CPU seconds and the load around the run."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/demo_time"))
    ap.add_argument("--quick", action="store_true", help="time `mer demo --quick` (the tests' size)")
    ap.add_argument("--keep", action="store_true", help="keep an existing --out folder (reuses its corpus)")
    args = ap.parse_args()
    if args.out.exists() and not args.keep:
        shutil.rmtree(args.out)
    cmd = [sys.executable, "-m", "mer.cli", "demo", "--out", str(args.out), *(["--quick"] if args.quick else [])]
    load_before = os.getloadavg()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}; cores: {os.cpu_count()}")
    print("running:", " ".join(cmd), flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_after = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "demo_time.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        print(proc.stdout[-3000:] + proc.stderr[-3000:])
        sys.exit(f"mer demo failed with exit code {proc.returncode}")
    timings_file = args.out / "demo_timings.json"
    stages = json.loads(timings_file.read_text())["stages"] if timings_file.is_file() else _legacy_stages(proc.stdout)
    print("\n| stage | wall s | CPU s |\n|---|---:|---:|")
    for name, t in stages.items():
        cpu = f"{t['cpu_s']:.0f}" if "cpu_s" in t else "–"
        print(f"| {name} | {t['wall_s']:.0f} | {cpu} |")
    cpu_total = usage.ru_utime + usage.ru_stime
    print(f"| **whole `mer demo`** (process, start-up included) | **{wall:.0f}** | {cpu_total:.0f} |")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in load_after)}")
    cores = os.cpu_count() or 1
    print(f"CPU s / {cores} cores = {cpu_total / cores:.0f} s: a lower bound of the wall time on an idle machine")
    tail = [line for line in proc.stdout.splitlines() if line.strip()][-4:]
    print("last lines of the demo:\n  " + "\n  ".join(tail))


if __name__ == "__main__":
    main()
