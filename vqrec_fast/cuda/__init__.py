"""CUDA kernels of vqrec_fast (the optional ``vqrec_fast._C_cuda`` module, torch-free).

Importing this package registers the CUDA kernels with the torch custom ops (``register_kernel
("cuda")``), so ``vqrec_fast.code_bag`` & co. use them for CUDA tensors. When the module was not
built (no CUDA toolkit at build time) nothing is registered and the ops fall back to their
pure-PyTorch default kernels, which run on any device; importing never fails.

``vqrec_fast.score_topk`` on CUDA tensors runs the backend's ADC scan for candidates and
re-ranks them exactly (vqrec_fast/ops/score_topk_gpu.py); ``code_softmax_cross_entropy`` on CUDA
tensors takes its log-sum-exp from the backend's kernel (vqrec_fast/ops/softmax_ce_gpu.py).

Standalone entry points (CUDA tensors only):
  score_topk_cuda(queries, W, codes, k, item_scale=None, metric="ip") -> (scores, ids)
"""
from __future__ import annotations

import os
from typing import Optional

_C_cuda = None
_LOAD_ERROR: Optional[str] = None
try:
    from .. import _C_cuda as _C_cuda  # type: ignore[attr-defined,no-redef]
except ImportError as exc:  # the CPU-only build: expected, silent
    _LOAD_ERROR = str(exc)


def has_cuda_kernels() -> bool:
    """True when the CUDA module was built and can be used (a CUDA device is present)."""
    import torch

    return _C_cuda is not None and torch.cuda.is_available()


def cuda_module():
    """The compiled module; raises RuntimeError naming why it is missing."""
    if _C_cuda is None:
        raise RuntimeError(f"vqrec_fast was built without CUDA kernels ({_LOAD_ERROR}); "
                           "rebuild with VQREC_FAST_CUDA=ON and a CUDA toolkit")
    return _C_cuda


BACKENDS = ("cuda", "triton", "reference")
_backend = os.environ.get("VQREC_FAST_GPU_BACKEND", "cuda")
if _backend not in BACKENDS:
    raise ValueError(f"VQREC_FAST_GPU_BACKEND must be one of {BACKENDS}, got {_backend!r}")


def set_gpu_backend(name: str) -> None:
    """Which kernels the ops use for CUDA tensors: "cuda" (default; falls back to "triton" when
    the CUDA module was not built), "triton" (the cross-check) or "reference" (pure PyTorch)."""
    global _backend
    if name not in BACKENDS:
        raise ValueError(f"GPU backend must be one of {BACKENDS}, got {name!r}")
    _backend = name


def gpu_backend() -> str:
    """The backend CUDA tensors use now (after falling back from a missing CUDA module)."""
    if _backend == "cuda" and _C_cuda is None:
        from .. import triton as _t

        return "triton" if _t.available() else "reference"
    return _backend


from .adc_topk import score_topk_cuda  # noqa: E402
from . import code_bag as _code_bag_registration  # noqa: E402,F401  (registers kernels)
from . import softmax_ce as _softmax_ce_registration  # noqa: E402,F401  (registers kernels)

__all__ = ["has_cuda_kernels", "cuda_module", "score_topk_cuda", "set_gpu_backend", "gpu_backend", "BACKENDS"]
