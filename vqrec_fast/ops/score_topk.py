"""ADC top-k scoring of code-composed items (``score_topk``) and dense scoring (``score_all``).

Shapes and dtypes:
  queries     float32 [B, H]     user / query vectors
  W           float32 [D, K, H]  codebooks (the code-bag table)
  codes       integer [N, D]     item codes in [0, K); item ids are row indices 0..N-1
  item_scale  float32 [N] >= 0   optional per-item factor s_n (default 1)
  score(q, n) = (1/D) * sum_d LUT_q[d, codes[n, d]] * s_n,   LUT_q[d, k] = <q, W[d, k]>
metric="cosine" normalises the queries and defaults s_n to 1 / ||item_n|| (item_n = code bag of
n), so the score is the cosine between query and item, as VQ-Rec scores.

The LUTs are one GEMM in PyTorch; the scan over items is native (csrc/cpu/score_topk*.cpp):
a streaming top-k that never holds the B x N matrix. It scans uint8 quantized LUTs and scores
exactly the few items whose bound reaches a query's k-th best score so far, at every SIMD
level (the AVX-512 VBMI block scan or the query-major scan, see score_topk's `mode`); a
float-LUT scan remains for K > 256 or D > 516.
All give the exact float32 scores. For N <= D * K (e.g. evaluation over a few thousand real
items) the item matrix is smaller than the LUTs, and "auto" instead multiplies the queries with
the code-bag items in chunks of at most 16M scores. Without the native extension the
pure-PyTorch reference is used. CUDA tensors go to the selected GPU backend's ADC scan for
candidates, re-scored exactly in fp32 (vqrec_fast/ops/score_topk_gpu.py), so the scores equal
the CPU's.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .. import _validate as V
from .._native import _C, num_threads
from ..reference import score_topk as ref
from .code_bag import code_bag, native_bag_norms

METRICS = ("ip", "cosine")
MODES = ("auto", "exact", "quantized", "dense", "quantized_blocks", "quantized_queries")
# ScanMode in csrc/cpu/score_topk.h
_SCAN_CODES = {"exact": 0, "quantized": 1, "quantized_blocks": 2, "quantized_queries": 3}
Exclude = Union[None, Sequence, Tuple[Tensor, Tensor]]

_SCALE_CHUNK = 16384  # items per code-bag chunk when computing norms (20 MB at H = 300)
_QUERY_CHUNK = 512  # queries per native call: bounds the LUTs to 512 * D * K * 4 bytes (16 MB)
_DENSE_SCORES = 1 << 24  # scores held at once by the small-N strategy (64 MB)


# ----------------------------------------------------------------------------- validation


def _check_queries(queries: Tensor, H: int) -> None:
    V.check_float32(queries, "queries")
    V.check_ndim(queries, 2, "queries", "[B, H]")
    if queries.shape[1] != H:
        raise ValueError(f"queries have H={queries.shape[1]} (shape {tuple(queries.shape)}) but W has H={H}")


def _check_k(k) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
        raise ValueError(f"k must be a positive int, got {k!r}")


def _check_inputs(queries: Tensor, W: Tensor, codes: Tensor, metric: str) -> None:
    """Types, shapes and code ranges. Finiteness of W and queries is checked on the LUTs in C++
    (one pass over B * D * K floats instead of D * K * H), then diagnosed here on failure."""
    V.check_float32(W, "W")
    V.check_ndim(W, 3, "W", "[D, K, H]")
    D, K, H = W.shape
    if D < 1 or K < 1:
        raise ValueError(f"W must have D >= 1 and K >= 1, got shape {tuple(W.shape)}")
    _check_queries(queries, H)
    V.check_codes(codes, K, D, "codes")
    V.check_same_device([queries, W, codes], ["queries", "W", "codes"])
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if queries.shape[0] == 0 or codes.shape[0] == 0:
        _check_finite(W, "W")  # no LUT pass will see W


def _check_finite(x: Tensor, name: str) -> None:
    """Raises ValueError naming the first non-finite element of float32 x. One native pass on one
    thread: a parallel torch check costs more in synchronisation than in work at these sizes."""
    if _C is not None and x.device.type == "cpu" and x.is_contiguous() and x.dtype == torch.float32:
        if _C.all_finite(x.data_ptr(), x.numel(), 1):
            return
    V.check_finite(x, name)


def _diagnose_lut_error(exc: ValueError, queries: Tensor, W: Tensor) -> ValueError:
    """Names the input behind a non-finite LUT reported by the native core."""
    if not str(exc).startswith("lut:"):
        return exc
    for x, name in ((queries, "queries"), (W, "W")):
        try:
            V.check_finite(x, name)
        except ValueError as named:
            return named
    return ValueError("the query LUTs <q, W[d, k]> overflow float32; scale queries or W down")


def _check_scale(item_scale: Optional[Tensor], N: int) -> Optional[Tensor]:
    if item_scale is None:
        return None
    V.check_float32(item_scale, "item_scale")
    if item_scale.shape != (N,):
        raise ValueError(f"item_scale must have shape [N] = [{N}], got {tuple(item_scale.shape)}")
    _check_finite(item_scale, "item_scale")
    if N and float(item_scale.min()) < 0:
        n = int(item_scale.argmin())
        raise ValueError(f"item_scale[{n}] = {float(item_scale[n])} is negative; scales must be >= 0")
    return item_scale.contiguous()


def exclusion_csr(exclude: Exclude, B: int, N: int) -> Optional[Tuple[Tensor, Tensor]]:
    """Normalises `exclude` to CSR (offsets int64 [B + 1], ids int64, sorted unique per row).

    Accepts a sequence of B id collections (tensors or lists) or a CSR pair (offsets, ids)."""
    if exclude is None:
        return None
    if isinstance(exclude, tuple) and len(exclude) == 2 and all(isinstance(t, Tensor) for t in exclude):
        offsets, ids = exclude
        V.check_ndim(offsets, 1, "exclude offsets", "[B + 1]")
        if offsets.shape[0] != B + 1:
            raise ValueError(f"exclude offsets must have B + 1 = {B + 1} entries, got {offsets.shape[0]}")
        offsets = offsets.to("cpu", torch.int64)  # exclusions are organised on the host
        if B and (int(offsets[0]) != 0 or bool((offsets[1:] < offsets[:-1]).any()) or int(offsets[-1]) != ids.numel()):
            raise ValueError("exclude offsets must start at 0, be non-decreasing and end at len(ids)")
        rows = torch.repeat_interleave(torch.arange(B), offsets.diff()) if B else torch.zeros(0, dtype=torch.int64)
        ids = ids.reshape(-1).to("cpu", torch.int64)
    else:
        if len(exclude) != B:
            raise ValueError(f"exclude must hold one id collection per query (B = {B}), got {len(exclude)}")
        parts = [torch.as_tensor(e, dtype=torch.int64).reshape(-1).cpu() for e in exclude]
        ids = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64)
        rows = torch.repeat_interleave(torch.arange(B), torch.tensor([p.numel() for p in parts], dtype=torch.int64))
    if ids.numel():
        bad = (ids < 0) | (ids >= N)
        if bool(bad.any()):
            j = int(bad.nonzero()[0])
            raise ValueError(f"exclude: query {int(rows[j])} lists item id {int(ids[j])} outside [0, N={N})")
    key = torch.unique(rows * max(N, 1) + ids)  # sorted: by row, then id; repeats removed
    counts = torch.bincount(key // max(N, 1), minlength=B)
    offsets = torch.zeros(B + 1, dtype=torch.int64)
    offsets[1:] = counts.cumsum(0)
    return offsets, (key % max(N, 1)).contiguous()


# ----------------------------------------------------------------------------- building blocks


def query_luts(queries: Tensor, W: Tensor, metric: str = "ip") -> Tensor:
    """float32 [B, D, K] LUTs (queries normalised first for metric="cosine"): one GEMM."""
    D, K, H = W.shape
    q = torch.nn.functional.normalize(queries, dim=1) if metric == "cosine" else queries
    return torch.matmul(q, W.reshape(D * K, H).t()).reshape(q.shape[0], D, K)


def item_scales(W: Tensor, codes: Tensor) -> Tensor:
    """float32 [N] 1 / ||item_n|| (0 for an all-zero item), item_n = code bag of n.

    On the CPU with the native core the norms come straight from the codes (``code_bag_norms``:
    no item rows at all); elsewhere in chunks of at most _SCALE_CHUNK x H floats of items."""
    N = codes.shape[0]
    if _C is not None and codes.device.type == "cpu" and W.device.type == "cpu" and N > 0:
        norms = native_bag_norms(W, codes)
        return torch.where(norms > 0, 1.0 / norms, torch.zeros_like(norms))
    out = torch.empty(N, dtype=torch.float32, device=codes.device)
    with torch.no_grad():
        for s in range(0, N, _SCALE_CHUNK):
            norms = code_bag(W, codes[s : s + _SCALE_CHUNK]).norm(dim=1)
            out[s : s + _SCALE_CHUNK] = torch.where(norms > 0, 1.0 / norms, torch.zeros_like(norms))
    return out


def _resolve_mode(mode: str, K: int, D: int, N: int) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    fits = K <= 256 and D * 127 < 65536
    if mode.startswith("quantized") and not fits:
        raise ValueError(f"mode={mode!r} needs K <= 256 and D <= 516 (got K={K}, D={D})")
    if mode == "auto" and N <= D * K:
        # Fewer items than LUT entries: the [N, H] item matrix is smaller than the LUTs
        # [B, D*K], so one GEMM against the items beats building the LUTs (e.g. full-ranking
        # evaluation over a few thousand real items).
        return "dense"
    if mode == "auto":
        # The uint8 scans beat the float scan at every SIMD level and batch size (B = 256,
        # N = 1e6: ~10x on AVX2, ~14x with AVX-512 VBMI, benchmarks/RESULTS.md); the float scan
        # remains for K > 256 or D > 516, which the uint8 tables cannot hold.
        return "quantized" if fits else "exact"
    return mode


def quantized_scan(B: int, N: int) -> str:
    """Which scan ``mode="quantized"`` runs on the CPU for B queries over N items at the active
    SIMD level: "blocks" (AVX-512 VBMI byte permutes over 64 items per query), "queries"
    (one vector load per item serves 16-64 queries), or "reference" without the native core."""
    return "reference" if _C is None else _C.quantized_scan(B, N)


# ----------------------------------------------------------------------------- public API


def score_topk(
    queries: Tensor,
    W: Tensor,
    codes: Tensor,
    k: int,
    *,
    item_scale: Optional[Tensor] = None,
    exclude: Exclude = None,
    metric: str = "ip",
    mode: str = "auto",
) -> Tuple[Tensor, Tensor]:
    """Top-k items per query by ADC score, without materialising the B x N score matrix.

    Example:
        >>> import torch, vqrec_fast
        >>> W = torch.randn(32, 256, 300)
        >>> codes = torch.randint(0, 256, (100_000, 32), dtype=torch.uint8)
        >>> scores, ids = vqrec_fast.score_topk(torch.randn(8, 300), W, codes, 10, metric="cosine")
        >>> ids.shape
        torch.Size([8, 10])

    Args:
        queries: float32 [B, H].
        W: float32 [D, K, H] codebooks.
        codes: integer [N, D] in [0, K) (uint8 preferred); item id = row index.
        k: >= 1; k > N returns N columns.
        item_scale: float32 [N], finite, >= 0; multiplies each item's score. For
            metric="cosine" it defaults to 1 / ||item_n|| (pass precomputed scales to save the
            O(N * D * H) norm computation, as ``CodeIndex`` does).
        exclude: per-query item ids never to return: a sequence of B id collections, or a CSR
            pair (offsets int64 [B + 1], ids int64).
        metric: "ip" or "cosine" (queries normalised, items scaled by 1 / norm).
        mode: "auto" | "exact" (float LUT scan) | "quantized" (uint8 LUT scan, its candidates
            scored exactly) | "dense" (GEMM against the code-bag items, chunked; the small-N
            choice of "auto").
            On the CPU "quantized" runs whichever of its two scans is faster for the SIMD
            level, B and N (``quantized_scan(B, N)`` says which): the block scan (AVX-512 VBMI
            byte permutes look 64 items up in one query's table) or the query-major scan (one
            vector load reads an item's entry for 16-64 queries); "quantized_blocks" /
            "quantized_queries" force one (benchmarks, tests; CUDA tensors take the GPU scan
            either way). Every mode returns the same exact scores.
    Returns:
        (scores float32 [B, min(k, N)], ids int64 [B, min(k, N)]), best first; ties may be
        ordered differently from torch.topk. Rows with fewer admissible items end in
        score -inf, id -1.
    """
    _check_inputs(queries, W, codes, metric)
    _check_k(k)
    item_scale = _check_scale(item_scale, codes.shape[0])
    return topk_checked(queries, W, codes, k, item_scale, exclude, metric, mode)


def topk_checked(
    queries: Tensor,
    W: Tensor,
    codes: Tensor,
    k: int,
    item_scale: Optional[Tensor],
    exclude: Exclude,
    metric: str,
    mode: str = "auto",
) -> Tuple[Tensor, Tensor]:
    """``score_topk`` for arguments already validated (W, codes, item_scale, k), e.g. by CodeIndex;
    queries and exclude are checked here."""
    B, N = queries.shape[0], codes.shape[0]
    D, K, H = W.shape
    _check_queries(queries, H)
    csr = exclusion_csr(exclude, B, N)
    run = _resolve_mode(mode, K, D, N)
    kk = min(k, N)
    if B == 0 or N == 0:
        dev = queries.device
        return torch.empty(B, kk, dtype=torch.float32, device=dev), torch.empty(B, kk, dtype=torch.int64, device=dev)
    if queries.device.type == "cuda":
        return _topk_cuda_device(queries, W, codes, kk, item_scale, csr, metric, mode)
    if _C is None or queries.device.type != "cpu":
        V.check_finite(queries, "queries")
        V.check_finite(W, "W")
        rows = None if csr is None else [csr[1][csr[0][b] : csr[0][b + 1]] for b in range(B)]
        s, i = ref.score_topk_ref(queries, W, codes, kk, item_scale, rows, metric)
        return s.float(), i
    if run == "dense":
        return _topk_dense(queries, W, codes, kk, item_scale, csr, metric)
    if metric == "cosine" and item_scale is None:
        item_scale = item_scales(W, codes)
    if run.startswith("quantized"):
        c, ct = codes.to(torch.uint8).contiguous(), "uint8"
    else:
        c, ct = V.native_code_tensor(codes)
    Wc = W.contiguous()
    out_s = torch.empty(B, kk, dtype=torch.float32)
    out_i = torch.empty(B, kk, dtype=torch.int64)
    for b0 in range(0, B, _QUERY_CHUNK):  # LUT memory stays bounded for any B
        b1 = min(B, b0 + _QUERY_CHUNK)
        with torch.no_grad():
            lut = query_luts(queries[b0:b1], Wc, metric).contiguous()
        if csr is None:
            off = ids = None
        else:
            lo, hi = int(csr[0][b0]), int(csr[0][b1])
            off, ids = (csr[0][b0 : b1 + 1] - lo).contiguous(), csr[1][lo:hi].contiguous()
        try:
            _C.score_topk(
                lut.data_ptr(), b1 - b0, D, K, c.data_ptr(), ct, N,
                0 if item_scale is None else item_scale.data_ptr(),
                0 if off is None else off.data_ptr(), 0 if ids is None else ids.data_ptr(),
                kk, _SCAN_CODES[run], out_s[b0:b1].data_ptr(), out_i[b0:b1].data_ptr(), num_threads(),
            )
        except ValueError as exc:
            raise _diagnose_lut_error(exc, queries, W) from None
    return out_s, out_i


def _topk_cuda_device(
    queries: Tensor, W: Tensor, codes: Tensor, kk: int, item_scale: Optional[Tensor], csr, metric: str, mode: str
) -> Tuple[Tensor, Tensor]:
    """CUDA tensors (vqrec_fast/ops/score_topk_gpu.py): with the "cuda" backend the exact uint8
    scans where they apply (D in {8, 16, 32}, k + exclusions <= 64; rows they cannot answer go
    to the dense strategy), else the selected backend's ADC scan + exact re-rank, or the chunked
    dense strategy for small catalogues, long candidate lists, K > 256 or the "reference"
    backend. Same scores as the CPU paths (exact float32 ADC scores)."""
    from .. import cuda as vcuda
    from .score_topk_gpu import scan_for_backend, topk_gpu, topk_gpu_quantized

    V.check_finite(queries, "queries")
    V.check_finite(W, "W")
    D, K, _ = W.shape
    N = codes.shape[0]
    scan = scan_for_backend(vcuda.gpu_backend())
    if scan is not None and K <= 256 and _resolve_mode(mode, K, D, N) != "dense":
        if metric == "cosine" and item_scale is None:
            item_scale = item_scales(W, codes)
        W, codes = W.contiguous(), codes.to(torch.uint8).contiguous()
        if vcuda.gpu_backend() == "cuda":
            got = topk_gpu_quantized(queries, W, codes, kk, item_scale, csr, metric, query_luts)
            if got is not None:
                return _refill_rows(got, queries, W, codes, kk, item_scale, csr, metric)
        got = topk_gpu(queries, W, codes, kk, item_scale, csr, metric, scan, query_luts)
        if got is not None:
            return got
    return _topk_dense(queries, W, codes, kk, item_scale, csr, metric)


def _refill_rows(got, queries: Tensor, W: Tensor, codes: Tensor, kk: int, item_scale, csr, metric: str):
    """(scores, ids, fallback) from the quantized GPU scan -> (scores, ids) with the rows it
    could not answer (lists overflowed by near-ties) recomputed by the dense strategy."""
    top, ids, fallback = got
    rows = fallback.nonzero().flatten().cpu()
    if rows.numel():
        sub_csr = None
        if csr is not None:
            parts = [csr[1][int(csr[0][r]) : int(csr[0][r + 1])] for r in rows.tolist()]
            sub_csr = exclusion_csr(parts, rows.numel(), codes.shape[0])
        dev_rows = rows.to(queries.device)
        s_sub, i_sub = _topk_dense(queries[dev_rows], W, codes, kk, item_scale, sub_csr, metric)
        top[dev_rows], ids[dev_rows] = s_sub, i_sub
    return top, ids


def _topk_dense(
    queries: Tensor, W: Tensor, codes: Tensor, kk: int, item_scale: Optional[Tensor], csr, metric: str
) -> Tuple[Tensor, Tensor]:
    """Small-N strategy: items [N, H] by the native code bag, then one GEMM and top-k per chunk
    of queries sized so that at most _DENSE_SCORES scores exist at once."""
    _check_finite(queries, "queries")
    _check_finite(W, "W")
    B, N = queries.shape[0], codes.shape[0]
    with torch.no_grad():
        items = code_bag(W, codes)
        if metric == "cosine":
            queries = torch.nn.functional.normalize(queries, dim=1)
            if item_scale is None:  # zero items keep score 0, as with item_scale 0
                items = torch.nn.functional.normalize(items, dim=1)
        if item_scale is not None:
            items = items * item_scale.unsqueeze(1)
        items_t = items.t()
        rows_per_chunk = max(1, _DENSE_SCORES // N)
        parts_s, parts_i = [], []
        for b0 in range(0, B, rows_per_chunk):
            b1 = min(B, b0 + rows_per_chunk)
            scores = torch.matmul(queries[b0:b1], items_t)
            if csr is not None:
                lo, hi = int(csr[0][b0]), int(csr[0][b1])
                rows = torch.repeat_interleave(torch.arange(b1 - b0), csr[0][b0 : b1 + 1].diff())
                scores[rows.to(scores.device), csr[1][lo:hi].to(scores.device)] = float("-inf")
            s, i = scores.topk(kk, dim=1)
            if csr is not None:  # rows with fewer than kk admissible items
                i = i.masked_fill_(torch.isneginf(s), -1)
            parts_s.append(s)
            parts_i.append(i)
    if len(parts_s) == 1:
        return parts_s[0], parts_i[0]
    return torch.cat(parts_s), torch.cat(parts_i)


def score_all(
    queries: Tensor, W: Tensor, codes: Tensor, *, item_scale: Optional[Tensor] = None, metric: str = "ip"
) -> Tensor:
    """Dense float32 [B, N] scores (same definition as ``score_topk``); for small N / analysis."""
    _check_inputs(queries, W, codes, metric)
    B, N = queries.shape[0], codes.shape[0]
    D, K, _ = W.shape
    item_scale = _check_scale(item_scale, N)
    if B == 0 or N == 0:
        return torch.empty(B, N, dtype=torch.float32)
    if metric == "cosine" and item_scale is None:
        item_scale = item_scales(W, codes)
    if _C is None or queries.device.type != "cpu":
        V.check_finite(queries, "queries")
        V.check_finite(W, "W")
        return ref.score_all_ref(queries, W, codes, item_scale, metric).float()
    with torch.no_grad():
        lut = query_luts(queries, W.contiguous(), metric).contiguous()
    c, ct = V.native_code_tensor(codes)
    out = torch.empty(B, N, dtype=torch.float32)
    try:
        _C.score_all(
            lut.data_ptr(), B, D, K, c.data_ptr(), ct, N, 0 if item_scale is None else item_scale.data_ptr(),
            out.data_ptr(), num_threads(),
        )
    except ValueError as exc:
        raise _diagnose_lut_error(exc, queries, W) from None
    return out
