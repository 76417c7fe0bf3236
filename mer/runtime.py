"""Process-wide PyTorch settings, shared by `mer prepare` (MTCNN) and training.

A leaf module (torch only), so `mer prepare` sets its threads without importing the training stack.
"""

from __future__ import annotations

import torch


def configure_torch(threads: int = 0, tf32: bool = False) -> None:
    """CPU threads (`train.threads`; 0 keeps PyTorch's default) and float32 numerics: TF32 matmuls and cuDNN
    convolutions only with `train.tf32` (they change results between GPU generations)."""
    if threads > 0:
        torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
