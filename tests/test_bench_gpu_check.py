"""benchmarks/gpu_check.sh in its CPU smoke mode: every part of the GPU check runs and prints its figure."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(800)
def test_gpu_check_cpu_smoke_prints_every_figure() -> None:
    # the script caps itself at 290 s (sized for a GPU run); a loaded 2-core CPU may need more
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    env["GPU_CHECK_TIMEOUT"] = "560"
    env["SPOT_CHECK_TIMEOUT"] = "180"
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--cpu-smoke"], capture_output=True,
                          text=True, env=env, timeout=780, check=False)  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = re.findall(r"^(mobilevit_\w+)\s+(fp32|bf16 \+ channels_last)\s+(per-sample|device).*?([\d.]+)$", out, re.M)
    assert {(bb, mode, aug) for bb, mode, aug, _ in rows} == {
        (bb, mode, aug)
        for bb in ("mobilevit_xxs", "mobilevit_s")
        for mode in ("fp32", "bf16 + channels_last")
        for aug in ("per-sample", "device")
    }
    assert all(float(r[3]) > 0 for r in rows)
    assert re.search(r"^one fold \(mobilevit_xxs, \d+ samples.*: [\d.]+ s wall", out, re.M)
    assert re.search(r"^2 fold process\(es\) on one device: [\d.]+ images/s together", out, re.M)
    assert "PROJECTED (not measured)" in out and re.search(r"1 fold\(s\) per GPU: 68 folds ≈ [\d.]+ (h|min)", out)
    assert "FAILED" not in out
    assert re.search(r"MTCNN detection .*batch 1: [\d.]+ frames/s, batch 4: [\d.]+ frames/s", out)
    assert re.search(r"^spotting 640x480 \(cpu\) batch 16: [\d.]+ frames/s", out, re.M)
