"""Reference (dense) softmax cross-entropy over code-composed items.

    loss = cross_entropy(normalize(seq_out) @ normalize(code_bag(W, codes)).T / t, target)

with an optional extra negative per query appended as one more logit column. This holds the
full [B, N] logits matrix and the [N, H] item matrix: it is the test oracle, the fallback on
devices without a fused kernel, and the "dense" training path.

Shapes: seq_out float [B, H]; items float [N, H]; target int64 [B] in [0, N) or ignore_index;
extra_items float [B, H] (row b is an extra negative for query b only).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .code_bag import code_bag_ref


def dense_softmax_ce(
    seq_out: torch.Tensor,
    items: torch.Tensor,
    target: torch.Tensor,
    *,
    temperature: float = 0.07,
    normalize: bool = True,
    ignore_index: int = -100,
    reduction: str = "mean",
    extra_items: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Cross-entropy of the [B, N (+1)] logits built densely from item representations."""
    q = F.normalize(seq_out, dim=-1) if normalize else seq_out
    e = F.normalize(items, dim=-1) if normalize else items
    logits = q @ e.T / temperature
    if extra_items is not None:
        x = F.normalize(extra_items, dim=-1) if normalize else extra_items
        logits = torch.cat([logits, (q * x).sum(-1, keepdim=True) / temperature], dim=1)
    return F.cross_entropy(logits, target, ignore_index=ignore_index, reduction=reduction)


def code_softmax_cross_entropy_ref(
    seq_out: torch.Tensor,
    W: torch.Tensor,
    codes: torch.Tensor,
    target: torch.Tensor,
    *,
    temperature: float = 0.07,
    normalize: bool = True,
    ignore_index: int = -100,
    reduction: str = "mean",
    extra_codes: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Dense formulation with the reference code bag (W float [D, K, H], codes int [N, D])."""
    extra = code_bag_ref(W, extra_codes) if extra_codes is not None else None
    return dense_softmax_ce(
        seq_out, code_bag_ref(W, codes), target, temperature=temperature, normalize=normalize,
        ignore_index=ignore_index, reduction=reduction, extra_items=extra,
    )
