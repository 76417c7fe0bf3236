"""Motion-feature speed: onset→apex optical flow per sample (Farneback vs TV-L1) and LBP-TOP per clip.

Usage: python benchmarks/motion_speed.py [--sizes 112 256] [--repeats 5] [--frames 30] [--clip-size 128] [--threads 1]

Frames are the astronaut photo that scikit-image ships (grayscale face region, resized to each size); the apex is the
same face under a small smooth warp (a sub-pixel to 2-pixel "expression"), so the flow solvers do real work. Flow
time is the median of `--repeats` calls of `mer.face.flow.optical_flow` (plus `optical_strain`, timed apart);
LBP-TOP is `mer.face.lbptop.lbp_top` on a `--frames`-frame clip at `--clip-size`², 5×5 blocks, radius 1, 8 points,
uniform patterns (the MEGC2019 baseline's grid). TV-L1 rows need the `flow-tvl1` extra. Prints a Markdown table
and the machine's load (`uptime`): compare figures only at the same load.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable

import cv2
import numpy as np
from skimage import data as skdata

from mer.face.flow import optical_flow, optical_strain, tvl1_available
from mer.face.lbptop import feature_length, lbp_top


def face(size: int) -> np.ndarray:
    """The astronaut's face region, gray, size²."""
    gray = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray[30:250, 140:360], (size, size), interpolation=cv2.INTER_AREA)


def warped(img: np.ndarray, amplitude: float, phase: float = 0.0) -> np.ndarray:
    """img under a smooth sinusoidal displacement field of up to `amplitude` × (size / 128) pixels."""
    n = img.shape[0]
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    a = amplitude * n / 128.0
    dx = a * np.sin(2 * np.pi * yy / n + phase)
    dy = 0.5 * a * np.cos(2 * np.pi * xx / n + phase)
    map_x, map_y = (xx - dx).astype(np.float32), (yy - dy).astype(np.float32)
    return cv2.remap(img, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` calls after one warm-up call, in milliseconds."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "uptime unavailable"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[112, 256])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--clip-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads (cv2.setNumThreads)")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    before = uptime()
    methods = ["farneback"] + (["tvl1"] if tvl1_available() else [])
    rows = []
    for size in args.sizes:
        onset = face(size)
        apex = warped(onset, 1.5)
        for m in methods:
            ms = median_ms(lambda m=m, a=onset, b=apex: optical_flow(a, b, m), args.repeats)
            flow = optical_flow(onset, apex, m)
            strain_ms = median_ms(lambda flow=flow: optical_strain(flow), args.repeats)
            rows.append(("flow", m, f"{size}²", ms, 1e3 / ms, f"+ strain {strain_ms:.2f} ms"))
    base = face(args.clip_size)
    clip = np.stack([warped(base, 1.5 * np.sin(np.pi * t / args.frames), 0.1 * t) for t in range(args.frames)])
    grid = (5, 5)
    ms = median_ms(lambda: lbp_top(clip, grid), max(1, args.repeats // 2))
    n = feature_length(grid)
    rows.append(("LBP-TOP", "5×5, r 1, P 8", f"{args.frames}×{args.clip_size}²", ms, 1e3 / ms, f"{n} values"))
    after = uptime()
    print(
        f"CPU: {platform.processor() or platform.machine()} ({os.cpu_count()} cores visible), OpenCV {cv2.__version__} "
        f"with {cv2.getNumThreads()} thread(s), TV-L1 {'installed' if tvl1_available() else 'not installed'}"
    )
    print(f"load before: {before}\nload after:  {after}\n")
    print("| feature | method | input | ms/sample (median) | samples/s | note |")
    print("|---|---|---|---:|---:|---|")
    for kind, method, size, ms, rate, note in rows:
        print(f"| {kind} | {method} | {size} | {ms:.1f} | {rate:.1f} | {note} |")


if __name__ == "__main__":
    main()
