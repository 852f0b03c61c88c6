"""Torch-facing ops (custom ops with autograd, fake kernels and native CPU kernels)."""
from .code_bag import code_bag, code_bag_seq
from .output_cache import empty_output_cache, output_cache_info, set_output_cache_limit
from .score_topk import score_all, score_topk
from .softmax_ce import (
    code_softmax_cross_entropy,
    dense_code_softmax_cross_entropy,
    pick_code_softmax_cross_entropy,
)

__all__ = [
    "code_bag",
    "code_bag_seq",
    "code_softmax_cross_entropy",
    "dense_code_softmax_cross_entropy",
    "empty_output_cache",
    "output_cache_info",
    "set_output_cache_limit",
    "pick_code_softmax_cross_entropy",
    "score_all",
    "score_topk",
]
