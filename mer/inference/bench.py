"""`mer bench`: latency per sample (batch 1) and throughput (batch 32/64) of the network against the machine's floor.

The default run is the paper's network (mobilevit_s, 256², 1 channel) with PyTorch eager and ONNX Runtime. In the same
process it counts the network's FLOPs (`torch.utils.flop_counter`, plus the CPU attention kernel it does not know) and
times an FP32 `torch.mm` of the network's typical GEMM shape on the same threads, taking turns with the engines; the
floor is FLOPs / GEMM rate and every network row shows its ratio to it ("× floor").

Engines: PyTorch eager, `torch.compile` (inductor; run in a child process with a time limit, since compiling on a
small CPU can take minutes), ONNX Runtime fp32 (idle threads sleep; `ort_spin`: ORT's default spinning threads),
ONNX Runtime int8 (static QDQ, calibrated on aligned crops of the public-domain sample photos; `ort_int8_dynamic`),
OpenVINO (`openvino`: fp32; `openvino_bf16`: OpenVINO's default precision, bf16 where the CPU has bf16 units; both
compiled for each batch size's static shape). Face (MTCNN + alignment) and video (`mer predict`) rows on request.
Latency is the median of N timed calls after warm-up, with the engines of one backbone taking turns in blocks of 5
calls, so slow changes in other processes' load hit them alike. Heavy load is not fair to all engines, though:
PyTorch's OpenMP threads lose far more than ONNX Runtime's when the cores are oversubscribed (measured: 5-18× slower
eager vs 2-4× slower ORT at load 8 on 2 cores). The `CPU ms` column (process CPU time per sample) barely moves with
other load; at `--threads 1` it estimates an idle core's latency.
Weights are random: speed does not depend on them.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import mer
from mer.errors import MerError
from mer.inference.floor import GemmProbe, count_flops, floor_ms, time_call, typical_gemm, x_floor

PAPER_MS = 35.4  # Liu et al. 2022: ms per sample (i9-9980HK + Radeon Pro 5500M)
GOAL_MS = 20.0  # issue goal: mobilevit_s network, batch 1, 2-core CPU
FRAME_BUDGET_MS = 1000.0 / 30.0  # real time at 30 fps
ENGINES = ("eager", "compile", "ort", "ort_spin", "ort_int8", "ort_int8_dynamic", "openvino", "openvino_bf16")
DEFAULT_ENGINES = ("eager", "ort")
DEFAULT_BACKBONES = ("mobilevit_s",)  # the paper's
BLOCK = 5  # consecutive timed calls per engine turn


@dataclass
class Row:
    """One measurement: which part and engine, batch size, ms per sample (median and fastest), samples per second."""

    part: str  # network | face (detect+align) | video (mer predict end to end)
    backbone: str
    engine: str
    batch: int
    ms_median: float | None
    ms_min: float | None = None
    per_s: float | None = None
    note: str = ""
    cpu_ms: float | None = None  # median CPU time per sample, all threads of the process (robust to other load)
    x_floor: float | None = None  # ms_median / the floor (FLOPs / FP32 GEMM rate measured in the same turns)


@dataclass
class BenchResult:
    """All rows plus the machine they were measured on."""

    rows: list[Row] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"meta": self.meta, "rows": [asdict(r) for r in self.rows]}


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else platform)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _load() -> float | None:
    with contextlib.suppress(OSError, AttributeError):
        return round(os.getloadavg()[0], 2)
    return None


def interleaved(
    fns: dict[str, Callable[[], Any]], iterations: int, warmup: int, block: int = BLOCK, settle: int = 1
) -> dict[str, np.ndarray]:
    """(iterations, 2) arrays of [wall ms, CPU ms] per call of each function, after warm-up.

    The functions take turns in blocks of `block` calls (a a a a a, b b b b b, a a a a a, ...): turns spread slow load
    changes over all of them. With several functions each turn first makes `settle` untimed calls: the previous
    engine's idle threads still spin for a while (torch's OpenMP after a GEMM), and the first ONNX Runtime call of a
    turn measured ~15 % slower than the rest, which is a cost of the benchmark's switching, not of the engine. CPU time
    counts every thread of this process, so other processes' load barely changes it.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    settle = settle if len(fns) > 1 else 0
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    while any(len(v) < iterations for v in times.values()):
        for k, fn in fns.items():
            todo = min(block, iterations - len(times[k]))
            for _ in range(settle if todo else 0):
                fn()
            for _ in range(todo):
                times[k].append(time_call(fn))
    return {k: np.asarray(v).reshape(-1, 2) for k, v in times.items()}


def _stats(t: np.ndarray, batch: int) -> tuple[float, float, float]:
    """(median wall, fastest wall, median CPU) ms per sample from `interleaved` output."""
    return float(np.median(t[:, 0])) / batch, float(t[:, 0].min()) / batch, float(np.median(t[:, 1])) / batch


# ---------------------------------------------------------------------------------------------- the floor


def _onnx_models(
    net: Any, size: int, engines: Sequence[str], folder: Path, calib: np.ndarray | None
) -> dict[str, Path]:
    from mer.inference.export import export_graph, quantize_onnx

    out: dict[str, Path] = {}
    if not any(e.startswith(("ort", "openvino")) for e in engines):
        return out
    fp32 = folder / f"{net.backbone_name}.onnx"
    export_graph(net, fp32, size)
    for name in ("ort", "ort_spin", "openvino", "openvino_bf16"):
        if name in engines:
            out[name] = fp32
    if "ort_int8" in engines:
        out["ort_int8"] = quantize_onnx(fp32, folder / f"{net.backbone_name}.int8.onnx", "static", calib, size)
    if "ort_int8_dynamic" in engines:
        out["ort_int8_dynamic"] = quantize_onnx(fp32, folder / f"{net.backbone_name}.dyn.onnx", "dynamic", None, size)
    return out


def _runners(
    net: Any, models: dict[str, Path], threads: int, batch: int, cache: dict[str, Any]
) -> dict[str, Callable[[np.ndarray], Any]]:
    """Engine name → (N,1,H,W) float32 → logits. ORT sessions are made once (`cache`); OpenVINO per batch size."""
    from mer.inference.bundle import onnx_session, openvino_model

    def eager(x: np.ndarray) -> Any:
        with torch.inference_mode():
            return net(torch.from_numpy(x)).numpy()

    runners: dict[str, Callable[[np.ndarray], Any]] = {"eager": eager}
    size = int(net.image_size)
    for name, path in models.items():
        if name.startswith("openvino"):
            precision = "f32" if name == "openvino" else None
            compiled = openvino_model(path, threads, precision, (batch, net.in_chans, size, size))
            request, port = compiled.create_infer_request(), compiled.output("logits")
            runners[name] = lambda x, r=request, p=port: r.infer({0: x})[p]
            hint = compiled.get_property("INFERENCE_PRECISION_HINT")
            cache[f"{name}_precision"] = hint.to_string() if hasattr(hint, "to_string") else str(hint)
            continue
        if name not in cache:
            cache[name] = onnx_session(path, threads, spin=(name == "ort_spin"))
        runners[name] = lambda x, s=cache[name]: s.run(["logits"], {"input": x})[0]
    return runners


def compile_worker(
    backbone: str, size: int, iterations: int, warmup: int, batches: Sequence[int], threads: int
) -> dict:
    """(Child process) compile the network with torch.compile; time it against eager, interleaved, per batch size."""
    from mer.models.backbones import MERNet

    torch.set_num_threads(threads)
    net = MERNet(backbone, 1, 3, 0.0, size).eval()
    compiled = torch.compile(net)
    x1 = torch.randn(1, 1, size, size)
    start = time.perf_counter()
    with torch.inference_mode():
        compiled(x1)
    compile_s = time.perf_counter() - start
    out: dict[str, Any] = {"compile_s": round(compile_s, 1), "batches": {}}
    for b in batches:
        x = torch.randn(b, 1, size, size)
        n, w = (iterations, warmup) if b == 1 else (max(2, iterations // 10), 1)
        with torch.inference_mode():
            t = interleaved({"eager": lambda: net(x), "compile": lambda: compiled(x)}, n, w)  # noqa: B023
        out["batches"][str(b)] = {k: list(_stats(v, 1)) for k, v in t.items()}
    return out


def _compile_rows(
    backbone: str, size: int, iterations: int, warmup: int, batches: Sequence[int], threads: int, timeout: float
) -> list[Row]:
    args = json.dumps([backbone, size, iterations, warmup, list(batches), threads])
    cmd = [sys.executable, "-m", "mer.inference.bench", "--compile-worker", args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return [Row("network", backbone, "compile", 1, None, note=f"skipped: compiling took over {timeout:.0f} s")]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1][:160]
        return [Row("network", backbone, "compile", 1, None, note=f"skipped: torch.compile failed ({err})")]
    res = json.loads(lines[-1])
    rows = []
    for b, t in res["batches"].items():
        bs = int(b)
        med, fast, cpu = (v / bs for v in t["compile"])
        ratio = t["eager"][0] / t["compile"][0]
        note = f"compile {res['compile_s']} s; {ratio:.2f}× eager in its own process"
        rows.append(Row("network", backbone, "compile", bs, med, fast, 1000.0 / med, note, cpu))
    return rows


def bench_network(
    backbone: str,
    size: int,
    engines: Sequence[str],
    iterations: int,
    warmup: int,
    batches: Sequence[int],
    threads: int,
    calib: np.ndarray | None,
    compile_timeout: float,
    floor: bool = True,
    meta: dict[str, Any] | None = None,
) -> list[Row]:
    """Rows for one backbone: every engine at batch 1 (interleaved) and at each throughput batch size.

    With `floor`, an FP32 GEMM probe takes turns with the engines; each row's `x_floor` is its ms per sample over
    FLOPs / (GEMM rate of the same turns). The floor's facts go to `meta["floor"][backbone]`.
    """
    from mer.models.backbones import MERNet

    net = MERNet(backbone, 1, 3, 0.0, size).eval()
    rows: list[Row] = []
    info: dict[str, Any] = {}
    probe = None
    if floor:
        flops, by_op, gemms = count_flops(net, torch.zeros(1, 1, size, size))
        probe = GemmProbe(typical_gemm(gemms))
        info = {"gflop": round(flops / 1e9, 3), "gflop_by_op": {k: round(v / 1e9, 3) for k, v in by_op.items()},
                "gemm_shape": list(probe.shape), "gemm_reps": probe.reps}  # fmt: skip
    cache: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        models = _onnx_models(net, size, engines, Path(tmp), calib)
        for b in (1, *batches):
            runners = {k: v for k, v in _runners(net, models, threads, b, cache).items() if k in engines}
            x = np.random.default_rng(0).standard_normal((b, 1, size, size)).astype(np.float32)
            ref = runners["eager"](x) if "eager" in runners else None
            notes = {k: f"max |Δlogits| vs eager {np.abs(np.asarray(r(x)) - ref).max():.1e}"
                     for k, r in runners.items() if ref is not None and k != "eager"}  # fmt: skip
            for k in ("openvino", "openvino_bf16"):
                if k in notes:
                    notes[k] += f"; precision {cache.get(f'{k}_precision')}; static shape"
            n, w = (iterations, warmup) if b == 1 else (max(2, iterations // 10), 1)
            fns: dict[str, Callable[[], Any]] = {k: (lambda r=r, x=x: r(x)) for k, r in runners.items()}
            if probe is not None:
                fns["gemm"] = probe
            times = interleaved(fns, n, w)
            fl = None
            if probe is not None:
                rate, cpu_rate, best = probe.rates(times.pop("gemm"))
                fl = floor_ms(flops, rate)
                # 4 significant digits, not a fixed number of decimals: a small network's floor is a few µs
                info[f"batch{b}"] = {"gemm_gflops": _sig(rate), "gemm_cpu_gflops": _sig(cpu_rate),
                                     "gemm_best_gflops": _sig(best), "floor_ms": _sig(fl),
                                     "cpu_floor_ms": _sig(floor_ms(flops, cpu_rate)),
                                     "best_floor_ms": _sig(floor_ms(flops, best))}  # fmt: skip
            for k, t in times.items():
                med, fast, cpu = _stats(t, b)
                rows.append(Row("network", backbone, k, b, med, fast, 1000.0 / med, notes.get(k, ""), cpu,
                                x_floor(med, fl)))  # fmt: skip
    if "compile" in engines:
        fl1 = info.get("batch1", {}).get("floor_ms")
        for r in _compile_rows(backbone, size, iterations, warmup, (1, *batches), threads, compile_timeout):
            r.x_floor = x_floor(r.ms_median, fl1)
            rows.append(r)
    if meta is not None and info:
        meta.setdefault("floor", {})[backbone] = info
    return rows


# ---------------------------------------------------------------------------------------------- face and video


def bench_frame(width: int = 640, height: int = 480) -> tuple[np.ndarray, Any]:
    """A width×height RGB frame holding the astronaut photo's face, and that face (for the face and video benches)."""
    import cv2

    from mer.face.detect import FaceDetector, pick_face
    from mer.inference.video import sample_photos

    photo = sample_photos()[0]
    scale = height / photo.shape[0]
    photo = cv2.resize(photo, (round(photo.shape[1] * scale), height), interpolation=cv2.INTER_AREA)
    frame = np.full((height, width, 3), 127, dtype=np.uint8)
    x0 = (width - photo.shape[1]) // 2
    frame[:, x0 : x0 + photo.shape[1]] = photo
    face = pick_face(FaceDetector("cpu").detect_one(frame))[0]
    if face is None:
        raise MerError("no face found in the benchmark frame")
    return frame, face


def bench_face(size: int, iterations: int, warmup: int, batches: Sequence[int]) -> list[Row]:
    """MTCNN detection + alignment of a 640×480 frame: latency at batch 1 and throughput in batches."""
    from mer.config import FaceConfig
    from mer.face.align import align_face
    from mer.face.detect import FaceDetector

    frame, _ = bench_frame()
    cfg = FaceConfig(size=size)
    detector = FaceDetector("cpu", cfg.min_face_size, batch_size=max(batches or (16,)))

    def run(frames: list[np.ndarray]) -> None:
        for img, faces in zip(frames, detector.detect(frames), strict=True):
            if faces:
                align_face(img, faces[0].landmarks, cfg, faces[0].box)

    rows = []
    for b in (1, *batches):
        frames = [frame] * b
        n, w = (max(5, iterations // 2), max(1, warmup // 2)) if b == 1 else (2, 1)
        med, fast, cpu = _stats(interleaved({"mtcnn": lambda f=frames: run(f)}, n, w)["mtcnn"], b)
        rows.append(Row("face", "mtcnn + align", "torch", b, med, fast, 1000.0 / med, "640×480 frame", cpu))
    return rows


def bench_video(backbone: str, size: int, n_frames: int = 60) -> Row:
    """`predict_path` end to end on a generated 640×480 clip at 30 fps: frames processed per second of wall time."""
    from mer.config import load_config
    from mer.face.detect import FaceDetector
    from mer.inference.bundle import load_bundle, save_bundle
    from mer.inference.predict import predict_path
    from mer.inference.video import expression_clip, write_video
    from mer.models.backbones import MERNet

    frame, face = bench_frame()
    frames = expression_clip(frame, face.landmarks, n_frames=n_frames, apex=n_frames // 2, amplitude=0.04)
    cfg = load_config(None, [f"model.backbone={backbone}", f"face.size={size}", f"data.image_size={size}"])
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_video(frames, Path(tmp) / "clip.mp4", fps=30.0)
        bundle = load_bundle(save_bundle(Path(tmp) / "bundle", MERNet(backbone, 1, 3, 0.0, size), cfg))
        detector = FaceDetector("cpu", cfg.face.min_face_size, cfg.face.batch_size)
        predict_path(clip, bundle, detector=detector, progress=False, max_frames=8)  # warm-up (lazy loading)
        start, cpu = time.perf_counter(), time.process_time()
        res = predict_path(clip, bundle, detector=detector, progress=False)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    ms = 1000.0 * wall / res["n_frames"]
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in res["timing_s"].items())
    note = f"{res['n_frames']} frames in {wall:.2f} s ({parts}); apex {res['apex_frame']} (made at {n_frames // 2})"
    return Row("video", backbone, "mer predict", 1, ms, None, 1000.0 / ms, note, 1000.0 * cpu / res["n_frames"])


# ---------------------------------------------------------------------------------------------- driver


def run_bench(
    backbones: Sequence[str] = DEFAULT_BACKBONES,
    *,
    image_size: int = 256,
    iterations: int = 30,
    warmup: int = 5,
    batches: Sequence[int] = (32,),
    engines: Sequence[str] = DEFAULT_ENGINES,
    threads: int | None = None,
    face: bool = False,
    video: bool = False,
    compile_timeout: float = 300.0,
    progress: bool = True,
    floor: bool = True,
) -> BenchResult:
    """Measure every requested part; returns rows plus machine facts (threads, CPU, versions, load, the floor)."""
    from mer.config import BACKBONES as KNOWN

    bad = [e for e in engines if e not in ENGINES]
    if bad:
        raise MerError(f"unknown engine(s) {bad}; choose from: {', '.join(ENGINES)}")
    unknown = [b for b in backbones if b not in KNOWN]
    if unknown:
        raise MerError(f"unknown backbone(s) {unknown}; choose from: {', '.join(KNOWN)}")
    if image_size % 32:
        raise MerError(f"image size {image_size} must be a multiple of 32 for MobileViT")
    if threads:
        torch.set_num_threads(int(threads))
    threads = torch.get_num_threads()
    import onnxruntime

    start_all = time.perf_counter()
    result = BenchResult(
        meta={
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "torch_threads": threads,
            "ort_threads": threads,
            "image_size": image_size,
            "iterations": iterations,
            "warmup": warmup,
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "ort_spinning": "ort_spin" in engines,
            "mer_version": mer.__version__,
            "load_start": _load(),
            "paper_ms": PAPER_MS,
            "goal_ms": GOAL_MS,
        }
    )
    calib = None
    if "ort_int8" in engines:
        from mer.config import FaceConfig
        from mer.inference.export import sample_face_crops

        calib = sample_face_crops(FaceConfig(size=image_size), n=16)
        result.meta["int8_calibration"] = "16 augmented aligned crops of the public-domain sample photos"
    if any(e.startswith("openvino") for e in engines):
        try:
            import openvino
        except ImportError:
            raise MerError("the openvino engines need OpenVINO: pip install 'mer-lightning[openvino]'") from None
        result.meta["openvino"] = openvino.__version__
    steps: list[tuple[str, Callable[[], list[Row]]]] = []
    if face:
        steps.append(("face", lambda: bench_face(image_size, iterations, warmup, batches)))

    def network(bb: str) -> list[Row]:
        args = (iterations, warmup, batches, threads, calib, compile_timeout, floor, result.meta)
        return bench_network(bb, image_size, engines, *args)

    for bb in backbones:
        steps.append((bb, lambda bb=bb: network(bb)))
    if video:
        steps.append(("video", lambda: [bench_video(backbones[-1], image_size)]))
    for name, step in _progress(steps, progress):
        start = time.perf_counter()
        result.rows += step()
        result.meta[f"seconds_{name}"] = round(time.perf_counter() - start, 1)
    result.meta["load_end"] = _load()
    result.meta["seconds_total"] = round(time.perf_counter() - start_all, 1)
    return result


def _progress(steps: list[Any], progress: bool) -> Iterator[Any]:
    from tqdm.auto import tqdm

    with tqdm(steps, desc="bench", disable=not progress, leave=False) as bar:
        for step in bar:
            bar.set_postfix_str(step[0])
            yield step


def _sig(v: float) -> float:
    """`v` to 4 significant digits (JSON-friendly)."""
    return float(f"{v:.4g}")


if __name__ == "__main__":  # the torch.compile child process
    if len(sys.argv) == 3 and sys.argv[1] == "--compile-worker":
        import warnings

        warnings.filterwarnings("ignore")
        print(json.dumps(compile_worker(*json.loads(sys.argv[2]))), flush=True)
