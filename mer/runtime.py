"""Process-wide PyTorch settings, shared by `mer prepare` (MTCNN) and training.

A leaf module (torch only), so `mer prepare` sets its threads without importing the training stack.
"""

from __future__ import annotations

import torch


def configure_torch(threads: int = 0) -> None:
    """CPU threads (the config's `train.threads`; 0 keeps PyTorch's default) and float32 matmul precision."""
    if threads > 0:
        torch.set_num_threads(threads)
    torch.set_float32_matmul_precision("high")
