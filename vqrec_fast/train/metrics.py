"""Full-ranking metrics under leave-one-out (RecBole's definitions, see GUIDE.md).

rank = 0-based position of the target in the ranking of all real items (padding excluded,
history not masked). Recall@K (RecBole's HIT@K) = 1[rank < K]; NDCG@K = 1/log2(rank + 2) if
rank < K else 0; both averaged over users.
"""
from __future__ import annotations

from typing import Dict, Iterable

import torch
from torch import Tensor


def target_ranks(topk_ids: Tensor, targets: Tensor) -> Tensor:
    """topk_ids int64 [B, k] (best first), targets int64 [B] -> int64 [B] rank, or k when the
    target is not in the top k (which counts as a miss for every K <= k)."""
    if topk_ids.dim() != 2 or targets.shape != (topk_ids.shape[0],):
        raise ValueError(f"topk_ids must be [B, k] and targets [B], got {tuple(topk_ids.shape)} and {tuple(targets.shape)}")
    hit = topk_ids == targets[:, None]
    k = topk_ids.shape[1]
    first = torch.where(hit.any(1), hit.to(torch.int8).argmax(1), torch.full_like(targets, k))
    return first.to(torch.int64)


def metrics_from_ranks(ranks: Tensor, ks: Iterable[int]) -> Dict[str, float]:
    """ranks int64 [B] -> {"recall@K": mean, "ndcg@K": mean} for each K."""
    out: Dict[str, float] = {}
    n = max(int(ranks.numel()), 1)
    r = ranks.to(torch.float64)
    for k in ks:
        inside = ranks < k
        out[f"recall@{k}"] = float(inside.sum()) / n
        out[f"ndcg@{k}"] = float(torch.where(inside, 1.0 / torch.log2(r + 2.0), torch.zeros_like(r)).sum()) / n
    return out
