"""Small helpers for handing torch CUDA tensors to the torch-free module."""
from __future__ import annotations

import torch

CODE_TYPE = {torch.uint8: 0, torch.int32: 1}


def stream_of(t: torch.Tensor) -> int:
    """Handle of the current stream on t's device (the kernels enqueue there)."""
    return torch.cuda.current_stream(t.device).cuda_stream


def codes_for_kernel(codes: torch.Tensor):
    """(contiguous codes as uint8 or int32, code_type number of kernels.h)."""
    if codes.dtype != torch.uint8:
        codes = codes.to(torch.int32)
    codes = codes.contiguous()
    return codes, CODE_TYPE[codes.dtype]
