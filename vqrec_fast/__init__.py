"""vqrec_fast: fast VQ-Rec (vector-quantized item representations for sequential recommenders).

Hot paths (code bag, ADC top-k scoring, fused full-softmax loss) run in a torch-free C++ core
with runtime SIMD dispatch; every op has a pure-PyTorch reference in ``vqrec_fast.reference``.
"""
from ._native import (
    available_simd_levels,
    detected_simd_level,
    has_native,
    set_simd_level,
    simd_level,
    simd_level_context,
)
from .ops import (
    code_bag,
    code_bag_seq,
    code_softmax_cross_entropy,
    dense_code_softmax_cross_entropy,
    empty_output_cache,
    output_cache_info,
    score_all,
    set_output_cache_limit,
    score_topk,
)
from .index import CodeIndex
from . import nn
from . import cuda  # registers the CUDA kernels with the custom ops (no-op without _C_cuda)

__version__ = "0.1.0"

__all__ = [
    "available_simd_levels",
    "detected_simd_level",
    "has_native",
    "set_simd_level",
    "simd_level",
    "simd_level_context",
    "code_bag",
    "code_bag_seq",
    "score_all",
    "score_topk",
    "CodeIndex",
    "code_softmax_cross_entropy",
    "dense_code_softmax_cross_entropy",
    "empty_output_cache",
    "output_cache_info",
    "set_output_cache_limit",
    "nn",
    "cuda",
]
