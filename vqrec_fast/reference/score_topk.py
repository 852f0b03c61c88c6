"""Reference ADC scoring: score(q, n) = (1/D) * sum_d LUT_q[d, codes[n, d]] * s_n.

Shapes: queries float [B, H]; W float [D, K, H]; codes integer [N, D] in [0, K);
item_scale float [N] (default 1). metric="cosine" normalises the queries and uses
s_n = 1 / ||item_n||, item_n = code bag of n (s_n = 0 for an all-zero item).
The oracle computes in float64, so tests measure the native kernels' float32 error."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .code_bag import code_bag_ref


def query_luts_ref(queries: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """[B, D, K] LUT_q[d, k] = <q, W[d, k]>."""
    return torch.einsum("bh,dkh->bdk", queries, W)


def item_scale_ref(W: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """[N] 1 / ||code bag of n|| (0 where the bag is the zero vector)."""
    norms = code_bag_ref(W.double(), codes).norm(dim=1)
    return torch.where(norms > 0, 1.0 / norms.clamp_min(1e-300), torch.zeros_like(norms))


def score_all_ref(
    queries: torch.Tensor,
    W: torch.Tensor,
    codes: torch.Tensor,
    item_scale: Optional[torch.Tensor] = None,
    metric: str = "ip",
) -> torch.Tensor:
    """[B, N] float64 scores."""
    q, W = queries.double(), W.double()
    D, K, _ = W.shape
    if metric == "cosine":
        q = F.normalize(q, dim=1)
        if item_scale is None:
            item_scale = item_scale_ref(W, codes)
    lut = query_luts_ref(q, W).reshape(q.shape[0], D * K)
    idx = codes.long() + torch.arange(D) * K  # [N, D] flat LUT columns
    scores = lut[:, idx].sum(-1) / D  # [B, N]
    if item_scale is not None:
        scores = scores * item_scale.double()
    return scores


def score_topk_ref(
    queries: torch.Tensor,
    W: torch.Tensor,
    codes: torch.Tensor,
    k: int,
    item_scale: Optional[torch.Tensor] = None,
    exclude: Optional[Sequence[torch.Tensor]] = None,
    metric: str = "ip",
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(scores float64 [B, min(k, N)], ids int64) by brute force; excluded items score -inf and
    are reported as id -1."""
    scores = score_all_ref(queries, W, codes, item_scale, metric)
    if exclude is not None:
        for b, ex in enumerate(exclude):
            scores[b, torch.as_tensor(ex, dtype=torch.long)] = float("-inf")
    kk = min(k, codes.shape[0])
    s, i = scores.topk(kk, dim=1)
    i = torch.where(torch.isinf(s), torch.full_like(i, -1), i)
    return s, i
