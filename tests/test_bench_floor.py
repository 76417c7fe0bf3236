"""`mer bench` against the floor: FLOP counts of known layers, the GEMM probe, floor and ratios, OpenVINO engine."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mer.config import load_config
from mer.errors import MerError
from mer.inference.bench import interleaved, run_bench
from mer.inference.bench_report import summary
from mer.inference.bundle import load_bundle, openvino_model, save_bundle
from mer.inference.floor import GemmProbe, count_flops, floor_ms, typical_gemm, x_floor
from mer.inference.predict import use_engine
from mer.models.backbones import MERNet


def test_flops_of_known_layers_and_their_gemms() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    total, by_op, gemms = count_flops(conv, torch.zeros(1, 3, 16, 16))
    assert total == 2 * 8 * (3 * 3 * 3) * (16 * 16) == by_op["convolution"]
    assert gemms == {(256, 27, 8, 1): total}
    lin = nn.Linear(10, 20)
    total, by_op, gemms = count_flops(lin, torch.zeros(4, 10))
    assert total == 2 * 4 * 10 * 20 and gemms == {(4, 10, 20, 1): total}
    depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
    total, _, gemms = count_flops(depthwise, torch.zeros(2, 8, 8, 8))
    assert total == 2 * 8 * 9 * 2 * 64 and list(gemms) == [(128, 9, 1, 8)]


class Attention(nn.Module):
    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, q, q)


def test_attention_is_counted_on_cpu() -> None:
    """torch's counter has no formula for the CPU attention kernel; ours counts QKᵀ and AV (2·b·h·s²·d each)."""
    b, h, s, d = 1, 2, 16, 8
    total, _, _ = count_flops(Attention(), torch.randn(b, h, s, d))
    assert total == 4 * b * h * s * s * d


def test_turns_do_not_time_the_call_that_pays_for_switching_engines() -> None:
    """The first call after another engine's turn is slow here (as ORT's is after torch's spinning OpenMP threads);
    it must not be timed, or medians carry a cost of the benchmark's switching."""
    import time

    last: list[str] = [""]
    calls = {"a": 0, "b": 0}

    def make(name: str):
        def fn() -> None:
            calls[name] += 1
            if last[0] != name:
                time.sleep(0.03)
            last[0] = name

        return fn

    t = interleaved({"a": make("a"), "b": make("b")}, iterations=10, warmup=1, block=5)
    for name in ("a", "b"):
        assert t[name].shape == (10, 2)
        assert t[name][:, 0].max() < 15.0, f"{name}: a switching call was timed ({t[name][:, 0].max():.1f} ms)"
        assert calls[name] == 1 + 10 + 2  # warm-up, timed calls, one settling call in each of the two turns
    single = interleaved({"a": make("a")}, iterations=4, warmup=0, block=5)
    assert single["a"].shape == (4, 2) and calls["a"] == 13 + 4  # one function: nothing to settle


def test_typical_gemm_is_the_flop_weighted_geometric_mean() -> None:
    assert typical_gemm({(100, 30, 21, 1): 5}) == (104, 32, 24)
    assert typical_gemm({(64, 64, 64, 1): 10, (256, 256, 256, 1): 10, (4096, 9, 1, 32): 10**9}) == (128, 128, 128)
    assert typical_gemm({(64, 64, 64, 1): 30, (512, 512, 512, 1): 10}) == (104, 104, 104)  # 2^(6·¾ + 9·¼) ≈ 107.6
    assert typical_gemm({}) == (256, 256, 256)


def test_floor_and_ratio() -> None:
    # the reference measured here before: 3.64 GFLOP at 115 GFLOP/s → 31.7 ms; ORT 58.6 ms → 1.85×
    fl = floor_ms(3.64e9, 115.0)
    assert fl == pytest.approx(31.65, abs=0.01)
    assert x_floor(58.6, fl) == pytest.approx(1.85, abs=0.01)
    assert x_floor(None, fl) is None and x_floor(10.0, None) is None


def test_gemm_probe_counts_its_flops_and_rates() -> None:
    probe = GemmProbe((32, 16, 8), target_ms=1.0)
    assert probe.reps >= 1 and probe.flops == 2 * 32 * 16 * 8 * probe.reps
    probe()
    assert torch.allclose(probe.out, probe.a @ probe.b, atol=1e-5)
    times = np.array([[2.0, 4.0], [1.0, 2.0], [3.0, 6.0]])  # ms: median wall 2, CPU 4, fastest 1
    wall, cpu, best = probe.rates(times)
    assert wall == pytest.approx(probe.flops / 2e-3 / 1e9) and cpu == pytest.approx(wall / 2)
    assert best == pytest.approx(2 * wall)


def test_bench_reports_floor_and_ratios() -> None:
    res = run_bench(backbones=["mobilevit_xxs"], image_size=64, iterations=3, warmup=1, batches=(),
                    engines=("eager", "ort"), progress=False)  # fmt: skip
    info = res.meta["floor"]["mobilevit_xxs"]
    flops, _, _ = count_flops(MERNet("mobilevit_xxs", 1, 3, 0.0, 64).eval(), torch.zeros(1, 1, 64, 64))
    assert info["gflop"] == round(flops / 1e9, 3) and info["gflop_by_op"]["convolution"] > 0
    fl = info["batch1"]["floor_ms"]
    assert fl == pytest.approx(floor_ms(flops, info["batch1"]["gemm_gflops"]), rel=0.01)
    assert info["batch1"]["best_floor_ms"] <= fl
    assert {r.engine for r in res.rows} == {"eager", "ort"}  # the probe is not a row
    for r in res.rows:
        assert r.x_floor == pytest.approx(r.ms_median / fl, rel=0.02)
    assert "max |Δlogits| vs eager" in next(r.note for r in res.rows if r.engine == "ort")
    text = "\n".join(summary(res))
    assert "GFLOP per sample" in text and "× floor" in text and "ort:" in text
    assert not any(r.part in ("face", "video") for r in res.rows)  # on request only


def test_unknown_engine_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MerError, match="unknown engine"):
        run_bench(backbones=["mobilevit_xxs"], image_size=64, engines=("tensorrt",), progress=False)
    cfg = load_config(None, ["model.backbone=mobilevit_xxs", "data.image_size=64", "face.size=64"])
    path = save_bundle(tmp_path / "b", MERNet("mobilevit_xxs", 1, 3, 0.0, 64), cfg)
    with pytest.raises(MerError, match="unknown engine"):
        use_engine(load_bundle(path), "tensorrt")


def test_openvino_missing_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino → ImportError
    with pytest.raises(MerError, match=r"pip install 'mer-lightning\[openvino\]'"):
        openvino_model(tmp_path / "none.onnx")


@pytest.fixture()
def bundle_path(tmp_path: Path) -> Path:
    cfg = load_config(None, ["model.backbone=mobilevit_xxs", "data.image_size=64", "face.size=64"])
    torch.manual_seed(0)
    return save_bundle(tmp_path / "bundle", MERNet("mobilevit_xxs", 1, 3, 0.0, 64).eval(), cfg)


def test_openvino_engine_in_bench_and_predict(bundle_path: Path) -> None:
    pytest.importorskip("openvino", reason="OpenVINO is optional: pip install 'mer-lightning[openvino]'")
    res = run_bench(backbones=["mobilevit_xxs"], image_size=64, iterations=2, warmup=1, batches=(2,),
                    engines=("eager", "openvino"), progress=False, floor=False)  # fmt: skip
    ov = [r for r in res.rows if r.engine == "openvino"]
    assert {r.batch for r in ov} == {1, 2} and all(r.ms_median > 0 and r.x_floor is None for r in ov)
    assert "precision f32" in ov[0].note
    crops = np.random.default_rng(0).integers(0, 256, (5, 64, 64), dtype=np.uint8)
    torch_bundle = load_bundle(bundle_path)
    ov_bundle = use_engine(load_bundle(bundle_path), "openvino")
    assert (torch_bundle.engine, ov_bundle.engine) == ("torch", "openvino")
    (lt, et), (lo, eo) = torch_bundle.forward(crops), ov_bundle.forward(crops)
    assert np.abs(lt - lo).max() < 1e-3 and np.abs(et - eo).max() < 1e-3
    ort_bundle = use_engine(load_bundle(bundle_path), "onnxruntime")
    assert ort_bundle.engine == "onnxruntime" and np.abs(ort_bundle.forward(crops)[0] - lt).max() < 1e-3
