"""Triton ADC top-k: scores item tiles through per-query LUTs, then a torch top-k per chunk.

The kernel computes scores[b, n] = scale[n] * sum_d LUT[b, d, codes[n, d]] for a tile of
queries x items (LUT fp32 [B, D, K] already divided by D, gathered from L1/L2) and writes one
chunk of items at a time into a [B, chunk] buffer; the launcher keeps a running top-k with
torch.topk, so memory is O(B * chunk), never O(B * N). It is the cross-check of the CUDA
kernel (csrc/cuda/adc_topk.cu), which keeps the LUT in shared memory and fuses the selection.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from .. import _adc


@triton.jit
def _adc_scores_kernel(
    lut, codes, scale, out, B, N, n0, ncols, D, K, out_stride,
    HAS_SCALE: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_N: tl.constexpr,
):
    qs = tl.program_id(0) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    ns = n0 + tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    qmask = qs < B
    nmask = ns < N
    acc = tl.zeros((BLOCK_Q, BLOCK_N), dtype=tl.float32)
    qbase = qs.to(tl.int64)[:, None] * D * K
    for d in range(0, D):
        c = tl.load(codes + ns.to(tl.int64) * D + d, mask=nmask, other=0).to(tl.int64)
        acc += tl.load(lut + qbase + d * K + c[None, :], mask=qmask[:, None] & nmask[None, :], other=0.0)
    if HAS_SCALE:
        acc = acc * tl.load(scale + ns, mask=nmask, other=1.0)[None, :]
    acc = tl.where(nmask[None, :], acc, float("-inf"))
    # Only the chunk's ncols columns exist in `out` (the last tile may overhang them).
    cols = ns - n0
    tl.store(out + qs.to(tl.int64)[:, None] * out_stride + cols[None, :], acc,
             mask=qmask[:, None] & (cols < ncols)[None, :])


def adc_topk(
    queries: Tensor,
    W: Tensor,
    codes: Tensor,
    k: int,
    item_scale: Optional[Tensor] = None,
    metric: str = "ip",
    chunk: int = 1 << 18,
) -> Tuple[Tensor, Tensor]:
    """Best k items per query by ADC score (see vqrec_fast._adc for the definition).

    Args:
        queries float [B, H]; W float32 [D, K, H]; codes uint8 [N, D]; k <= N;
        item_scale optional float [N]; metric "ip" | "cosine"; chunk items scored per launch.
    Returns:
        (scores float32 [B, k], ids int64 [B, k]), best first; exact fp32 sums.
    """
    _adc.check_args(queries, W, codes, k, item_scale, metric)
    B, N = queries.shape[0], codes.shape[0]
    D, K, _ = W.shape
    lut, scale = _adc.prepare(queries, W, codes, item_scale, metric)
    codes = codes.contiguous()
    BLOCK_Q, BLOCK_N = 16, 64
    chunk = max(BLOCK_N, min(chunk, N, 65535 * BLOCK_N))  # grid axis 1 holds <= 65535 tiles
    buf = torch.empty(B, chunk, dtype=torch.float32, device=queries.device)
    best_s = torch.full((B, 0), float("-inf"), device=queries.device)
    best_i = torch.zeros((B, 0), dtype=torch.int64, device=queries.device)
    for n0 in range(0, N, chunk):
        n = min(chunk, N - n0)
        grid = (triton.cdiv(B, BLOCK_Q), triton.cdiv(n, BLOCK_N))
        _adc_scores_kernel[grid](
            lut, codes, scale if scale is not None else lut, buf, B, N, n0, n, D, K, chunk,
            HAS_SCALE=scale is not None, BLOCK_Q=BLOCK_Q, BLOCK_N=BLOCK_N,
        )
        s, i = torch.topk(buf[:, :n], min(k, n), dim=1)
        best_s = torch.cat([best_s, s], dim=1)
        best_i = torch.cat([best_i, i + n0], dim=1)
        if best_s.shape[1] > k:
            best_s, pos = torch.topk(best_s, k, dim=1)
            best_i = torch.gather(best_i, 1, pos)
    order = torch.argsort(best_s, dim=1, descending=True, stable=True)
    return torch.gather(best_s, 1, order), torch.gather(best_i, 1, order)
