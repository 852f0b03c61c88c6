"""``score_topk`` for CUDA tensors: GPU candidate scans, then an exact fp32 re-rank.

CUDA backend, D in {8, 16, 32}, K <= 256, k + the longest exclusion list <= 64 (the usual
case): ``topk_gpu_quantized``. Its uint8 scans (csrc/cuda/adc_candidates.cu) return, with a
rigorous error bound, every item that can still be among the best k + excluded; below 2^18
items in one pass, beyond in two (a sample bounds the k-th score, then a threshold scan). The
candidates are re-scored exactly, so the result is the exact top-k with no "near-tie" caveat.
Rows whose candidate buffers overflow (many exact ties) are recomputed by the caller densely.

Otherwise (``topk_gpu``): the fp16 CUDA scan or the Triton scan returns a short list per query
(k, plus the query's excluded ids, plus a margin for fp16 ties), re-scored exactly in fp32;
only an item within fp16 rounding of the k-th score that fell past the margin could be missed.

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

    lut: float32 [B, D, K] (queries already normalised for cosine); ids: int64 [B, C] in [0, N).
    Summed one sub-space at a time, in order, as the CPU's exact sum: the same float rounding,
    and [B, C] int64 indices at a time instead of [B, C, D] (1.1 GB at B=256 with 5,000
    candidates per query)."""
    B, D, K = lut.shape
    C = ids.shape[1]
    c = codes[ids.reshape(-1)].reshape(B, C, D)  # codes' dtype (uint8): 1 byte per entry
    s = torch.zeros(B, C, dtype=torch.float32, device=lut.device)
    for d in range(D):
        s += torch.gather(lut[:, d, :], 1, c[:, :, d].to(torch.int64))
    s = s / D
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


def longest_exclusion(csr: Optional[Tuple[Tensor, Tensor]], B: int) -> int:
    """The most ids any query excludes (0 without exclusions)."""
    return int(csr[0].diff().max()) if csr is not None and B else 0


def best_admissible(
    s: Tensor, cand: Tensor, csr: Optional[Tuple[Tensor, Tensor]], N: int, k: int
) -> Tuple[Tensor, Tensor]:
    """The best k of each row's candidates (ids int64 [B, C], -1 = none) by their exact scores
    s [B, C], excluded ids left out. Rows with fewer than k admissible candidates end in score
    -inf, id -1, as on the CPU."""
    real = cand >= 0
    mask = excluded_mask(cand.clamp_min(0), csr, N)
    if mask is not None:
        s = s.masked_fill(mask & real, float("-inf"))
    if s.shape[1] < k:  # fewer candidates than k: only when excluded items leave < k admissible
        s = torch.nn.functional.pad(s, (0, k - s.shape[1]), value=float("-inf"))
        cand = torch.nn.functional.pad(cand, (0, k - cand.shape[1]), value=-1)
    top, pos = torch.topk(s, k, dim=1)
    return top, torch.gather(cand, 1, pos).masked_fill(torch.isneginf(top), -1)


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
    kc = candidate_count(k, longest_exclusion(csr, queries.shape[0]), N)
    if kc > MAX_CANDIDATES:
        return None
    q = torch.nn.functional.normalize(queries, dim=1) if metric == "cosine" else queries
    with torch.no_grad():
        _, cand = scan(q, W, codes, kc, item_scale)
        lut = lut_fn(q, W, "ip")
        s = exact_scores(lut, codes, cand, item_scale)
    return best_admissible(s, cand, csr, N, k)


TWO_PASS_FROM = 1 << 18  # N from which the quantized path samples a bound first (two passes)
SAMPLE = 1 << 17  # items of that first pass


def topk_gpu_quantized(
    queries: Tensor,
    W: Tensor,
    codes: Tensor,
    k: int,
    item_scale: Optional[Tensor],
    csr: Optional[Tuple[Tensor, Tensor]],
    metric: str,
    lut_fn: Callable[[Tensor, Tensor, str], Tensor],
    bits: int = 8,
    items: int = 2,
    two_pass_from: int = TWO_PASS_FROM,
) -> Optional[Tuple[Tensor, Tensor, Tensor]]:
    """The exact top-k through the CUDA uint8 scans (vqrec_fast/cuda/adc_candidates.py).

    Up to ``two_pass_from`` items, one pass of the list kernel yields every item that can be
    among the best kk (= k + the longest exclusion list). Beyond, the list kernel runs on the
    first SAMPLE items only; the exact kk-th best score of that sample is a lower bound of the
    catalogue's, and the threshold kernel then collects every other item whose estimate can
    still reach it. All candidates are re-scored exactly in fp32 and the best k kept.

    Same arguments as ``topk_gpu``; bits and items select the list kernel's variant (see
    ``adc_candidates.candidate_ids``). Returns (scores, ids, fallback bool [B]): rows flagged in
    fallback overflowed a kernel's buffers and must be recomputed by the caller; None when the
    kernels cannot serve the call (D, K, k + exclusions, alignment)."""
    from ..cuda import adc_candidates as ac

    B, N = queries.shape[0], codes.shape[0]
    D, K, _ = W.shape
    kk = min(N, k + longest_exclusion(csr, B))  # the k-th admissible item is within the best k + excluded
    if not ac.supported(D, K, kk, codes):
        return None
    q = torch.nn.functional.normalize(queries, dim=1) if metric == "cosine" else queries
    with torch.no_grad():
        lut = lut_fn(q, W, "ip")  # [B, D, K]; D is a power of two, so lut / D is exact
        lut_d = lut / D
        tables = ac.quantize_luts(lut_d, bits)
        s_max = ac.scale_max(item_scale)
        two_pass = N >= two_pass_from
        n1 = SAMPLE if two_pass else N
        sc1 = None if item_scale is None else item_scale[:n1]
        cand, fallback = ac.candidate_ids(lut_d, codes[:n1], kk, sc1, bits=bits, items=items, tables=tables,
                                          s_max=s_max)
        s = _scores_of(lut, codes, cand, item_scale)
        if two_pass:  # the sample's exact kk-th best bounds the catalogue's from below
            tau = torch.topk(s, min(kk, s.shape[1]), dim=1).values[:, -1]
            if s.shape[1] < kk:
                tau = torch.full_like(tau, float("-inf"))
            cand2, over = ac.threshold_ids(tables, B, codes, n1, item_scale, s_max, tau)
            cand = torch.cat([cand, cand2], 1)
            s = torch.cat([s, _scores_of(lut, codes, cand2, item_scale)], 1)
            fallback = fallback | over
    top, ids = best_admissible(s, cand, csr, N, k)
    return top, ids, fallback


def _scores_of(lut: Tensor, codes: Tensor, cand: Tensor, item_scale: Optional[Tensor]) -> Tensor:
    """Exact scores of candidate ids (-1 = none -> -inf)."""
    return exact_scores(lut, codes, cand.clamp_min(0), item_scale).masked_fill(cand < 0, float("-inf"))


def cuda_scan(q: Tensor, W: Tensor, codes: Tensor, kc: int, scale: Optional[Tensor]):
    from ..cuda.adc_topk import score_topk_cuda

    return score_topk_cuda(q, W, codes, kc, item_scale=scale, metric="ip", half_sums=True)


def triton_scan(q: Tensor, W: Tensor, codes: Tensor, kc: int, scale: Optional[Tensor]):
    from ..triton.adc_topk import adc_topk

    return adc_topk(q, W, codes, kc, item_scale=scale, metric="ip")


def scan_for_backend(name: str) -> Optional[CandidateFn]:
    """The candidate kernel of a GPU backend ("cuda", "triton"), None for "reference"."""
    return {"cuda": cuda_scan, "triton": triton_scan}.get(name)
