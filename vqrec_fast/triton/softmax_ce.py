"""Triton fused code-composed softmax cross-entropy (full softmax over every item).

loss_b = logsumexp_n(l[b, n]) - l[b, target_b] with l = normalize(seq_out) @ normalize(E).T / t and
E = code_bag(W, codes) [N, H]. Never holds the B x N logits: items are taken a chunk at a time
(E_c = code_bag of the chunk, C x H); the Triton kernel computes tl.dot tiles of logits and
reduces each (query block, item range) to a (max, sum of exp) pair, like flash-attention's
forward, and the pairs are folded into a running log-sum-exp per query. The backward
recomputes each chunk's logits (B x C at most) and pushes the softmax part of the gradient to
seq_out and, through the code bag's deterministic backward, to W; the target part is a small
ordinary autograd graph on the B target items.

Shapes: seq_out float [B, H]; W float32 [D, K, H]; codes integer [N, D]; target int64 [B] in
[0, N) or ignore_index. Returns a scalar ("mean"/"sum") or float32 [B] ("none").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from torch import Tensor

from .. import _validate as V
from ..ops.code_bag import code_bag


@triton.jit
def _partial_lse_kernel(
    Q, E, part_m, part_s, B, C, H, inv_t,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_H: tl.constexpr, TILES: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Program (i, j): queries [i*BLOCK_M, +BLOCK_M) x items [j*TILES*BLOCK_N, +TILES*BLOCK_N) of
    the chunk; writes that range's max logit and sum of exp(logit - max) to part_m/part_s [B, P]."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = rows < B
    m = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    s = tl.zeros((BLOCK_M,), dtype=tl.float32)
    first = tl.program_id(1) * TILES * BLOCK_N
    for t in range(0, TILES):
        cols = first + t * BLOCK_N + tl.arange(0, BLOCK_N)
        cmask = cols < C
        logits = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for h0 in range(0, H, BLOCK_H):
            hs = h0 + tl.arange(0, BLOCK_H)
            hmask = hs < H
            q = tl.load(Q + rows.to(tl.int64)[:, None] * H + hs[None, :], mask=rmask[:, None] & hmask[None, :], other=0.0)
            e = tl.load(E + cols.to(tl.int64)[:, None] * H + hs[None, :], mask=cmask[:, None] & hmask[None, :], other=0.0)
            logits += tl.dot(q, tl.trans(e), input_precision=PRECISION)
        logits = tl.where(cmask[None, :], logits * inv_t, float("-inf"))
        m_new = tl.maximum(m, tl.max(logits, axis=1))
        # A tile past the chunk's end leaves m at -inf: keep s at 0 instead of exp(nan).
        alpha = tl.where(m_new == float("-inf"), 0.0, tl.exp(m - m_new))
        p = tl.where(cmask[None, :], tl.exp(logits - m_new[:, None]), 0.0)
        s = s * alpha + tl.sum(p, axis=1)
        m = m_new
    P = tl.num_programs(1)
    tl.store(part_m + rows.to(tl.int64) * P + tl.program_id(1), m, mask=rmask)
    tl.store(part_s + rows.to(tl.int64) * P + tl.program_id(1), s, mask=rmask)


def _items(W: Tensor, codes: Tensor, normalize: bool) -> Tensor:
    e = code_bag(W, codes)
    return F.normalize(e, dim=1) if normalize else e


def _lse_forward(q: Tensor, W: Tensor, codes: Tensor, inv_t: float, normalize: bool, chunk: int, precision: str):
    B, H = q.shape
    m = torch.full((B,), float("-inf"), dtype=torch.float32, device=q.device)
    s = torch.zeros(B, dtype=torch.float32, device=q.device)
    BLOCK_M, BLOCK_N, BLOCK_H, TILES = 64, 64, 32, 4
    for a in range(0, codes.shape[0], chunk):
        e = _items(W, codes[a : a + chunk], normalize).contiguous()
        C = e.shape[0]
        P = triton.cdiv(C, BLOCK_N * TILES)
        part_m = torch.empty(B, P, dtype=torch.float32, device=q.device)
        part_s = torch.empty(B, P, dtype=torch.float32, device=q.device)
        _partial_lse_kernel[(triton.cdiv(B, BLOCK_M), P)](
            q, e, part_m, part_s, B, C, H, inv_t,
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_H=BLOCK_H, TILES=TILES, PRECISION=precision,
        )
        # Fold the chunk's partial (max, sum) pairs into the running ones (every part has at
        # least one real item, so part_m is finite).
        m_new = torch.maximum(m, part_m.max(dim=1).values)
        s = s * torch.exp(m - m_new) + (part_s * torch.exp(part_m - m_new[:, None])).sum(dim=1)
        m = m_new
    return m + torch.log(s)


class _LogSumExp(torch.autograd.Function):
    """lse[b] = logsumexp_n(<q[b], item_n> * inv_t) over all items, chunked."""

    @staticmethod
    def forward(ctx, q, W, codes, inv_t, normalize, chunk, precision, lse_kernel):
        q = q.contiguous()
        if lse_kernel == "cuda_adc":
            from ..cuda.softmax_ce import lse_adc_cuda

            lse = lse_adc_cuda(q, W.detach(), codes, inv_t, normalize)
        else:
            lse = _lse_forward(q, W.detach(), codes, inv_t, normalize, chunk, precision)
        ctx.save_for_backward(q, W, codes, lse)
        ctx.cfg = (inv_t, normalize, chunk)
        return lse

    @staticmethod
    def backward(ctx, g):
        q, W, codes, lse = ctx.saved_tensors
        inv_t, normalize, chunk = ctx.cfg
        dq = torch.zeros_like(q)
        dW = torch.zeros_like(W) if ctx.needs_input_grad[1] else None
        for a in range(0, codes.shape[0], chunk):
            with torch.enable_grad():
                Wd = W.detach().requires_grad_(dW is not None)
                e = _items(Wd, codes[a : a + chunk], normalize)
            # d lse_b / d l[b, n] = softmax; B x C at most, freed after the chunk.
            p = torch.addmm(-lse[:, None], q, e.detach().t(), alpha=inv_t)  # logits - lse, one pass
            p.exp_().mul_((g * inv_t)[:, None])
            dq.addmm_(p, e.detach())
            if dW is not None:
                (gw,) = torch.autograd.grad(e, Wd, torch.matmul(p.t(), q))
                dW += gw
        return dq, dW, None, None, None, None, None, None


def code_softmax_cross_entropy(
    seq_out: Tensor,
    W: Tensor,
    codes: Tensor,
    target: Tensor,
    temperature: float = 0.07,
    normalize: bool = True,
    ignore_index: int = -100,
    reduction: str = "mean",
    chunk: int = 1 << 16,
    precision: str = "ieee",
    lse_kernel: str = "triton",
) -> Tensor:
    """Cross-entropy of seq_out against every code-composed item, without the B x N logits.

    Args:
        seq_out: float [B, H] sequence representations. W: float32 [D, K, H] codebooks.
        codes: integer [N, D] item codes. target: int64 [B] item index in [0, N) or ignore_index.
        temperature: logits are divided by it. normalize: L2-normalise both sides (cosine).
        reduction: "mean" (over non-ignored rows), "sum" or "none" (float32 [B], 0 at ignored).
        chunk: items per chunk (memory O(chunk * (H + B))). precision: tl.dot input precision
            ("ieee" = exact fp32, "tf32" faster on tensor cores).
        lse_kernel: forward log-sum-exp by "triton" (item chunks + tl.dot tiles) or "cuda_adc"
            (CUDA ADC scan over fp32 LUTs, no item matrix at all; uint8 codes, CUDA only).
    Returns:
        the loss; differentiable in seq_out and W.
    """
    V.check_float32(W, "W")
    V.check_ndim(W, 3, "W", "[D, K, H]")
    V.check_ndim(seq_out, 2, "seq_out", "[B, H]")
    if seq_out.shape[1] != W.shape[2]:
        raise ValueError(f"seq_out has H={seq_out.shape[1]} but W has H={W.shape[2]}")
    V.check_codes(codes, W.shape[1], W.shape[0], "codes")
    V.check_ndim(target, 1, "target", "[B]")
    if target.shape[0] != seq_out.shape[0]:
        raise ValueError(f"target has {target.shape[0]} rows but seq_out has B={seq_out.shape[0]}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if lse_kernel not in ("triton", "cuda_adc"):
        raise ValueError(f"lse_kernel must be 'triton' or 'cuda_adc', got {lse_kernel!r}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    N = codes.shape[0]
    valid = target != ignore_index
    tv = target[valid]
    if tv.numel() and (int(tv.min()) < 0 or int(tv.max()) >= N):
        bad = int((valid & ((target < 0) | (target >= N))).nonzero()[0])
        raise ValueError(f"target[{bad}] = {int(target[bad])} is outside [0, N={N}) and is not ignore_index")
    q = seq_out.to(torch.float32)
    q = F.normalize(q, dim=1) if normalize else q
    inv_t = 1.0 / float(temperature)
    lse = _LogSumExp.apply(q, W, codes, inv_t, normalize, int(chunk), precision, lse_kernel)
    safe_t = torch.where(valid, target, torch.zeros_like(target))
    tgt = (q * _items(W, codes[safe_t], normalize)).sum(1) * inv_t
    loss = torch.where(valid, lse - tgt, torch.zeros_like(lse))
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / valid.sum().clamp_min(1)
