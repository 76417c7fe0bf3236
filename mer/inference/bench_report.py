"""`mer bench`'s results as text: the summary lines (goal, real-time factor, the hardware floor), the terminal
table and the Markdown table written for benchmarks/RESULTS.md. The measuring is `mer.inference.bench`'s.
"""

from __future__ import annotations

from typing import Any

from mer.inference.bench import ENGINES, FRAME_BUDGET_MS, GOAL_MS, PAPER_MS, BenchResult, Row


def _fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def summary(result: BenchResult) -> list[str]:
    """Plain sentences: the goal (mobilevit_s < 20 ms at batch 1), real time at 30 fps, ratios to eager."""
    lines = floor_summary(result)
    net1 = {(r.backbone, r.engine): r for r in result.rows if r.part == "network" and r.batch == 1 and r.ms_median}
    for bb in sorted({b for b, _ in net1}):
        eager = net1.get((bb, "eager"))
        for eng in ENGINES[1:]:
            r = net1.get((bb, eng))
            if eager and r:
                ratio = eager.ms_median / r.ms_median
                how = f"{ratio:.2f}× faster" if ratio >= 1 else f"{1 / ratio:.2f}× slower"
                lines.append(f"{bb}: {eng} {r.ms_median:.1f} ms vs eager {eager.ms_median:.1f} ms ({how})")
    s_rows = [r for (b, _), r in net1.items() if b == "mobilevit_s"]
    if s_rows:
        best = min(s_rows, key=lambda r: r.ms_median or 1e9)
        verdict = "met" if best.ms_median < GOAL_MS else f"missed by {best.ms_median - GOAL_MS:.1f} ms"
        lines.append(f"goal (mobilevit_s < {GOAL_MS:.0f} ms at batch 1): {verdict} — best {best.engine} "
                     f"{best.ms_median:.1f} ms (fastest call {best.ms_min:.1f} ms, CPU time {_fmt(best.cpu_ms)} ms "
                     f"at {result.meta.get('torch_threads')} thread(s)), paper {PAPER_MS} ms")  # fmt: skip
    for r in result.rows:
        if r.part == "video" and r.ms_median:
            rt = FRAME_BUDGET_MS / r.ms_median
            lines.append(f"video ({r.backbone}, mer predict end to end): {r.ms_median:.1f} ms per frame = "
                         f"{r.per_s:.1f} frames/s, {rt:.2f}× real time at 30 fps")  # fmt: skip
    face1 = [r for r in result.rows if r.part == "face"]
    if face1 and s_rows:
        f_best = min(face1, key=lambda r: r.ms_median or 1e9)
        best = min(s_rows, key=lambda r: r.ms_median or 1e9)
        per_frame = f_best.ms_median + best.ms_median
        lines.append(f"every frame through face + mobilevit_s ({best.engine}): {per_frame:.1f} ms per frame, "
                     f"{FRAME_BUDGET_MS / per_frame:.2f}× real time at 30 fps")  # fmt: skip
    return lines


def floor_summary(result: BenchResult) -> list[str]:
    """Per backbone: FLOPs, the GEMM probe's rate, the floor, and each batch-1 engine's ratio to it (wall and CPU)."""
    lines = []
    m = result.meta
    for bb, info in m.get("floor", {}).items():
        f1 = info.get("batch1")
        if not f1:
            continue
        parts = ", ".join(f"{k} {v:.2f}" for k, v in info["gflop_by_op"].items())
        shape = "×".join(str(d) for d in info["gemm_shape"])
        lines.append(f"{bb}: {info['gflop']:.2f} GFLOP per sample ({parts}); FP32 GEMM {shape} on "
                     f"{m.get('torch_threads')} thread(s): median {f1['gemm_gflops']:.0f} GFLOP/s → floor "
                     f"{f1['floor_ms']:.1f} ms (fastest call {f1['gemm_best_gflops']:.0f} GFLOP/s → "
                     f"{f1['best_floor_ms']:.1f} ms; CPU-time floor {f1['cpu_floor_ms']:.1f} ms), "
                     f"load {m.get('load_start')}→{m.get('load_end')}")  # fmt: skip
        rows = [r for r in result.rows if r.part == "network" and r.backbone == bb and r.batch == 1 and r.ms_median]
        for r in sorted(rows, key=lambda r: r.ms_median or 1e9):
            fast = f"fastest call {r.ms_min / f1['best_floor_ms']:.2f}× fastest-GEMM floor" if r.ms_min else ""
            cpu = f", CPU {r.cpu_ms / f1['cpu_floor_ms']:.2f}× CPU floor" if r.cpu_ms and f1["cpu_floor_ms"] else ""
            lines.append(f"  {r.engine}: {r.ms_median:.1f} ms = {_fmt(r.x_floor, 2)}× floor ({fast}{cpu})")
    return lines


COLUMNS = ("part", "backbone", "engine", "batch", "ms/sample (median)", "fastest", "CPU ms", "samples/s", "vs paper",
           "× floor")  # fmt: skip


def _cells(r: Row) -> list[str]:
    ratio = f"{PAPER_MS / r.ms_median:.2f}×" if r.ms_median and r.part == "network" else "-"
    return [r.part, r.backbone, r.engine, str(r.batch), _fmt(r.ms_median), _fmt(r.ms_min), _fmt(r.cpu_ms),
            _fmt(r.per_s), ratio, _fmt(r.x_floor, 2), r.note]  # fmt: skip


def bench_table(result: BenchResult) -> Any:
    """A rich Table of the rows, with the paper's 35.4 ms divided by ours ("vs paper": > 1 is faster than the paper)."""
    from rich.table import Table

    m = result.meta
    title = (f"mer bench — {m['cpu']}, {m['torch_threads']} threads, {m['image_size']}², "
             f"load {m.get('load_start')}→{m.get('load_end')}")  # fmt: skip
    table = Table(title=title)
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("part", "backbone", "engine") else "right")
    table.add_column("note", overflow="fold")
    for r in result.rows:
        table.add_row(*_cells(r))
    return table


def markdown(result: BenchResult) -> str:
    """The same table as Markdown (for benchmarks/RESULTS.md)."""
    m = result.meta
    out = [
        f"CPU: {m['cpu']} ({m['cores']} cores visible), torch threads {m['torch_threads']}, ORT intra-op threads "
        f"{m['ort_threads']}, image {m['image_size']}², torch {m['torch']}, onnxruntime {m['onnxruntime']}, "
        f"load average {m.get('load_start')} → {m.get('load_end')}. 'vs paper' = {PAPER_MS} ms / ours; 'CPU ms' = "
        "CPU time of all the process's threads per sample; '× floor' = ms per sample / (FLOPs / FP32 GEMM rate "
        "measured in the same turns).",
        "",
        "| " + " | ".join((*COLUMNS, "note")) + " |",
        "|---|---|---|" + "---:|" * (len(COLUMNS) - 3) + "---|",
    ]
    out += ["| " + " | ".join(_cells(r)) + " |" for r in result.rows]
    out += ["", *[f"- {line}" for line in summary(result)]]
    return "\n".join(out)
