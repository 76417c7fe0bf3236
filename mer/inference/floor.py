"""The machine's floor for a network: its FLOPs and this CPU's FP32 GEMM rate, measured in the same process.

`count_flops` uses `torch.utils.flop_counter` plus the CPU attention kernel it does not count; `GemmProbe` times a
`torch.mm` of the network's typical GEMM shape (`typical_gemm`); the floor is FLOPs / GEMM rate (`floor_ms`) and an
engine's figure is reported as a multiple of it (`x_floor`). Used by `mer bench` (`mer.inference.bench`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

GEMM_CALL_MS = 20.0  # one timed GEMM probe call repeats the torch.mm about this long (on an idle machine)


def time_call(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall ms, process CPU ms) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - wall) * 1000.0, (time.process_time() - cpu) * 1000.0


def _conv_gemm(gemms: dict[tuple[int, int, int, int], int]) -> Callable[..., int]:
    from torch.utils.flop_counter import conv_flop_count

    def conv(x_shape: Any, w_shape: Any, _b: Any, _s: Any, _p: Any, _d: Any, transposed: bool, *args: Any,
             out_shape: Any = None, **kwargs: Any) -> int:  # fmt: skip
        flops = conv_flop_count(x_shape, w_shape, out_shape, transposed)
        groups = int(args[1]) if len(args) > 1 else 1
        m = int(np.prod([out_shape[0], *out_shape[2:]]))
        key = (m, int(np.prod(w_shape[1:])), int(w_shape[0]) // groups, groups)
        gemms[key] = gemms.get(key, 0) + flops
        return flops

    return conv


def _mm_gemm(gemms: dict[tuple[int, int, int, int], int], bias: bool) -> Callable[..., int]:
    def mm(*shapes: Any, out_shape: Any = None, **kwargs: Any) -> int:
        a, b = shapes[1:3] if bias else shapes[:2]
        flops = 2 * int(a[0]) * int(a[1]) * int(b[1])
        key = (int(a[0]), int(a[1]), int(b[1]), 1)
        gemms[key] = gemms.get(key, 0) + flops
        return flops

    return mm


def _cpu_attention(q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return int(sdpa_flop_count(q, k, v))


def count_flops(
    net: torch.nn.Module, x: torch.Tensor
) -> tuple[int, dict[str, int], dict[tuple[int, int, int, int], int]]:
    """(total FLOPs, FLOPs per op, FLOPs per GEMM (M, K, N, groups)) of one forward pass of `net` on `x`.

    torch's FlopCounterMode counts a multiply-add as 2 FLOPs; it has no formula for the CPU attention kernel
    (`_scaled_dot_product_flash_attention_for_cpu`), which is counted here with its own SDPA formula.
    """
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    gemms: dict[tuple[int, int, int, int], int] = {}
    mapping = {aten.convolution: _conv_gemm(gemms), aten.addmm: _mm_gemm(gemms, bias=True),
               aten.mm: _mm_gemm(gemms, bias=False)}  # fmt: skip
    cpu_sdpa = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_sdpa is not None:
        mapping[cpu_sdpa] = _cpu_attention
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    with torch.inference_mode(), counter:
        net(x)
    by_op = {str(k).removeprefix("aten."): int(v) for k, v in counter.get_flop_counts()["Global"].items()}
    return int(counter.get_total_flops()), by_op, gemms


def typical_gemm(gemms: dict[tuple[int, int, int, int], int]) -> tuple[int, int, int]:
    """A GEMM shape (M, K, N) near the network's dominant ones: FLOP-weighted geometric mean of the dense GEMMs
    (groups = 1; depthwise convolutions are not GEMMs), rounded to multiples of 8."""
    dense = {k[:3]: v for k, v in gemms.items() if k[3] == 1 and min(k[:3]) > 0}
    if not dense:
        return (256, 256, 256)
    w = np.array(list(dense.values()), dtype=np.float64)
    logs = np.log(np.array(list(dense.keys()), dtype=np.float64))
    mean = np.exp((logs * w[:, None]).sum(axis=0) / w.sum())
    return tuple(max(8, int(round(d / 8.0)) * 8) for d in mean)  # type: ignore[return-value]


def floor_ms(flops: float, gflops_per_s: float) -> float:
    """Milliseconds that `flops` take at `gflops_per_s` (the compute floor of one sample)."""
    return float(flops) / (gflops_per_s * 1e9) * 1000.0


def x_floor(ms: float | None, floor: float | None) -> float | None:
    """How many times the floor `ms` is (None when either is unknown)."""
    return None if not ms or not floor else float(ms) / float(floor)


class GemmProbe:
    """One timed call = `reps` FP32 torch.mm of shape (M, K) × (K, N) on torch's threads, about GEMM_CALL_MS long."""

    def __init__(self, shape: tuple[int, int, int], target_ms: float = GEMM_CALL_MS) -> None:
        m, k, n = shape
        gen = torch.Generator().manual_seed(0)
        self.a, self.b = torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen)
        self.out = torch.empty(m, n)
        self.shape = shape
        self.reps = 1
        for _ in range(3):  # warm up and find how many repeats make one call about target_ms long
            wall, _ = time_call(self)
        self.reps = max(1, round(target_ms / max(wall, 1e-3)))

    @property
    def flops(self) -> int:
        """FLOPs of one call."""
        m, k, n = self.shape
        return 2 * m * k * n * self.reps

    def __call__(self) -> None:
        for _ in range(self.reps):
            torch.mm(self.a, self.b, out=self.out)

    def rates(self, times: np.ndarray) -> tuple[float, float, float]:
        """GFLOP/s from `interleaved` output: (median wall time, median process CPU time, fastest call)."""
        wall, cpu = float(np.median(times[:, 0])), float(np.median(times[:, 1]))
        best = float(times[:, 0].min())
        return self.flops / (wall * 1e6), self.flops / (max(cpu, 1e-6) * 1e6), self.flops / (best * 1e6)


# ---------------------------------------------------------------------------------------------- network engines
