"""Launcher of the CUDA ADC log-sum-exp (csrc/cuda/softmax_ce.cu) used by the fused loss.

lse[b] = logsumexp_n(<q[b], item_n> / t) over all N items, with item_n = code_bag(W, codes)[n]
(L2-normalised when normalize=True). Computed from per-query fp32 LUTs by an ADC scan with an
online log-sum-exp: neither the N x H item matrix nor the B x N logits exist.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import _adc
from . import cuda_module
from ._launch import stream_of
from .adc_topk import interleave_lut, splits_for

QUERIES_PER_BLOCK = 4  # kQ in softmax_ce.cu: 4 fp32 LUT entries per 16-byte load


def lse_adc_cuda(q: Tensor, W: Tensor, codes: Tensor, inv_t: float, normalize: bool, splits=None) -> Tensor:
    """float32 [B] log-sum-exp of the logits (see module docstring).

    Args: q float32 [B, H] CUDA (normalised inside when normalize); W float32 [D, K, H];
    codes uint8 [N, D] (K <= 256); inv_t = 1 / temperature; splits: item splits per group.
    """
    if codes.dtype != torch.uint8:
        raise TypeError(f"codes must be uint8 for the CUDA ADC log-sum-exp, got {codes.dtype}")
    mod = cuda_module()
    B, N = q.shape[0], codes.shape[0]
    D, K, _ = W.shape
    if mod.softmax_ce_lse_smem_bytes(D, K) == 0:
        raise ValueError(f"D*K = {D * K} fp32 LUT entries x 4 do not fit in shared memory on {q.device}")
    lut, scale = _adc.prepare(q, W.detach(), codes, None, "cosine" if normalize else "ip")
    lut = interleave_lut(lut * inv_t, QUERIES_PER_BLOCK, torch.float32)
    G = lut.shape[0]
    S = splits or splits_for(N, G, q.device)
    part_m = torch.empty(G * QUERIES_PER_BLOCK, S, dtype=torch.float32, device=q.device)
    part_s = torch.empty_like(part_m)
    codes = codes.contiguous()
    with torch.cuda.device(q.device):
        mod.softmax_ce_lse(
            lut.data_ptr(), G, D, K, codes.data_ptr(), N, 0 if scale is None else scale.data_ptr(), S,
            part_m.data_ptr(), part_s.data_ptr(), stream_of(q),
        )
    part_m, part_s = part_m[:B], part_s[:B]
    m = part_m.max(dim=1).values  # every query has at least one item (N >= 1)
    return m + torch.log((part_s * torch.exp(part_m - m[:, None])).sum(dim=1))
