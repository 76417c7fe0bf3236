"""Process-wide PyTorch settings and GPU placement, shared by `mer prepare` (MTCNN), training, LOSO and sweeps.

A leaf module (torch and `mer.errors` only), so `mer prepare` sets its threads without importing the training stack;
torch is imported inside the functions that use it (placement is planned without it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from mer.errors import MerError


def configure_torch(threads: int = 0, tf32: bool = False) -> None:
    """CPU threads (`train.threads`; 0 keeps PyTorch's default) and float32 numerics: TF32 matmuls and cuDNN
    convolutions only with `train.tf32` (they change results between GPU generations)."""
    import torch  # local: see the module docstring

    if threads > 0:
        torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")


def device_placement(
    devices: Sequence[str | int],
    n_workers: int,
    visible_gpus: int | None,
    env: Mapping[str, str] | None = None,
) -> list[str] | None:
    """What each of `n_workers` worker processes sets CUDA_VISIBLE_DEVICES to: GPUs round-robin, "" for CPU.

    `devices` is `loso.devices` / `mer sweep --devices`: GPU indices as this process numbers them (cuda:0, cuda:1,
    ...), ["cpu"], or empty (auto: every visible GPU, else None = leave the environment alone). With more workers
    than devices, several share a GPU. CUDA_VISIBLE_DEVICES takes the driver's numbering, so when this process
    already sees a subset (a SLURM job's CUDA_VISIBLE_DEVICES=4,5) index 1 becomes "5", never the other job's GPU 1.
    `visible_gpus` (torch.cuda.device_count(), or None when unknown) makes an index past the visible GPUs an error.
    """
    ids = [str(d).strip() for d in devices] or [str(i) for i in range(visible_gpus or 0)]
    if ids == ["cpu"]:
        return [""] * n_workers
    if not ids:
        return None
    env = os.environ if env is None else env
    listed = env.get("CUDA_VISIBLE_DEVICES")
    parent = [d.strip() for d in listed.split(",") if d.strip()] if listed is not None else None
    seen = len(parent) if parent is not None else visible_gpus
    bad = [i for i in ids if not i.isdigit() or (seen is not None and int(i) >= seen)]
    if bad:
        where = f"CUDA_VISIBLE_DEVICES={listed}" if listed is not None else "torch.cuda.device_count()"
        known = f"indices 0..{seen - 1} or cpu" if seen else "cpu (or run where a GPU is visible)"
        raise MerError(f"devices {', '.join(bad)}: this process sees {seen or 0} GPU(s) ({where}); use {known}")
    driver = [parent[int(i)] for i in ids] if parent is not None else ids
    return [driver[k % len(driver)] for k in range(n_workers)]


def pin_process(devices: Sequence[str | int]) -> None:
    """Make this process see only `devices` (GPU indices as it numbers them; ["cpu"]: no GPU) before CUDA starts.

    Nothing happens for an empty list. Worker processes started afterwards see the same subset and number it from 0.
    """
    if not devices:
        return
    import torch  # local: see the module docstring

    if torch.cuda.is_initialized():
        raise MerError("devices can only be chosen before CUDA starts in this process")
    placement = device_placement(devices, len(devices), None) or []
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(dict.fromkeys(placement))
