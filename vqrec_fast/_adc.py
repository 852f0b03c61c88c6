"""Shared preparation of an ADC (asymmetric distance) scan, used by the CUDA and Triton
top-k kernels: argument checks, per-query look-up tables, per-item scales, split merging.

score(q, n) = (1/D) * sum_d LUT_q[d, codes[n, d]] * s_n with LUT_q[d, k] = <q, W[d, k]>,
which equals <q, code_bag(W, codes)[n]> * s_n. metric="cosine" normalises the queries and
multiplies s_n by 1 / ||code_bag(W, codes)[n]|| (computed chunk by chunk, never N x H at once).

Shapes: queries float [B, H]; W float32 [D, K, H]; codes uint8 [N, D]; item_scale float [N].
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _validate as V

METRICS = ("ip", "cosine")


def check_args(queries: Tensor, W: Tensor, codes: Tensor, k: int, item_scale: Optional[Tensor], metric: str) -> None:
    """Raises TypeError/ValueError naming the offending argument."""
    V.check_float32(W, "W")
    V.check_ndim(W, 3, "W", "[D, K, H]")
    V.check_tensor(queries, "queries")
    if not queries.is_floating_point():
        raise TypeError(f"queries must be a floating-point tensor, got {queries.dtype}")
    V.check_ndim(queries, 2, "queries", "[B, H]")
    if queries.shape[1] != W.shape[2]:
        raise ValueError(f"queries has H={queries.shape[1]} but W has H={W.shape[2]} (shape {tuple(W.shape)})")
    V.check_codes(codes, W.shape[1], W.shape[0], "codes")
    if codes.dtype != torch.uint8:
        raise TypeError(f"codes must be uint8 for the GPU ADC scan (K <= 256), got {codes.dtype}")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if k > codes.shape[0]:
        raise ValueError(f"k={k} exceeds the number of items N={codes.shape[0]}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    tensors, names = [queries, W, codes], ["queries", "W", "codes"]
    if item_scale is not None:
        V.check_tensor(item_scale, "item_scale")
        if item_scale.shape != (codes.shape[0],):
            raise ValueError(f"item_scale must have shape [N]=[{codes.shape[0]}], got {tuple(item_scale.shape)}")
        tensors.append(item_scale)
        names.append("item_scale")
    V.check_same_device(tensors, names)


def inverse_item_norms(W: Tensor, codes: Tensor, chunk: int = 1 << 16) -> Tensor:
    """float32 [N]: 1 / max(||code_bag(W, codes)[n]||, 1e-12), computed in chunks of items."""
    from .ops.code_bag import code_bag

    out = torch.empty(codes.shape[0], dtype=torch.float32, device=codes.device)
    with torch.no_grad():
        for a in range(0, codes.shape[0], chunk):
            e = code_bag(W, codes[a : a + chunk])
            out[a : a + chunk] = 1.0 / e.norm(dim=1).clamp_min(1e-12)
    return out


def prepare(
    queries: Tensor, W: Tensor, codes: Tensor, item_scale: Optional[Tensor], metric: str
) -> Tuple[Tensor, Optional[Tensor]]:
    """(LUT float32 [B, D, K] already divided by D, per-item scale float32 [N] or None)."""
    D = W.shape[0]
    q = queries.to(torch.float32)
    scale = None if item_scale is None else item_scale.to(torch.float32).contiguous()
    if metric == "cosine":
        q = F.normalize(q, dim=1)
        inv = inverse_item_norms(W, codes)
        scale = inv if scale is None else scale * inv
    # One GEMM: [B, H] x [H, D*K]; the tables are tiny next to the scan (B * 32 KiB).
    lut = torch.matmul(q, W.reshape(-1, W.shape[2]).t()).reshape(q.shape[0], D, W.shape[1]) / D
    return lut.contiguous(), scale


def merge_splits(scores: Tensor, ids: Tensor, B: int, k: int) -> Tuple[Tensor, Tensor]:
    """Per-query best k over every split: scores/ids [B', S, k] (B' >= B) -> [B, k] each, best first."""
    s = scores[:B].reshape(B, -1)
    i = ids[:B].reshape(B, -1)
    top, pos = torch.topk(s, k, dim=1)
    return top, torch.gather(i, 1, pos).to(torch.int64)


def dense_scores(queries: Tensor, W: Tensor, codes: Tensor, item_scale: Optional[Tensor], metric: str) -> Tensor:
    """Brute-force float32 [B, N] scores through the item matrix (tests and small inputs only)."""
    from .reference.code_bag import code_bag_ref

    items = code_bag_ref(W, codes)
    q = queries.to(torch.float32)
    if metric == "cosine":
        q = F.normalize(q, dim=1)
        items = items / items.norm(dim=1, keepdim=True).clamp_min(1e-12)
    s = q @ items.t()
    return s if item_scale is None else s * item_scale.to(torch.float32)
