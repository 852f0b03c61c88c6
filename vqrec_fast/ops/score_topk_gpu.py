"""``score_topk`` for CUDA tensors: a GPU candidate scan, then an exact fp32 re-rank.

The GPU scans (CUDA: fp16 LUTs in shared memory; Triton: fp32 LUT gathers) return a short list
of candidates per query: k, plus the query's excluded ids (they may come back and are dropped
afterwards), plus a margin so that items whose fp16 score rounded below the k-th still make the
list. Every candidate is then scored again from the fp32 LUTs, exactly as the CPU scan scores
it, excluded ones are masked, and the best k are kept. The scores returned are therefore the
exact float32 ADC scores of the ids returned, as on the CPU; only an item within fp16 rounding
of the k-th score that fell past the margin could be missed.

When the list would exceed what the kernels keep per query (256), or the backend is
"reference", the chunked dense strategy runs instead (code-bag items, GEMM, top-k per chunk).
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

CandidateFn = Callable[[Tensor, Tensor, Tensor, int, Optional[Tensor]], Tuple[Tensor, Tensor]]
MAX_CANDIDATES = 256  # per query: kMaxK in csrc/cuda/adc_topk.cu


def candidate_count(k: int, max_excluded: int, N: int) -> int:
    """Candidates to ask the scan for: k + excluded + a margin of max(16, k / 4) for fp16 ties."""
    return min(N, k + max_excluded + max(16, k // 4))


def exact_scores(lut: Tensor, codes: Tensor, ids: Tensor, item_scale: Optional[Tensor]) -> Tensor:
    """float32 [B, C]: (1/D) * sum_d lut[b, d, codes[ids[b, c], d]] * s, the CPU's definition.

    lut: float32 [B, D, K] (queries already normalised for cosine); ids: int64 [B, C] in [0, N)."""
    B, D, K = lut.shape
    C = ids.shape[1]
    c = codes[ids.reshape(-1)].reshape(B, C, D).to(torch.int64)  # [B, C, D]
    flat = c + torch.arange(D, device=c.device) * K  # index into lut[b].reshape(D*K)
    s = torch.gather(lut.reshape(B, 1, D * K).expand(B, C, D * K), 2, flat).sum(-1) / D
    if item_scale is not None:
        s = s * item_scale[ids]
    return s


def excluded_mask(ids: Tensor, csr: Optional[Tuple[Tensor, Tensor]], N: int) -> Optional[Tensor]:
    """bool [B, C]: candidate ids[b, c] is in query b's exclusion list (csr rows sorted, unique)."""
    if csr is None or csr[1].numel() == 0:
        return None
    offsets, ex = csr
    dev = ids.device
    B = ids.shape[0]
    rows = torch.repeat_interleave(torch.arange(B), offsets.diff()).to(dev)
    keys = rows * N + ex.to(dev)  # sorted: csr rows are sorted by row, then id
    cand = torch.arange(B, device=dev)[:, None] * N + ids
    pos = torch.searchsorted(keys, cand).clamp_max(keys.numel() - 1)
    return keys[pos] == cand


def topk_gpu(
    queries: Tensor,
    W: Tensor,
    codes: Tensor,
    k: int,
    item_scale: Optional[Tensor],
    csr: Optional[Tuple[Tensor, Tensor]],
    metric: str,
    scan: CandidateFn,
    lut_fn: Callable[[Tensor, Tensor, str], Tensor],
) -> Optional[Tuple[Tensor, Tensor]]:
    """(scores float32 [B, k], ids int64 [B, k]) best first, or None when the candidate list
    would be too long for the scan (the caller then uses the dense strategy).

    queries float32 [B, H], W float32 [D, K, H], codes uint8 [N, D], 1 <= k <= N; item_scale
    float32 [N] or None (for cosine the caller passes 1/||item_n|| when the user gave none);
    csr: exclusions (offsets int64 [B + 1], ids int64, CPU). scan(q, W, codes, kc, scale) is the
    GPU candidate kernel on already-normalised queries (metric "ip")."""
    N = codes.shape[0]
    max_ex = int(csr[0].diff().max()) if csr is not None and queries.shape[0] else 0
    kc = candidate_count(k, max_ex, N)
    if kc > MAX_CANDIDATES:
        return None
    q = torch.nn.functional.normalize(queries, dim=1) if metric == "cosine" else queries
    with torch.no_grad():
        _, cand = scan(q, W, codes, kc, item_scale)
        lut = lut_fn(q, W, "ip")
        s = exact_scores(lut, codes, cand, item_scale)
        mask = excluded_mask(cand, csr, N)
        if mask is not None:
            s = s.masked_fill(mask, float("-inf"))
        top, pos = torch.topk(s, k, dim=1)
        ids = torch.gather(cand, 1, pos)
        if mask is not None:  # fewer than k admissible candidates: -inf, id -1, as on the CPU
            ids = ids.masked_fill(torch.isneginf(top), -1)
    return top, ids


def cuda_scan(q: Tensor, W: Tensor, codes: Tensor, kc: int, scale: Optional[Tensor]):
    from ..cuda.adc_topk import score_topk_cuda

    return score_topk_cuda(q, W, codes, kc, item_scale=scale, metric="ip", half_sums=True)


def triton_scan(q: Tensor, W: Tensor, codes: Tensor, kc: int, scale: Optional[Tensor]):
    from ..triton.adc_topk import adc_topk

    return adc_topk(q, W, codes, kc, item_scale=scale, metric="ip")


def scan_for_backend(name: str) -> Optional[CandidateFn]:
    """The candidate kernel of a GPU backend ("cuda", "triton"), None for "reference"."""
    return {"cuda": cuda_scan, "triton": triton_scan}.get(name)
