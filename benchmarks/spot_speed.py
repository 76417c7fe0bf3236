"""Spotting throughput: frames/s of `mer spot`'s pipeline on a 640×480 video, with the stage breakdown, by batch size.

Usage: python benchmarks/spot_speed.py [--frames 360] [--batches 16 32 64 128] [--threads 1 2] [--detect-every 10]
       [--device cpu|cuda] [--repeats 1] [--check]

The video is the demo's held-out identity (its face ≈ 200 px high) in a 640×480 frame, 90 rendered frames (neutral, a
smile, neutral) repeated to `--frames`, written as mp4v. Each run is `extract_features` for the baseline's two windows
(k = 12 and 39 frames at 30 fps: four flow fields per frame) plus `spot_baseline`; the stages are wall seconds as
`VideoFeatures.timing` records them (decode, detect = MTCNN, track = following between detections, align, flow,
features = region statistics, score = the spotter), MTCNN loaded and warmed up before timing (once per process).
`--device cuda` runs MTCNN on the GPU (the flow stays on the CPU). `--check` is a small, quick run that prints one
line per batch size (benchmarks/gpu_check.sh). Prints a Markdown table, the machine and its load (`uptime`): compare
figures only from one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from mer.demo.corpus import held_out_identity
from mer.demo.faces import micro_levels, render
from mer.demo.spec import POS, DemoSpec
from mer.face.detect import FaceDetector
from mer.spotting.baseline import BaselineConfig, required_windows, spot_baseline
from mer.spotting.features import FeatureConfig, extract_features
from mer.spotting.video import open_long_video

STAGES = ("decode", "detect", "track", "align", "flow", "features", "score")


def make_video(path: Path, n: int, fps: float = 30.0) -> Path:
    """n frames of 640×480: the held-out identity (480² render) on a 640-wide canvas, an expression every 90 frames."""
    spec = DemoSpec()
    ident = held_out_identity(spec, 0, 480)
    clip = render(ident, POS, micro_levels(90, 30, 42, 60), spec.macro_amplitude, spec, np.random.default_rng(0),
                  gray=False)  # fmt: skip
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    for i in range(n):
        frame = cv2.copyMakeBorder(clip[i % len(clip)], 0, 0, 80, 80, cv2.BORDER_REPLICATE)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def uptime() -> str:
    """The machine's load line."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "uptime unavailable"


def run(
    path: Path, batch: int, threads: int, detect_every: int, detector: FaceDetector, max_frames: int | None = None
) -> dict[str, float]:
    """One pass of the pipeline; frames/s and ms per frame by stage."""
    cfg = BaselineConfig()
    video = open_long_video(path)
    fcfg = FeatureConfig(batch=batch, threads=threads, detect_every=detect_every)
    detector.batch_size = batch
    t0 = time.perf_counter()
    ks = required_windows(video.fps, min(video.n_frames, max_frames or video.n_frames), cfg)
    feats = extract_features(video, ks, fcfg, max_frames=max_frames, detector=detector)
    t1 = time.perf_counter()
    spot_baseline(feats, cfg)
    t2 = time.perf_counter()
    n = feats.n_frames
    stages = {**feats.timing, "score": t2 - t1}
    out = {"frames": n, "fps": n / (t2 - t0), "total_s": t2 - t0}
    out.update({s: 1e3 * stages.get(s, 0.0) / n for s in STAGES})
    return out


def main() -> None:
    """Parse the arguments, make the video, time each batch size, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=360)
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--threads", type=int, nargs="+", default=[2], help="flow threads (several: each is timed)")
    ap.add_argument("--detect-every", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--check", action="store_true", help="small quick run (gpu_check.sh)")
    args = ap.parse_args()
    if args.check:
        args.frames, args.batches, args.repeats = 96, [16, 64], 1
    import torch

    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}, OpenCV threads {cv2.getNumThreads()}, device {args.device}")  # fmt: skip
    print(f"# load before: {uptime()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = make_video(Path(tmp) / "spot640x480.mp4", args.frames)
        # one detector as `mer spot` builds it (min face 40 px at full size = 20 px at the 320-px detection side),
        # loaded and warmed up before timing: loading MTCNN's weights happens once per process
        fcfg = FeatureConfig()
        detector = FaceDetector(args.device, round(fcfg.min_face_size * fcfg.detect_max_side / 640), 16)
        run(path, args.batches[0], args.threads[0], args.detect_every, detector, max_frames=24)
        rows = []
        for _ in range(args.repeats):  # settings interleaved, so load changes hit them alike
            for b in args.batches:
                for th in args.threads:
                    rows.append(((b, th), run(path, b, th, args.detect_every, detector)))
    print(f"# load after: {uptime()}")
    if args.check:
        for (b, _), r in rows:
            print(f"spotting 640x480 ({args.device}) batch {b}: {r['fps']:.1f} frames/s")
        return
    rows.sort(key=lambda r: r[0])
    head = "| batch | flow threads | frames | frames/s | " + " | ".join(f"{s} ms/frame" for s in STAGES) + " |"
    print(head)
    print("|" + "---|" * (4 + len(STAGES)))
    for (b, th), r in rows:
        cells = " | ".join(f"{r[s]:.2f}" for s in STAGES)
        print(f"| {b} | {th} | {r['frames']:.0f} | {r['fps']:.1f} | {cells} |")


if __name__ == "__main__":
    main()
