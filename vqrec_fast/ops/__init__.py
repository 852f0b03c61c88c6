"""Torch-facing ops (custom ops with autograd, fake kernels and native CPU kernels)."""
from .code_bag import code_bag, code_bag_seq
from .score_topk import score_all, score_topk

__all__ = ["code_bag", "code_bag_seq", "score_all", "score_topk"]
