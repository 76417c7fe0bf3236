"""Training throughput (images/s) and peak memory, and the GPU check that `benchmarks/gpu_check.sh` runs.

Usage:
  python benchmarks/train_speed.py [--size 256] [--batch 16] [--steps 5] [--backbones mobilevit_xxs,...]
      one optimizer step at a time on random tensors (no data path); on a GPU also AMP + channels_last vs fp32.
  python benchmarks/train_speed.py --check [--cpu-smoke]
      what benchmarks/gpu_check.sh prints: training images/s with the real data paths (per-sample albumentations
      in a DataLoader vs device-side batch augmentation), fp32 vs bf16 + channels_last; one paper-sized LOSO fold's
      wall time; several folds sharing one device (measured aggregate images/s); the projected time of the paper's
      whole recipe at 1, 2 and 4 folds per GPU; MTCNN batched detection frames/s. --cpu-smoke (automatic without
      CUDA) uses small sizes so it runs in under a minute on a CPU; its figures only show that the check works.
CPU figures on a shared machine are noisy: compare the rows of one run with each other, not with another run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from mer.models.backbones import MERNet  # noqa: E402

# The paper's recipe (mer/conf/paper.yaml; MEGC2019 composite): macro pre-training, then one fine-tuning per subject.
PRETRAIN_IMAGES, PRETRAIN_EPOCHS, PRETRAIN_VAL = 9300, 100, 0.2
MICRO_CLASS_COUNTS = {"negative": 250, "positive": 109, "surprise": 83}  # 442 samples
MICRO_SUBJECTS = 68
FOLDS_PER_GPU = (1, 2, 4)


def bench(backbone: str, size: int, batch: int, steps: int, device: str, amp: bool, channels_last: bool) -> dict:
    """Median images/s over `steps` training steps after one warm-up step."""
    net = MERNet(backbone, image_size=size).to(device).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(batch, 1, size, size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 3, (batch,), device=device)
    dtype = torch.bfloat16 if device == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(steps + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast(device, dtype=dtype, enabled=amp):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t)
    times.sort()
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {"images_per_s": batch / times[len(times) // 2], "peak_mib": peak}


# ---------------------------------------------------------------------------------------------- the GPU check


@dataclass
class Sizes:
    """What the check runs: the paper's sizes on a GPU, small ones for the CPU smoke run."""

    size: int
    batch: int
    steps: int
    warmup: int
    crops: int
    backbones: tuple[str, ...]
    fold_backbone: str
    fold_scale: float  # fraction of the paper's 442 micro samples in the measured fold
    fold_epochs: int | None  # None: the paper's 30
    fold_subjects: int
    workers: int
    concurrent: tuple[int, ...]
    mtcnn_frames: int
    mtcnn_batch: int
    threads: int = 0  # torch CPU threads (0: torch's default); the smoke run uses 1 (oversubscribed CI cores)


GPU = Sizes(256, 64, 12, 3, 1024, ("mobilevit_xxs", "mobilevit_s"), "mobilevit_s", 1.0, None, MICRO_SUBJECTS,
            8, FOLDS_PER_GPU, 128, 32)  # fmt: skip
SMOKE = Sizes(64, 8, 2, 1, 64, ("mobilevit_xxs", "mobilevit_s"), "mobilevit_xxs", 0.06, 1, 6, 0, (1, 2), 4, 4, 1)


def _crops(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size), dtype=np.uint8), rng.integers(0, 3, n)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def data_path_rate(
    backbone: str, sz: Sizes, device: str, bf16_cl: bool, aug_on: str, steps: int | None = None, ready: bool = False
) -> dict:
    """Training images/s through a real data path: per-sample albumentations (DataLoader) or device-side batches.

    With `ready`, prints 'ready' after warm-up and waits for a line on stdin (so concurrent workers start together).
    """
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler

    from mer.config import AugmentConfig

    if sz.threads:
        torch.set_num_threads(sz.threads)
    cfg = AugmentConfig(max_shift=8, hflip=True, jitter_p=0.3, jitter_max=20)  # the paper's pre-training augmentation
    crops, labels = _crops(sz.crops, sz.size)
    fmt = torch.channels_last if bf16_cl else torch.contiguous_format
    net = MERNet(backbone, image_size=sz.size).to(device).train().to(memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    if aug_on == "device":
        from mer.data.batch_augment import BatchAugment, UInt8Crops, keep_batch

        sampler = BatchSampler(RandomSampler(range(len(labels)), replacement=True, generator=gen), sz.batch, True)
        loader = DataLoader(UInt8Crops(crops, labels, device), batch_sampler=sampler, collate_fn=keep_batch)
        augment = BatchAugment(cfg)
    else:
        from mer.data.datamodule import CropDataset

        ds = CropDataset(crops, labels, cfg, seed=0)
        loader = DataLoader(ds, batch_size=sz.batch, sampler=RandomSampler(ds, replacement=True, generator=gen),
                            drop_last=True, num_workers=sz.workers, pin_memory=device == "cuda",
                            persistent_workers=sz.workers > 0)  # fmt: skip
    batches = iter(loader)
    n = steps or sz.steps
    times = []
    for i in range(sz.warmup + n):
        if i == sz.warmup and ready:
            print("ready", flush=True)
            sys.stdin.readline()
        _sync(device)
        t = time.perf_counter()
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if aug_on == "device":
            x = augment(x)
        x = x.contiguous(memory_format=fmt)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16_cl):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        if i >= sz.warmup:
            times.append(time.perf_counter() - t)
    return {"images_per_s": sz.batch * len(times) / sum(times), "median_step_s": float(np.median(times))}


def concurrent_rate(k: int, backbone: str, sz: Sizes, device: str, bf16_cl: bool, aug_on: str) -> float:
    """Aggregate training images/s of k processes training at once on one device (started together after warm-up)."""
    args = json.dumps([backbone, sz.__dict__, device, bf16_cl, aug_on])
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", args], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(k)]  # fmt: skip
    for p in procs:  # wait until every worker has warmed up
        while (line := p.stdout.readline()) and line.strip() != "ready":
            pass
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    rates = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        rates.append(json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])["images_per_s"])
    return float(sum(rates))


def paper_fold(sz: Sizes, device: str, root: Path) -> dict:
    """Wall time of one LOSO fold of the paper's fine-tuning (train_stage + embeddings) on synthetic crops."""
    import cv2

    from mer.config import load_config
    from mer.data.manifest import make_frame
    from mer.provenance import resolve_precision, trainer_on_cuda
    from mer.train import embed_split, train_stage

    rng = np.random.default_rng(0)
    rows, paths = [], []
    labels = [c for c, n in MICRO_CLASS_COUNTS.items() for _ in range(max(2, round(n * sz.fold_scale)))]
    for i, label in enumerate(labels):
        subject = f"casme2/sub{i % sz.fold_subjects:02d}"
        img = rng.integers(0, 256, (sz.size, sz.size), dtype=np.uint8)
        path = root / "crops" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), img)
        rows.append({"dataset": "casme2", "subject": subject, "sample_id": str(i), "kind": "micro", "emotion": label,
                     "label": label, "frames": [str(path)], "onset": 0, "apex": 0, "offset": 0})  # fmt: skip
        paths.append(str(path))
    prepared = make_frame(rows)
    prepared["crop"] = paths
    overrides = [f"model.backbone={sz.fold_backbone}", f"data.image_size={sz.size}", f"face.size={sz.size}",
                 "logging.progress_bar=false", f"train.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
                 f"train.threads={sz.threads}"]  # fmt: skip
    if sz.fold_epochs is not None:
        overrides += [f"train.finetune.epochs={sz.fold_epochs}", "train.finetune.unfreeze={0: all}"]
    cfg = load_config("paper", overrides)
    start = time.perf_counter()
    res = train_stage(cfg, prepared, "finetune", root / "fold", held_out=["casme2/sub00"], keep_checkpoint=False,
                      enable_progress=False)  # fmt: skip
    for split in ("train", "test"):
        embed_split(res.module, res.datamodule, split)
    wall = time.perf_counter() - start
    n_train = len(res.datamodule.train_df)
    return {"wall_s": wall, "train_s": res.seconds, "epochs": res.epochs_run, "n_samples": len(labels),
            "n_train": n_train, "precision": resolve_precision(cfg.train, *trainer_on_cuda(cfg.train))[0]}  # fmt: skip


def mtcnn_rate(sz: Sizes, device: str) -> dict[int, float]:
    """MTCNN detection frames/s on 640×480 frames holding one face, at batch 1 and batched."""
    from mer.face.detect import FaceDetector
    from mer.inference.bench import bench_frame

    if sz.threads:
        torch.set_num_threads(sz.threads)
    frame, _ = bench_frame()
    out = {}
    for b in (1, sz.mtcnn_batch):
        det = FaceDetector(device, batch_size=b)
        frames = [frame] * sz.mtcnn_frames
        det.detect(frames[:b])  # warm-up (lazy load, cuDNN autotune)
        _sync(device)
        t = time.perf_counter()
        det.detect(frames)
        _sync(device)
        out[b] = sz.mtcnn_frames / (time.perf_counter() - t)
    return out


def _hms(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min"


def _try(what: str, fn: Any, *args: Any) -> Any:
    """fn(*args), or None after printing one FAILED line: the check reports each part and goes on."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        print(f"{what}: FAILED ({exc.__class__.__name__}: {first})", flush=True)
        return None


def check(smoke: bool) -> None:
    """Print every figure of the GPU check (see the module docstring)."""
    device = "cpu" if smoke or not torch.cuda.is_available() else "cuda"
    sz = SMOKE if device == "cpu" else GPU
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({os.cpu_count()} cores)"
    what = "paper sizes" if device == "cuda" else "CPU smoke run: small sizes, 1 thread; figures only show it works"
    print(f"# gpu_check on {name}: torch {torch.__version__}, {sz.size}², batch {sz.batch}, {what}")
    start = time.perf_counter()
    rates: dict[tuple[str, bool, str], float] = {}
    print(f"{'backbone':<15}{'precision':<22}{'augmentation':<26}{'images/s':>10}")
    for bb in sz.backbones:
        for bf16_cl in (False, True):
            for aug_on in ("cpu", "device"):
                mode = "bf16 + channels_last" if bf16_cl else "fp32"
                path = "device (kornia, batch)" if aug_on == "device" else f"per-sample ({sz.workers} workers)"
                res = _try(f"{bb} {mode} {path}", data_path_rate, bb, sz, device, bf16_cl, aug_on)
                if res:
                    rates[(bb, bf16_cl, aug_on)] = res["images_per_s"]
                    print(f"{bb:<15}{mode:<22}{path:<26}{res['images_per_s']:>10.1f}", flush=True)
    t_rows = time.perf_counter() - start
    fast_mode = device == "cuda"  # what precision/channels_last `auto` resolve to on this device
    fold_bb = sz.fold_backbone
    best_aug = max(("cpu", "device"), key=lambda a: rates.get((fold_bb, fast_mode, a), 0.0))
    with tempfile.TemporaryDirectory() as tmp:
        fold = _try("one fold", paper_fold, sz, device, Path(tmp))
    if fold:
        print(f"one fold ({fold_bb}, {fold['n_samples']} samples, {fold['n_train']} training, {fold['epochs']} "
              f"epochs, precision {fold['precision']}, per-sample augmentation): {fold['wall_s']:.1f} s wall "
              f"({fold['train_s']:.1f} s in trainer.fit)", flush=True)  # fmt: skip
    t_fold = time.perf_counter() - start - t_rows
    agg: dict[int, float] = {}
    if (fold_bb, fast_mode, best_aug) in rates:
        agg[1] = rates[(fold_bb, fast_mode, best_aug)]  # one process: measured above
        for k in sz.concurrent:
            if k > 1 and (r := _try(f"{k} fold processes", concurrent_rate, k, fold_bb, sz, device, fast_mode,
                                    best_aug)):  # fmt: skip
                agg[k] = r
            if k in agg:
                print(f"{k} fold process(es) on one device: {agg[k]:.1f} images/s together "
                      f"({agg[k] / agg[1]:.2f}× one)", flush=True)  # fmt: skip
    t_conc = time.perf_counter() - start - t_rows - t_fold
    if fold and 1 in agg:  # pre-training from the measured step rate; folds from the fold × concurrency scaling
        pre_rate = agg[1]
        train_imgs = PRETRAIN_IMAGES * (1 - PRETRAIN_VAL) * PRETRAIN_EPOCHS
        val_imgs = PRETRAIN_IMAGES * PRETRAIN_VAL * PRETRAIN_EPOCHS
        pre_s = train_imgs / pre_rate + val_imgs / (3 * pre_rate)  # validation: forward only ≈ 1/3 of a step
        fold_s = fold["wall_s"] / min(sz.fold_scale, 1.0) * (30 / fold["epochs"] if sz.fold_epochs else 1.0)
        print(f"PROJECTED (not measured) time of the paper's recipe on this device with {fold_bb}, "
              f"{'bf16 + channels_last' if fast_mode else 'fp32'}: pre-training {PRETRAIN_EPOCHS} epochs on "
              f"{PRETRAIN_IMAGES} images ≈ {_hms(pre_s)} (at {pre_rate:.0f} images/s, "
              f"{best_aug} augmentation)")  # fmt: skip
        for k in FOLDS_PER_GPU:
            if k not in agg:
                print(f"  {k} folds per GPU: not measured in this run")
                continue
            folds_s = MICRO_SUBJECTS * fold_s * agg[1] / agg[k]
            print(f"  {k} fold(s) per GPU: {MICRO_SUBJECTS} folds ≈ {_hms(folds_s)} on one GPU; with pre-training "
                  f"≈ {_hms(pre_s + folds_s)} (on G GPUs: pre-training + {_hms(folds_s)} / G)")  # fmt: skip
    t_mt = time.perf_counter()
    mt = _try("MTCNN detection", mtcnn_rate, sz, device)
    if mt:
        print("MTCNN detection (640×480 frames): " + ", ".join(f"batch {b}: {r:.1f} frames/s" for b, r in mt.items()))
    print(f"# gpu_check done in {time.perf_counter() - start:.0f} s (training rows {t_rows:.0f} s, fold "
          f"{t_fold:.0f} s, concurrent folds {t_conc:.0f} s, MTCNN {time.perf_counter() - t_mt:.0f} s)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--backbones", default="mobilevit_xxs,mobilevit_xs,mobilevit_s")
    ap.add_argument("--check", action="store_true", help="the GPU check (benchmarks/gpu_check.sh)")
    ap.add_argument("--cpu-smoke", action="store_true", help="with --check: small sizes on the CPU")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # a concurrent training process of --check
    args = ap.parse_args()
    if args.worker:
        bb, sizes, device, bf16_cl, aug_on = json.loads(args.worker)
        sz = Sizes(**{k: tuple(v) if isinstance(v, list) else v for k, v in sizes.items()})
        print(json.dumps(data_path_rate(bb, sz, device, bf16_cl, aug_on, ready=True)), flush=True)
        return
    if args.check:
        check(args.cpu_smoke)
        return
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, input {args.size}², batch {args.batch}")
    print(f"{'backbone':<16}{'device':<8}{'mode':<22}{'images/s':>10}{'peak MiB':>10}")
    for device in devices:
        modes = [(False, False)] + ([(True, True)] if device == "cuda" else [])
        for backbone in args.backbones.split(","):
            for amp, cl in modes:
                r = bench(backbone, args.size, args.batch, args.steps, device, amp, cl)
                mode = "AMP + channels_last" if amp else "fp32"
                print(f"{backbone:<16}{device:<8}{mode:<22}{r['images_per_s']:>10.1f}{r['peak_mib']:>10.0f}")
    print("peak MiB on CPU is the process's max RSS so far (cumulative over rows).")


if __name__ == "__main__":
    main()
