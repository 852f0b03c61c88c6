"""SASRec's Transformer encoder (RecBole layout: post-LayerNorm, GELU feed-forward) on packed
tokens: every projection and feed-forward runs on the T real tokens only; attention runs per
length bucket (see ``packed.py``). The last layer can compute queries, the output projection
and the feed-forward for the last token of each sequence only (``last_only``), which is all
next-item prediction at inference needs.

Shapes: x float32 [T, H] packed tokens; returns [T, H], or [B, H] with ``last_only``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .packed import PackedLayout


def packed_attention(q: Tensor, k: Tensor, v: Tensor, layout: PackedLayout, heads: int, dropout_p: float,
                     last_only: bool) -> Tensor:
    """Causal multi-head attention within each sequence.

    q: [T, H] (or [B, H] for the last token of each sequence when ``last_only``); k, v: [T, H].
    Returns the attention context in q's layout.
    """
    T, H = k.shape
    d = H // heads
    zero = k.new_zeros(1, H)
    k_pad, v_pad = torch.cat([k, zero]), torch.cat([v, zero])
    q_pad = None if last_only else torch.cat([q, zero])
    outs, order = [], []
    for b in layout.buckets:
        n, L = b.rows.numel(), b.length
        kb = k_pad[b.gather].view(n, L, heads, d).transpose(1, 2)
        vb = v_pad[b.gather].view(n, L, heads, d).transpose(1, 2)
        if last_only:
            qb = q[b.rows].view(n, heads, 1, d)
            # keys of a sequence: its real tokens, all at or before its last token
            mask = b.valid.view(n, 1, 1, L)
            ob = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask, dropout_p=dropout_p)
            outs.append(ob.reshape(n, H))
            order.append(b.rows)
        else:
            qb = q_pad[b.gather].view(n, L, heads, d).transpose(1, 2)
            # left-aligned sequences: padding slots come after every real token, so the causal
            # mask alone keeps real queries off padding keys
            ob = F.scaled_dot_product_attention(qb, kb, vb, is_causal=True, dropout_p=dropout_p)
            outs.append(ob.transpose(1, 2).reshape(n * L, H)[b.valid])
    out = torch.cat(outs)
    if last_only:
        rows = torch.cat(order)
        inv = torch.empty_like(rows)
        inv[rows] = torch.arange(rows.numel(), device=rows.device)
        return out[inv]
    return out[layout.unperm]


class TransformerLayer(nn.Module):
    """One post-LN layer: x -> LN(x + drop(attn(x))) -> LN(h + drop(W2 gelu(W1 h)))."""

    def __init__(self, hidden: int, heads: int, inner: int, dropout: float, attn_dropout: float, eps: float):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not divisible by n_heads {heads}")
        self.heads, self.attn_dropout = heads, attn_dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)  # rows [0,H) query, [H,2H) key, [2H,3H) value
        self.out = nn.Linear(hidden, hidden)
        self.ln1 = nn.LayerNorm(hidden, eps=eps)
        self.ff1 = nn.Linear(hidden, inner)
        self.ff2 = nn.Linear(inner, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, layout: PackedLayout, last_only: bool = False) -> Tensor:
        H = x.shape[1]
        p = self.attn_dropout if self.training else 0.0
        if last_only:
            kv = F.linear(x, self.qkv.weight[H:], self.qkv.bias[H:])
            k, v = kv[:, :H], kv[:, H:]
            x = x[layout.last]
            q = F.linear(x, self.qkv.weight[:H], self.qkv.bias[:H])
        else:
            q, k, v = self.qkv(x).split(H, dim=1)
        ctx = packed_attention(q, k, v, layout, self.heads, p, last_only)
        h = self.ln1(x + self.drop(self.out(ctx)))
        return self.ln2(h + self.drop(self.ff2(F.gelu(self.ff1(h)))))


class PackedTransformerEncoder(nn.Module):
    def __init__(self, n_layers: int, hidden: int, heads: int, inner: int, dropout: float, attn_dropout: float,
                 eps: float):
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerLayer(hidden, heads, inner, dropout, attn_dropout, eps) for _ in range(n_layers)
        )

    def forward(self, x: Tensor, layout: PackedLayout, last_only: bool = False) -> Tensor:
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            x = layer(x, layout, last_only=last_only and i == n - 1)
        return x
