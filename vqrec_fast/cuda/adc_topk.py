"""Launcher of the CUDA ADC top-k kernel (csrc/cuda/adc_topk.cu)."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from .. import _adc
from . import cuda_module
from ._launch import stream_of

QUERIES_PER_BLOCK = 8  # kQB in adc_topk.cu: LUTs of 8 queries are interleaved


def splits_for(N: int, groups: int, device: torch.device) -> int:
    """Item splits per query group: about 8 waves of one-block-per-SM work, >= 256 items each."""
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min((N + 255) // 256, -(-8 * sms // groups)))


def interleave_lut(lut: Tensor, group: int = QUERIES_PER_BLOCK, dtype: torch.dtype = torch.float16) -> Tensor:
    """fp32 [B, D, K] -> dtype [G, D, K, group] (queries padded with zeros to a multiple of group),
    so that one 16-byte load in the kernels reads entry (d, k) of every query of a group."""
    B, D, K = lut.shape
    G = -(-B // group)
    pad = G * group - B
    if pad:
        lut = torch.cat([lut, lut.new_zeros(pad, D, K)])
    return lut.reshape(G, group, D, K).permute(0, 2, 3, 1).to(dtype).contiguous()


def score_topk_cuda(
    queries: Tensor,
    W: Tensor,
    codes: Tensor,
    k: int,
    item_scale: Optional[Tensor] = None,
    metric: str = "ip",
    splits: Optional[int] = None,
    half_sums: bool = False,
) -> Tuple[Tensor, Tensor]:
    """Best k items per query by ADC score, on CUDA.

    Args:
        queries: float [B, H] (CUDA). W: float32 [D, K, H]. codes: uint8 [N, D].
        k: 1 <= k <= min(N, 256). item_scale: optional float [N] multiplying each item's score.
        metric: "ip" or "cosine" (see vqrec_fast._adc). splits: item splits per query group
            (default: sized to the device).
        half_sums: sum each 16 sub-spaces in fp16 before the fp32 accumulators (faster; the
            error grows to <= 2^-7 of sum_d |LUT| per item), for candidate generation that is
            re-scored exactly afterwards, as ``vqrec_fast.score_topk`` does.
    Returns:
        (scores float32 [B, k], ids int64 [B, k]), best first. LUT entries are fp16 and sums
        fp32, so scores match the fp32 reference to ~1e-3 relative. The LUT is scaled by a power
        of two before the fp16 conversion (and the scores back), so no query overflows fp16.
    """
    _adc.check_args(queries, W, codes, k, item_scale, metric)
    if queries.device.type != "cuda":
        raise ValueError(f"score_topk_cuda needs CUDA tensors, got queries on {queries.device}")
    mod = cuda_module()
    B, N = queries.shape[0], codes.shape[0]
    D, K, _ = W.shape
    if B == 0:
        return queries.new_zeros(0, k, dtype=torch.float32), torch.zeros(0, k, dtype=torch.int64, device=queries.device)
    lut32, scale = _adc.prepare(queries, W, codes, item_scale, metric)
    pow2 = fp16_range_scale(lut32)
    lut = interleave_lut(lut32 * pow2)
    G = lut.shape[0]
    S = splits or splits_for(N, G, queries.device)
    if mod.adc_topk_smem_bytes(D, K) == 0:
        raise ValueError(f"D*K = {D * K} LUT entries do not fit in shared memory on {queries.device}")
    codes = codes.contiguous()
    with torch.cuda.device(queries.device):  # the kernel variant (and its output splits) fit the device
        S_out = mod.adc_topk_out_splits(D, K, k, S)
    out_s = torch.empty(G * QUERIES_PER_BLOCK, S_out, k, dtype=torch.float32, device=queries.device)
    out_i = torch.empty(G * QUERIES_PER_BLOCK, S_out, k, dtype=torch.int32, device=queries.device)
    with torch.cuda.device(queries.device):
        mod.adc_topk(
            lut.data_ptr(), G, D, K, codes.data_ptr(), N, 0 if scale is None else scale.data_ptr(), k, S,
            out_s.data_ptr(), out_i.data_ptr(), bool(half_sums), stream_of(queries),
        )
    top, ids = _adc.merge_splits(out_s, out_i, B, k)
    return top / pow2, ids  # exact: pow2 is a power of two


def fp16_range_scale(lut: Tensor) -> float:
    """Power of two c with max |c * LUT| in (2^8, 2^9]: any sum of D <= 64 entries then stays
    far inside fp16's range (65504), and entries keep fp16's relative precision instead of
    falling into subnormals. One host sync."""
    m = float(lut.abs().max()) if lut.numel() else 0.0
    if not m > 0 or not math.isfinite(m):
        return 1.0
    return 2.0 ** (9 - math.ceil(math.log2(m)))


__all__ = ["score_topk_cuda", "interleave_lut"]
