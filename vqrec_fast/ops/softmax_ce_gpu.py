"""The fused code-composed cross-entropy for GPU tensors (``vqrec_fast::code_softmax_ce`` kernels
registered for CUDA by ``vqrec_fast.cuda``). Device-agnostic PyTorch around two GPU pieces:

  forward   lse_b = logsumexp_n(<q_hat_b, e_hat_n> / t) by a pluggable kernel (``lse_fn``): the
            CUDA ADC scan over fp32 LUTs (no item matrix, no logits) or Triton's tiled
            (max, sum-exp) reduction over item chunks; the target logit from the B target items.
  backward  recomputes the logits one item chunk at a time (code bag of the chunk, one GEMM),
            p = exp(logits - lse) * g / t, then d q_hat += p E_hat and dW += code-bag backward
            of d E (through the item normalisation); tensor-core GEMMs do the heavy work.

Memory: the [B, N] logits never exist; at most ``chunk`` items at once (chunk chosen so that
the [B, chunk] block stays under ``_BLOCK_BYTES``), plus the op's LUT output [B, D*K].
Shapes and semantics are those of ``vqrec_fast.ops.softmax_ce`` (target -1 = ignored).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from .code_bag import _code_bag, _code_bag_backward
from .softmax_ce import _EPS, _extra_logits, _normalize_backward, _normalized

# lse_fn(q_hat, W, codes, inv_t, normalize, inv_norms): inv_norms float32 [N] = 1 / max(|e_n|, eps)
# when normalize (computed once by the forward; a kernel may use or ignore it), else None.
LseFn = Callable[[Tensor, Tensor, Tensor, float, bool, Optional[Tensor]], Tensor]
_BLOCK_BYTES = 256 << 20  # the [B, chunk] probability block of the backward


def chunk_for(B: int, N: int) -> int:
    """Items per chunk: the [B, chunk] fp32 block stays under _BLOCK_BYTES (but >= 1024 items,
    and never more than N)."""
    return max(1, min(N, max(1024, _BLOCK_BYTES // (4 * max(B, 1)))))


def _items(W: Tensor, codes: Tensor, normalize: bool):
    e = _code_bag(W, codes)
    return e, _normalized(e, normalize)


def lse_dense(q_hat: Tensor, W: Tensor, codes: Tensor, inv_t: float, normalize: bool, inv_norms=None) -> Tensor:
    """Reference lse by item chunks (any device): running logsumexp of one GEMM per chunk."""
    B, N = q_hat.shape[0], codes.shape[0]
    out = torch.full((B,), float("-inf"), dtype=torch.float32, device=q_hat.device)
    step = chunk_for(B, N)
    for a in range(0, N, step):
        e_hat = _items(W, codes[a : a + step], normalize)[1]
        out = torch.logaddexp(out, torch.logsumexp(q_hat @ e_hat.T * inv_t, dim=1))
    return out


def item_alpha(W: Tensor, codes: Tensor, temperature: float, normalize: bool) -> Tensor:
    """alpha_n = 1 / (t D max(|e_n|, eps)) [N] (an output of the op; the CPU backward uses it)."""
    D, N = W.shape[0], codes.shape[0]
    if not normalize:
        return W.new_full((N,), 1.0 / (temperature * D))
    step = 1 << 16
    norms = torch.cat([_code_bag(W, codes[a : a + step]).norm(dim=1) for a in range(0, N, step)])
    return 1.0 / (temperature * D * norms.clamp_min(_EPS))


def ce_forward(seq_out, W, codes, target, extra_codes, temperature: float, normalize: bool, lse_fn: LseFn):
    """(rows [B], lse [B], alpha [N], lut [B, D*K]) as the op's forward returns them."""
    D, K, H = W.shape
    W = W.contiguous()
    inv_t = 1.0 / temperature
    q_hat = _normalized(seq_out, normalize).contiguous()
    alpha = item_alpha(W, codes, temperature, normalize)
    inv_norms = alpha * (temperature * D) if normalize else None
    lse = lse_fn(q_hat, W, codes, inv_t, normalize, inv_norms)
    if extra_codes is not None:
        lse = torch.logaddexp(lse, _extra_logits(q_hat, W, extra_codes, temperature, normalize, _code_bag)[2])
    safe = target.clamp_min(0)
    e_t_hat = _items(W, codes[safe], normalize)[1]
    tgt_logit = (q_hat * e_t_hat).sum(-1) * inv_t
    rows = torch.where(target >= 0, lse - tgt_logit, torch.zeros_like(lse))
    lut = torch.mm(q_hat, W.reshape(D * K, H).T)
    return rows, lse, alpha, lut


def _push_to_items(d_e_hat: Tensor, e: Tensor, e_hat: Tensor, codes: Tensor, normalize: bool, D: int, K: int):
    """dW contribution of gradients on normalised items (rows of codes)."""
    d_e = _normalize_backward(e, e_hat, d_e_hat) if normalize else d_e_hat
    return _code_bag_backward(d_e.contiguous(), codes, D, K)


def ce_backward(grad_rows, seq_out, W, codes, target, extra_codes, lse, temperature: float, normalize: bool,
                chunk: Optional[int] = None, probs: Optional[Callable[[int, int, Tensor], Tensor]] = None):
    """(d seq_out [B, H], dW [D, K, H]) for grad_rows [B] (ignored rows get no gradient).

    probs(a, b, wgt): optional kernel returning exp(logits[:, a:b] - lse[:, None]) * wgt[:, None]
    ([B, b - a]) for items a..b-1 (the CUDA ADC scan); by default one GEMM per chunk."""
    D, K, H = W.shape
    B, N = seq_out.shape[0], codes.shape[0]
    W = W.contiguous()
    inv_t = 1.0 / temperature
    g = torch.where(target >= 0, grad_rows, torch.zeros_like(grad_rows)).to(torch.float32)
    q_hat = _normalized(seq_out, normalize).contiguous()
    d_q_hat = torch.zeros_like(q_hat)
    dW = torch.zeros_like(W)
    step = chunk or chunk_for(B, N)
    neg_lse = -lse[:, None]
    wgt = (g * inv_t).contiguous()
    scale = wgt[:, None]
    for a in range(0, N, step):
        c = codes[a : a + step]
        e, e_hat = _items(W, c, normalize)
        if probs is not None:
            p = probs(a, a + c.shape[0], wgt)
        else:  # d loss / d <q_hat, e_hat>
            p = torch.addmm(neg_lse, q_hat, e_hat.T, alpha=inv_t).exp_().mul_(scale)
        d_q_hat.addmm_(p, e_hat)
        dW += _push_to_items(p.T @ q_hat, e, e_hat, c, normalize, D, K)
        del p
    # The target term: loss_b -= <q_hat_b, e_hat_target> / t.
    safe = target.clamp_min(0)
    c_t = codes[safe]
    e_t, e_t_hat = _items(W, c_t, normalize)
    d_q_hat -= scale * e_t_hat
    dW += _push_to_items(-scale * q_hat, e_t, e_t_hat, c_t, normalize, D, K)
    if extra_codes is not None:
        x, x_hat, s_x = _extra_logits(q_hat, W, extra_codes, temperature, normalize, _code_bag)
        dl_x = (g * torch.exp(s_x - lse))[:, None] * inv_t
        d_q_hat += dl_x * x_hat
        dW += _push_to_items(dl_x * q_hat, x, x_hat, extra_codes, normalize, D, K)
    d_q = _normalize_backward(seq_out, q_hat, d_q_hat) if normalize else d_q_hat
    return d_q, dW
