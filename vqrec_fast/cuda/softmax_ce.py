"""Launcher of the CUDA ADC log-sum-exp (csrc/cuda/softmax_ce.cu) used by the fused loss.

lse[b] = logsumexp_n(<q[b], item_n> / t) over all N items, with item_n = code_bag(W, codes)[n]
(L2-normalised when normalize=True). Computed from per-query fp32 LUTs by an ADC scan with an
online log-sum-exp: neither the N x H item matrix nor the B x N logits exist.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _adc
from . import cuda_module
from ._launch import stream_of
from .adc_topk import interleave_lut, splits_for

QUERIES_PER_BLOCK = 4  # kQ in softmax_ce.cu: 4 fp32 LUT entries per 16-byte load


def lse_adc_cuda(q: Tensor, W: Tensor, codes: Tensor, inv_t: float, normalize: bool, splits=None,
                 inv_norms=None) -> Tensor:
    """float32 [B] log-sum-exp of the logits (see module docstring).

    Args: q float32 [B, H] CUDA (normalised inside when normalize); W float32 [D, K, H];
    codes uint8 [N, D] (K <= 256); inv_t = 1 / temperature; splits: item splits per group;
    inv_norms: optional float32 [N] 1 / max(|e_n|, eps) already computed by the caller (saves a
    pass of code bags over all items when normalize).
    """
    if codes.dtype != torch.uint8:
        raise TypeError(f"codes must be uint8 for the CUDA ADC log-sum-exp, got {codes.dtype}")
    mod = cuda_module()
    B, N = q.shape[0], codes.shape[0]
    D, K, _ = W.shape
    if mod.softmax_ce_lse_smem_bytes(D, K) == 0:
        raise ValueError(f"D*K = {D * K} fp32 LUT entries x 4 do not fit in shared memory on {q.device}")
    if normalize and inv_norms is not None:
        lut, scale = _adc.prepare(F.normalize(q, dim=1), W.detach(), codes, inv_norms, "ip")
    else:
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


def backward_lut(lut: Tensor, D: int, K: int, inv_t: float) -> Tensor:
    """The op's saved LUT (q_hat @ W_flat^T, [B, D*K]) as the kernels' interleaved fp32
    [G, D, K, 4] table with 1/D and 1/t folded in."""
    B = lut.shape[0]
    return interleave_lut(lut.reshape(B, D, K) * (inv_t / D), QUERIES_PER_BLOCK, torch.float32)


def probs_adc_cuda(lut_il: Tensor, codes: Tensor, inv_norms, lse: Tensor, wgt: Tensor, B: int) -> Tensor:
    """float32 [B, C]: exp(logit[b, n] - lse[b]) * wgt[b] for the C items of ``codes`` (uint8
    [C, D]), logits by the ADC scan over ``lut_il`` (see backward_lut) times inv_norms [C]."""
    mod = cuda_module()
    G, D, K = lut_il.shape[0], lut_il.shape[1], lut_il.shape[2]
    C = codes.shape[0]
    out = torch.empty(B, C, dtype=torch.float32, device=codes.device)
    codes = codes.contiguous()
    scale = None if inv_norms is None else inv_norms.to(torch.float32).contiguous()
    lse, wgt = lse.to(torch.float32).contiguous(), wgt.to(torch.float32).contiguous()
    S = max(1, min(-(-C // 8192), 65535))  # ~8K items per block: the 128 KiB LUT load stays ~3%
    with torch.cuda.device(codes.device):
        mod.softmax_ce_probs(
            lut_il.data_ptr(), G, D, K, codes.data_ptr(), C, 0 if scale is None else scale.data_ptr(),
            lse.data_ptr(), wgt.data_ptr(), B, S, out.data_ptr(), stream_of(codes),
        )
    return out


# ----------------------------------------------------------------------------- op registration


def _lse_for_backend(name: str, K: int):
    """The forward log-sum-exp kernel of a GPU backend (see gpu_backend()): the CUDA ADC scan
    (K <= 256; codes as uint8), Triton's tiled reduction, or None for "reference" (the op's
    dense default kernels run)."""
    if name == "cuda" and K <= 256:
        return lambda q, W, c, inv_t, norm, inv_norms: lse_adc_cuda(
            q, W, c.to(torch.uint8), inv_t, norm, inv_norms=inv_norms)
    if name in ("cuda", "triton"):
        from .. import triton as _t

        if _t.available():
            from ..triton.softmax_ce import _lse_forward

            return lambda q, W, c, inv_t, norm, inv_norms: _lse_forward(q, W, c, inv_t, norm, 1 << 16, "ieee")
        from ..ops.softmax_ce_gpu import lse_dense

        return lse_dense
    return None


def _register() -> None:
    from ..ops import softmax_ce as ops_ce
    from ..ops import softmax_ce_gpu as gpu_ce
    from . import gpu_backend

    @ops_ce._ce_fwd.register_kernel("cuda")
    def _(seq_out, W, codes, target, extra_codes, temperature, normalize):
        lse_fn = _lse_for_backend(gpu_backend(), W.shape[1]) or gpu_ce.lse_dense
        return gpu_ce.ce_forward(seq_out, W, codes, target, extra_codes, temperature, normalize, lse_fn)

    @ops_ce._ce_bwd.register_kernel("cuda")
    def _(grad_rows, seq_out, W, codes, target, extra_codes, lse, alpha, lut, temperature, normalize):
        probs = None
        D, K = W.shape[0], W.shape[1]
        if gpu_backend() == "cuda" and K <= 256:
            # Probability blocks by the ADC scan over the saved LUT (no logits GEMM per chunk).
            lut_il = backward_lut(lut, D, K, 1.0 / temperature)
            inv_norms = alpha * (temperature * D) if normalize else None
            c8 = codes.to(torch.uint8)
            B = seq_out.shape[0]

            def probs(a: int, b: int, wgt: Tensor) -> Tensor:
                return probs_adc_cuda(lut_il, c8[a:b], None if inv_norms is None else inv_norms[a:b], lse, wgt, B)

        return gpu_ce.ce_backward(grad_rows, seq_out, W, codes, target, extra_codes, lse, temperature, normalize,
                                  probs=probs)


_register()
