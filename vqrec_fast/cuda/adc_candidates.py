"""Host side of the quantized CUDA ADC scans (csrc/cuda/adc_candidates.cu).

Both kernels score items against 16 queries at a time from uint8 look-up tables.
``candidate_ids`` runs the list kernel: per query, every item whose estimate is within a
rigorous window of the kk-th best estimate. ``threshold_ids`` runs the threshold kernel: every
item whose estimate can reach a given lower bound of the kk-th best exact score (the second
pass of a two-pass top-k, see vqrec_fast/ops/score_topk_gpu.py). ``quantize_luts`` builds the
tables (pure PyTorch, so CI tests the layout and the error bound on the CPU).

Why the bounds are rigorous: with u = round((LUT - min_d) / step) every entry is within step / 2
(plus float rounding) of its table value, so the estimate off + step * sum_d u of an item is
within ``err`` = D * step / 2 (+ rounding slack) of the exact score, and within s_max * err
once item scales s_n <= s_max multiply both. Any item that can beat the kk-th best estimate's
lower bound therefore has an estimate >= e_kk - 2 * s_max * err = e_kk - win.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from . import cuda_module
from ._launch import stream_of

QUERIES_PER_BLOCK = 16  # kQ in adc_candidates.cu: one uint8 per query in a 16-byte entry
SUPPORTED_D = (8, 16, 32)
QMAX = {8: 255, 7: 127}


class QuantizedLuts(NamedTuple):
    table: Tensor  # uint8 [G, D/8, 256, 8, 16]: entry (d, code) of query q at [d/8][code][d%8][q]
    off: Tensor  # float32 [G*16]: sum_d min_k LUT[q, d, k]
    step: Tensor  # float32 [G*16]: quantisation step
    err: Tensor  # float32 [G*16]: bound on |exact score - estimate| before item scales


def quantize_luts(lut: Tensor, bits: int = 8) -> QuantizedLuts:
    """float32 [B, D, K] LUTs (already divided by D; K <= 256; D in SUPPORTED_D) -> the kernel's
    uint8 tables and per-query constants. Padding queries (up to a multiple of 16) and codes
    (up to 256) get zero entries; padding queries are never read back."""
    if bits not in QMAX:
        raise ValueError(f"bits must be 8 or 7, got {bits!r}")
    B, D, K = lut.shape
    if D not in SUPPORTED_D or K > 256:
        raise ValueError(f"the quantized scan needs D in {SUPPORTED_D} and K <= 256, got D={D}, K={K}")
    qmax = QMAX[bits]
    G = -(-B // QUERIES_PER_BLOCK)
    Bp = G * QUERIES_PER_BLOCK
    lo = lut.amin(2)  # [B, D]
    span = (lut.amax(2) - lo).amax(1)  # [B]
    step = torch.where(span > 0, span / qmax, torch.ones_like(span))
    u = torch.round((lut - lo[:, :, None]) / step[:, None, None]).clamp_(0, qmax).to(torch.uint8)
    off = lo.sum(1)
    # Rounding to the nearest step leaves step / 2 per sub-space; the rest covers float rounding
    # of the quotient, of off, of the kernel's fma and of the exact re-score (all << 2^-17).
    mag = lut.abs().amax(2).sum(1)
    err = D * step * (0.5 + 2.0**-10) + 2.0**-17 * (off.abs() + step * (qmax * D) + mag)
    table = torch.zeros(Bp, D, 256, dtype=torch.uint8, device=lut.device)
    table[:B, :, :K] = u
    table = table.reshape(G, QUERIES_PER_BLOCK, D // 8, 8, 256).permute(0, 2, 4, 3, 1).contiguous()

    def padded(x: Tensor, fill: float) -> Tensor:
        out = torch.full((Bp,), fill, dtype=torch.float32, device=lut.device)
        out[:B] = x
        return out

    return QuantizedLuts(table, padded(off, 0.0), padded(step, 1.0), padded(err, 0.0))


def table_sums(table: Tensor, codes: Tensor, B: int) -> Tensor:
    """int64 [B, N]: sum_d of each query's uint8 entries, read through the kernel's byte-address
    formula (a reference for tests; small inputs only)."""
    A = table.shape[1]
    D = 8 * A
    flat = table.reshape(table.shape[0], -1).to(torch.int64)
    d = torch.arange(D, device=codes.device)
    # byte offset of (d, code) in a group's table: (d/8) * 32768 + code * 128 + (d%8) * 16, + q
    addr = (d // 8) * 32768 + codes.to(torch.int64) * 128 + (d % 8) * 16  # [N, D]
    q = torch.arange(B, device=codes.device)
    idx = (addr[None] + (q % QUERIES_PER_BLOCK)[:, None, None]).reshape(B, -1)
    return torch.gather(flat[q // QUERIES_PER_BLOCK], 1, idx).reshape(B, *addr.shape).sum(-1)


def splits_for(N: int, groups: int, device: torch.device) -> int:
    """Item splits per query group: one wave of one block per SM, >= 8192 items per split."""
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(65535, -(-N // 8192), sms // groups if groups < sms else 1))


def supported(D: int, K: int, kk: int, codes: Tensor) -> bool:
    """Whether the quantized kernel can serve this call (else the caller uses another scan)."""
    if D not in SUPPORTED_D or K > 256 or codes.dtype != torch.uint8 or codes.data_ptr() % 8:
        return False
    mod = cuda_module()
    return 1 <= kk <= mod.adc_candidates_max_kk() and mod.adc_candidates_smem_bytes(D) > 0


def scale_max(item_scale: Optional[Tensor]) -> float:
    """max item scale (1 without scales, and 1 when all are 0: every score is then 0). One sync."""
    s_max = float(item_scale.max()) if item_scale is not None and item_scale.numel() else 1.0
    return s_max if s_max > 0 else 1.0


def candidate_ids(
    lut: Tensor,
    codes: Tensor,
    kk: int,
    item_scale: Optional[Tensor],
    bits: int = 8,
    splits: Optional[int] = None,
    items: int = 2,
    tables: Optional[QuantizedLuts] = None,
    s_max: Optional[float] = None,
) -> Tuple[Tensor, Tensor]:
    """Candidates of an exact top-kk per query (one pass of the list kernel).

    Args:
        lut: float32 [B, D, K] LUTs already divided by D (CUDA). codes: uint8 [N, D], contiguous,
            8-byte aligned. kk: 1 <= kk <= min(N, 64). item_scale: float32 [N] >= 0 or None.
        bits: 8 (default) or 7 (D = 32 only; wider windows). splits: item splits per query group
            (default: one wave of blocks). items: items per lane per step at D = 32 (1, 2, 4).
        tables, s_max: ``quantize_luts(lut, bits)`` and ``scale_max(item_scale)`` when the
            caller has them already.
    Returns:
        (ids int64 [B, M], fallback bool [B]). Row b holds every item that can be among query
        b's best kk by exact score (padded with -1), unless fallback[b]: then its lists
        overflowed (many near-ties) and the row must be answered another way.
    """
    mod = cuda_module()
    B, D, _ = lut.shape
    N = codes.shape[0]
    qt = tables if tables is not None else quantize_luts(lut, bits)
    G = qt.table.shape[0]
    s_max = scale_max(item_scale) if s_max is None else s_max
    win = (2.0 * (1.0 + 2.0**-20) * s_max) * qt.err
    S = splits or splits_for(N, G, lut.device)
    C = mod.adc_candidates_slots()
    splits_out = S * mod.adc_candidates_warps()
    Bp = G * QUERIES_PER_BLOCK
    out_est = torch.empty(Bp, splits_out, C, dtype=torch.float32, device=lut.device)
    out_ids = torch.empty(Bp, splits_out, C, dtype=torch.int32, device=lut.device)
    overflow = torch.zeros(Bp, dtype=torch.int32, device=lut.device)
    scale = None if item_scale is None else item_scale.to(torch.float32).contiguous()
    with torch.cuda.device(lut.device):
        mod.adc_candidates(
            qt.table.data_ptr(), G, D, codes.data_ptr(), N, 0 if scale is None else scale.data_ptr(), 1.0 / s_max,
            qt.off.data_ptr(), qt.step.data_ptr(), win.data_ptr(), kk, S, bits, items,
            out_est.data_ptr(), out_ids.data_ptr(), overflow.data_ptr(), stream_of(lut),
        )
    est = out_est.reshape(Bp, -1)[:B]
    ids = out_ids.reshape(Bp, -1)[:B]
    bound = est.topk(kk, dim=1).values[:, -1:] - win[:B, None]  # e_kk - win
    member = est >= bound
    M = max(1, int(member.sum(1).max()))  # one host sync
    top, pos = est.topk(M, dim=1)
    cand = ids.gather(1, pos).to(torch.int64)
    cand = cand.masked_fill(top < bound, -1)
    return cand, overflow[:B].bool()


def threshold_ids(
    tables: QuantizedLuts,
    B: int,
    codes: Tensor,
    n0: int,
    item_scale: Optional[Tensor],
    s_max: float,
    tau: Tensor,
    cap: int = 8192,
) -> Tuple[Tensor, Tensor]:
    """Second pass of the two-pass top-k: items n0.. of codes whose estimate can reach tau.

    tables: ``quantize_luts(lut, 8)``. tau: float32 [B], a lower bound of each query's exact
    kk-th best score (-inf allowed). Returns (ids int64 [B, M] padded with -1, overflow bool
    [B]): every item n >= n0 with exact score >= tau[b] is in row b unless overflow[b] (more
    than cap such items)."""
    mod = cuda_module()
    D = 8 * tables.table.shape[1]
    G = tables.table.shape[0]
    Bp = G * QUERIES_PER_BLOCK
    N = codes.shape[0]
    dev = codes.device
    thr = torch.full((Bp,), float("inf"), dtype=torch.float32, device=dev)  # padding queries take nothing
    thr[:B] = tau - (1.0 + 2.0**-20) * s_max * tables.err[:B]
    out = torch.empty(Bp, cap, dtype=torch.int32, device=dev)
    count = torch.zeros(Bp, dtype=torch.int32, device=dev)
    sms = torch.cuda.get_device_properties(dev).multi_processor_count
    S = max(1, min(65535, -(-(N - n0) // 8192), sms // G if G < sms else 1))
    scale = None if item_scale is None else item_scale.to(torch.float32).contiguous()
    with torch.cuda.device(dev):
        mod.adc_threshold_scan(
            tables.table.data_ptr(), G, D, codes.data_ptr(), n0, N, 0 if scale is None else scale.data_ptr(),
            1.0 / s_max, tables.off.data_ptr(), tables.step.data_ptr(), thr.data_ptr(), S, cap,
            out.data_ptr(), count.data_ptr(), stream_of(codes),
        )
    count = count[:B].to(torch.int64)
    M = max(1, min(cap, int(count.max())))  # one host sync
    ids = out[:B, :M].to(torch.int64)
    ids = ids.masked_fill(torch.arange(M, device=dev)[None] >= count[:, None], -1)
    return ids, count > cap


# ----------------------------------------------------------------------------- references
# Plain PyTorch versions of the two kernels' contracts (any device, small inputs): the GPU tests
# compare the kernels with them, and CI runs the host logic of the two-pass top-k through them.


def estimates(tables: QuantizedLuts, B: int, codes: Tensor, item_scale: Optional[Tensor]) -> Tensor:
    """float32 [B, N]: the kernels' estimates s_n * (off + step * U_n)."""
    U = table_sums(tables.table, codes, B).to(torch.float32)
    est = tables.off[:B, None] + tables.step[:B, None] * U
    return est if item_scale is None else est * item_scale.to(torch.float32)[None]


def candidate_ids_reference(
    lut: Tensor, codes: Tensor, kk: int, item_scale: Optional[Tensor], bits: int = 8,
    tables: Optional[QuantizedLuts] = None, s_max: Optional[float] = None, **_: object,
) -> Tuple[Tensor, Tensor]:
    """``candidate_ids``' contract: every item with estimate >= (kk-th best estimate) - win,
    best estimate first, padded with -1; no overflow."""
    B = lut.shape[0]
    qt = tables if tables is not None else quantize_luts(lut, bits)
    s_max = scale_max(item_scale) if s_max is None else s_max
    win = (2.0 * (1.0 + 2.0**-20) * s_max) * qt.err[:B]
    est = estimates(qt, B, codes, item_scale)
    bound = est.topk(kk, dim=1).values[:, -1:] - win[:, None]
    M = max(1, int((est >= bound).sum(1).max()))
    top, pos = est.topk(M, dim=1)
    return pos.masked_fill(top < bound, -1), torch.zeros(B, dtype=torch.bool, device=lut.device)


def threshold_ids_reference(
    tables: QuantizedLuts, B: int, codes: Tensor, n0: int, item_scale: Optional[Tensor], s_max: float,
    tau: Tensor, cap: int = 8192,
) -> Tuple[Tensor, Tensor]:
    """``threshold_ids``' contract: items n >= n0 with estimate >= tau - err (any order, padded
    with -1); overflow where more than cap."""
    thr = tau - (1.0 + 2.0**-20) * s_max * tables.err[:B]
    est = estimates(tables, B, codes, item_scale)
    hit = est >= thr[:, None]
    hit[:, :n0] = False
    count = hit.sum(1)
    M = max(1, min(cap, int(count.max())))
    top, pos = hit.to(torch.float32).topk(M, dim=1)
    return pos.masked_fill(top == 0, -1), count > cap


__all__ = ["quantize_luts", "table_sums", "candidate_ids", "threshold_ids", "scale_max", "supported",
           "QuantizedLuts", "estimates", "candidate_ids_reference", "threshold_ids_reference"]
