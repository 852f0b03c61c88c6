"""Straightforward padded formulation of the sequential recommenders' forward pass (RecBole's
layout: [B, L, H] with padding, additive attention mask, output gathered at the last real
position). The packed models must match it exactly with dropout off (test oracle only: it
computes on padding, which the packed path never does)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def seqrec_forward_ref(model, padded: Tensor) -> Tensor:
    """model: a ``vqrec_fast.models.SeqRecModel`` in eval mode; padded int64 [B, L] left-aligned
    histories (0 = padding, each row >= 1 item). Returns float32 [B, H] (last real position)."""
    B, L = padded.shape
    mask = padded != 0
    lengths = mask.sum(1)
    H = model.hidden
    x = torch.zeros(B, L, H)
    x[mask] = model.embed_items(padded[mask])
    x = model.ln(x + model.position(torch.arange(L))[None])
    causal = torch.tril(torch.ones(L, L, dtype=torch.bool))
    allowed = causal[None, :, :] & mask[:, None, :]  # [B, Lq, Lk]
    additive = torch.where(allowed, 0.0, -10000.0)[:, None]  # [B, 1, Lq, Lk]
    for layer in model.encoder.layers:
        nh = layer.heads
        d = H // nh
        q, k, v = layer.qkv(x).split(H, dim=-1)
        q, k, v = (t.view(B, L, nh, d).transpose(1, 2) for t in (q, k, v))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + additive, dim=-1)
        ctx = (probs @ v).transpose(1, 2).reshape(B, L, H)
        h = layer.ln1(x + layer.out(ctx))
        x = layer.ln2(h + layer.ff2(F.gelu(layer.ff1(h))))
    return x[torch.arange(B), lengths - 1]
