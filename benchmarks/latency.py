"""Network and face-pipeline latency: the table `mer bench` prints, beside the paper's 35.4 ms per sample.

Usage: python benchmarks/latency.py [mer bench options], e.g.
    python benchmarks/latency.py --backbones mobilevit_s --iterations 50 --markdown benchmarks/latency.md

A thin wrapper over `mer.inference.bench` (see docs/inference.md). Engines of one backbone are timed in turns of 5
calls; figures to report need an idle machine (the table gives the load average at start and end): on oversubscribed
cores PyTorch eager loses far more than ONNX Runtime. The CPU ms column (process CPU time per sample) is robust to
other load; at --threads 1 it estimates an idle core's latency.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from mer.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["bench", *sys.argv[1:]])
