"""Face pipeline speed: images/s for MTCNN detection + alignment (cold cache) at batch 1 and batched, and warm cache.

Usage: python benchmarks/prepare_speed.py [--n 32] [--batch 16] [--device cpu] [--size 256] [--image 512] [--threads N]
       python benchmarks/prepare_speed.py --command [--quick]   # whole `mer prepare` commands, cold then warm,
                                                                 # and what the warm one imported

The images are distinct variants (rotation, scale, shift, noise) of the two public-domain photos that skimage and
matplotlib ship, all of one size (MTCNN batches images of one shape), written as PNG files to a temporary folder;
each configuration starts from an empty cache folder. Prints a Markdown table.

On a CPU shared with other busy processes, `--threads 1` is several times faster than two OpenMP threads
(spin-waiting threads lose their core); compare figures only at the same thread count and load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2  # noqa: E402
import matplotlib.cbook as cbook  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data as skdata  # noqa: E402

from mer.config import FaceConfig  # noqa: E402
from mer.face.align import align  # noqa: E402
from mer.face.cache import CropCache  # noqa: E402
from mer.face.detect import FaceDetector  # noqa: E402


def make_images(n: int, side: int, seed: int = 0) -> list[np.ndarray]:
    """n distinct side² RGB images: the two photos under random similarity transforms, brightness and noise."""
    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        grace = np.asarray(Image.open(fh).convert("RGB"))
    bases = [cv2.resize(skdata.astronaut(), (side, side)), cv2.resize(grace[44:556], (side, side))]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        base = bases[i % 2]
        m = cv2.getRotationMatrix2D(
            (side / 2 + rng.uniform(-20, 20), side / 2 + rng.uniform(-20, 20)),
            rng.uniform(-15, 15),
            rng.uniform(0.8, 1.1),
        )
        img = cv2.warpAffine(base, m, (side, side), borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        img = img * rng.uniform(0.8, 1.2) + rng.normal(0, 3, img.shape)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call takes."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


HEAVY = ("torch", "facenet_pytorch", "lightning", "timm", "albumentations", "kornia", "skimage")  # not for a warm run


def warm_imports(cmd: list[str]) -> list[str]:
    """The heavy modules a warm `mer prepare` (the same command once more, untimed) has imported when it ends."""
    code = (
        "import json, sys\nfrom mer.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    args = cmd[cmd.index("mer.cli") + 1 :]
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def command_speed(quick: bool) -> None:
    """Whole `mer prepare` commands on the demo corpus, as a user runs them: a cold cache, then a warm one, in one run.

    Each is a fresh process, so start-up (imports) is part of the figure, as it is for the user; a third, untimed warm
    run lists the heavy modules it imported (none expected: every crop is a cache hit).
    """
    from mer.demo import generate_corpus

    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        summary = generate_corpus(root / "data", seed=0, quick=quick)
        cmd = [sys.executable, "-m", "mer.cli", "prepare", "-c", "demo", "--out", str(root / "prepared")]
        for name, folder in summary.roots.items():
            cmd += ["--data", f"{name}={folder}"]
        times = {}
        for run in ("cold", "warm"):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[run] = time.perf_counter() - t
        heavy = warm_imports(cmd)
        n = len((root / "prepared" / "prepared.csv").read_text().splitlines()) - 1
    cpu = platform.processor() or platform.machine()
    print(f"\n`mer prepare` on the {'quick ' if quick else ''}demo corpus ({n} samples), {os.cpu_count()} CPUs, {cpu}, "
          f"load {load_start:.1f} → {os.getloadavg()[0]:.1f}\n")  # fmt: skip
    print("| run | seconds |\n|---|---:|")
    print(f"| cold cache (detect + align every sample) | {times['cold']:.1f} |")
    print(f"| warm cache (every sample a cache hit) | {times['warm']:.1f} |")
    print(f"\nwarm is {times['cold'] / times['warm']:.1f}× faster than cold, as a whole command; the warm run imported "
          f"{', '.join(heavy) if heavy else 'none of ' + ', '.join(HEAVY)}")  # fmt: skip


def main() -> None:
    """Run every configuration and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32, help="images per configuration")
    ap.add_argument("--batch", type=int, default=16, help="MTCNN batch size of the batched run")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--size", type=int, default=256, help="crop side")
    ap.add_argument("--image", type=int, default=512, help="source image side")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--command", action="store_true", help="time whole `mer prepare` commands, cold then warm")
    ap.add_argument("--quick", action="store_true", help="with --command: the tests' small demo corpus")
    args = ap.parse_args()
    if args.command:
        command_speed(args.quick)
        return
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    images = make_images(args.n, args.image)
    cfg = FaceConfig(size=args.size, device=args.device)
    detector = FaceDetector(args.device, cfg.min_face_size, 1)
    detector.detect(images[:2])  # load MTCNN and warm up kernels outside the timings
    rows: list[tuple[str, float, str]] = []

    # the two stages alone, on in-memory arrays
    for bs in (1, args.batch):
        detector.batch_size = bs
        t = timed(lambda: detector.detect(images))
        rows.append((f"MTCNN detection only, batch {bs}", args.n / t, ""))
    faces = [f[0] for f in detector.detect(images)]
    t = timed(lambda: [align(im, f.landmarks, cfg, f.box) for im, f in zip(images, faces, strict=True)])
    rows.append(("alignment only (roll refinement + warp + eye mask)", args.n / t, f"{1e3 * t / args.n:.2f} ms/img"))

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = []
        for i, im in enumerate(images):
            p = root / "src" / f"img{i:04d}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(p), cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
            paths.append(p)
        cold = {}
        for bs in (1, args.batch):
            detector.batch_size = bs
            cache = CropCache(root / f"cache_b{bs}", replace(cfg, batch_size=bs), detector=detector, progress=False)
            t = timed(lambda c=cache: c.get_or_make(paths))
            assert cache.stats["detected"] == args.n, cache.stats
            cold[bs] = t
            rows.append((f"cold cache (read + hash + detect + align + write), batch {bs}", args.n / t, ""))
        warm = CropCache(root / f"cache_b{args.batch}", replace(cfg, batch_size=args.batch), progress=False)
        t = timed(lambda: warm.get_or_make(paths))
        assert warm.stats["hits"] == args.n and warm._detector is None, warm.stats
        rows.append(
            ("warm cache (hash + lookup), no detection", args.n / t, f"{cold[args.batch] / t:.0f}× the cold run")
        )

    print(
        f"\nface pipeline, {args.n} images {args.image}², crops {args.size}², device {detector.device}, "
        f"torch threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs\n"
    )
    print("| configuration | images/s | note |")
    print("|---|---:|---|")
    for name, rate, note in rows:
        print(f"| {name} | {rate:.1f} | {note} |")


if __name__ == "__main__":
    main()
