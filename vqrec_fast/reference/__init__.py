"""Plain-PyTorch reference implementations of every kernel.

They are the test oracles and the fallback on devices (or installs) without a native kernel.
They favour clarity, and use memory-friendly torch primitives where the obvious form would
not fit (e.g. embedding_bag instead of a [N, D, H] gather)."""
from .code_bag import code_bag_ref, code_bag_backward_ref, code_bag_seq_ref, code_bag_seq_backward_ref
from .score_topk import item_scale_ref, query_luts_ref, score_all_ref, score_topk_ref
from .softmax_ce import code_softmax_cross_entropy_ref, dense_softmax_ce

__all__ = [
    "code_bag_ref",
    "code_bag_backward_ref",
    "code_bag_seq_ref",
    "code_bag_seq_backward_ref",
    "item_scale_ref",
    "query_luts_ref",
    "score_all_ref",
    "score_topk_ref",
    "code_softmax_cross_entropy_ref",
    "dense_softmax_ce",
]
