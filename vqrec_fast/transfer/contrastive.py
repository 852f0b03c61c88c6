"""Pre-training loss: sequence-to-item contrastive learning with in-batch negatives from all
domains of the batch, plus one semi-synthetic negative per example.

For example i with sequence vector s_i, target representation e_i and (optional)
semi-synthetic negative n_i:
    logits_ij = cos(s_i, e_j) / t for every j in the batch, except j != i whose target item is
               the same as i's (a duplicate positive is not a negative: masked to -inf);
    logit_i,neg = cos(s_i, n_i) / t;
    loss_i = -log softmax(logits_i)[i].
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


def _append_negative(logits: Tensor, s: Tensor, seq_out: Tensor, negative_repr: Optional[Tensor],
                     temperature: float) -> Tensor:
    """logits [b, B] -> [b, B + 1] with the semi-synthetic negative's logit last (s = normalized seq_out)."""
    if negative_repr is None:
        return logits
    if negative_repr.shape != seq_out.shape:
        raise ValueError(f"negative_repr must have shape {tuple(seq_out.shape)}, got {tuple(negative_repr.shape)}")
    neg = (s * F.normalize(negative_repr, dim=-1)).sum(-1, keepdim=True) / temperature
    return torch.cat([logits, neg], dim=1)


def contrastive_pretrain_loss(
    seq_out: Tensor,
    target_repr: Tensor,
    target_ids: Tensor,
    negative_repr: Optional[Tensor] = None,
    temperature: float = 0.07,
    reduction: str = "mean",
) -> Tensor:
    """seq_out [B, H], target_repr [B, H], target_ids int64 [B] (ids unique across domains),
    negative_repr [B, H] or None -> scalar (mean/sum) or [B] (none)."""
    if seq_out.shape != target_repr.shape or seq_out.dim() != 2:
        raise ValueError(f"seq_out {tuple(seq_out.shape)} and target_repr {tuple(target_repr.shape)} must both be [B, H]")
    if target_ids.shape != seq_out.shape[:1]:
        raise ValueError(f"target_ids must have shape [B] = [{seq_out.shape[0]}], got {tuple(target_ids.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    s = F.normalize(seq_out, dim=-1)
    e = F.normalize(target_repr, dim=-1)
    logits = s @ e.T / temperature
    same = target_ids.unsqueeze(0) == target_ids.unsqueeze(1)
    same.fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))
    logits = _append_negative(logits, s, seq_out, negative_repr, temperature)
    labels = torch.arange(seq_out.shape[0], device=seq_out.device)
    return F.cross_entropy(logits, labels, reduction=reduction)


def contrastive_pretrain_loss_shard(
    seq_out: Tensor,
    all_target_repr: Tensor,
    all_target_ids: Tensor,
    start: int,
    negative_repr: Optional[Tensor] = None,
    temperature: float = 0.07,
) -> Tensor:
    """The same loss for one shard of a batch split across processes: this shard's examples are
    rows start .. start + b - 1 of the global batch. seq_out [b, H], all_target_repr [B, H] and
    all_target_ids [B] of the whole batch, negative_repr [b, H] or None -> the SUM of the b
    per-example losses (the caller divides by the global B). With start = 0 and b = B this is
    ``contrastive_pretrain_loss(..., reduction="sum")``."""
    b = seq_out.shape[0]
    if all_target_repr.dim() != 2 or all_target_repr.shape[1] != seq_out.shape[1]:
        raise ValueError(f"all_target_repr must be [B, {seq_out.shape[1]}], got {tuple(all_target_repr.shape)}")
    if all_target_ids.shape != all_target_repr.shape[:1]:
        raise ValueError(f"all_target_ids must be [B] = [{all_target_repr.shape[0]}], got {tuple(all_target_ids.shape)}")
    if not 0 <= start <= all_target_repr.shape[0] - b:
        raise ValueError(f"shard rows [{start}, {start + b}) are outside the batch of {all_target_repr.shape[0]}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    s = F.normalize(seq_out, dim=-1)
    e = F.normalize(all_target_repr, dim=-1)
    logits = s @ e.T / temperature  # [b, B]
    rows = torch.arange(b, device=seq_out.device)
    mine = all_target_ids[start : start + b]
    same = mine.unsqueeze(1) == all_target_ids.unsqueeze(0)
    same[rows, start + rows] = False
    logits = logits.masked_fill(same, float("-inf"))
    logits = _append_negative(logits, s, seq_out, negative_repr, temperature)
    return F.cross_entropy(logits, start + rows, reduction="sum")
