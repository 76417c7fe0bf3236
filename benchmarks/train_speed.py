"""Training throughput (images/s) and peak memory for mobilevit_xxs/xs/s, one optimizer step at a time.

Usage: python benchmarks/train_speed.py [--size 256] [--batch 16] [--steps 5] [--backbones mobilevit_xxs,...]
On a GPU it also compares AMP (bf16/fp16) + channels_last against plain fp32. CPU figures on a shared machine are
noisy: compare the rows of one run with each other, not with another run.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
import torch.nn.functional as F

from mer.models.backbones import MERNet


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--backbones", default="mobilevit_xxs,mobilevit_xs,mobilevit_s")
    args = ap.parse_args()
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
