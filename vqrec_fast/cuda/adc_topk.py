"""Launcher of the CUDA ADC top-k kernel (csrc/cuda/adc_topk.cu)."""
from __future__ import annotations

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
) -> Tuple[Tensor, Tensor]:
    """Best k items per query by ADC score, on CUDA.

    Args:
        queries: float [B, H] (CUDA). W: float32 [D, K, H]. codes: uint8 [N, D].
        k: 1 <= k <= min(N, 256). item_scale: optional float [N] multiplying each item's score.
        metric: "ip" or "cosine" (see vqrec_fast._adc). splits: item splits per query group
            (default: sized to the device).
    Returns:
        (scores float32 [B, k], ids int64 [B, k]), best first. LUT entries are fp16 and sums
        fp32, so scores match the fp32 reference to ~1e-3 relative.
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
    lut = interleave_lut(lut32)
    G = lut.shape[0]
    S = splits or splits_for(N, G, queries.device)
    if mod.adc_topk_smem_bytes(D, K) == 0:
        raise ValueError(f"D*K = {D * K} LUT entries do not fit in shared memory on {queries.device}")
    codes = codes.contiguous()
    out_s = torch.empty(G * QUERIES_PER_BLOCK, S, k, dtype=torch.float32, device=queries.device)
    out_i = torch.empty(G * QUERIES_PER_BLOCK, S, k, dtype=torch.int32, device=queries.device)
    with torch.cuda.device(queries.device):
        mod.adc_topk(
            lut.data_ptr(), G, D, K, codes.data_ptr(), N, 0 if scale is None else scale.data_ptr(), k, S,
            out_s.data_ptr(), out_i.data_ptr(), stream_of(queries),
        )
    return _adc.merge_splits(out_s, out_i, B, k)


__all__ = ["score_topk_cuda", "interleave_lut"]
