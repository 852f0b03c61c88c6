"""Triton code bag: forward gather-mean and deterministic backward (sort + segment sum).

Shapes: W float32 [D, K, H] contiguous; codes integer [I, D]; row_of int64 [R] or None
(None: output row r uses code row r; else code row row_of[r], and id 0 = padding -> zero row).
Forward returns float32 [R, H]; backward returns grad_W float32 [D, K, H].

The backward sorts the (d, code) keys of every (row, d) pair stably with torch.sort and then one
program per (d, k) row and H-block sums its rows in increasing row order: deterministic, no
atomics (each sub-space has only K hot rows, which atomics would serialise anyway).
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor


@triton.jit
def _bag_forward_kernel(
    W, codes, row_of, out, R, I, D, K, H, inv_d,
    HAS_ROW_OF: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_H: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    hs = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    rmask = rows < R
    hmask = hs < H
    if HAS_ROW_OF:
        src = tl.load(row_of + rows, mask=rmask, other=0)
        valid = rmask & (src > 0) & (src < I)  # id 0 = padding -> zero row
    else:
        src = rows.to(tl.int64)
        valid = rmask
    acc = tl.zeros((BLOCK_R, BLOCK_H), dtype=tl.float32)
    for d in range(0, D):
        c = tl.load(codes + src * D + d, mask=valid, other=0).to(tl.int64)
        ok = valid & (c >= 0) & (c < K)
        w = tl.load(W + (d * K + c)[:, None] * H + hs[None, :], mask=ok[:, None] & hmask[None, :], other=0.0)
        acc += w
    tl.store(out + rows.to(tl.int64)[:, None] * H + hs[None, :], acc * inv_d, mask=rmask[:, None] & hmask[None, :])


@triton.jit
def _segment_sum_kernel(grad, rows, offsets, grad_W, H, inv_d, BLOCK_H: tl.constexpr):
    key = tl.program_id(0)
    hs = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    hmask = hs < H
    start = tl.load(offsets + key)
    end = tl.load(offsets + key + 1)
    acc = tl.zeros((BLOCK_H,), dtype=tl.float32)
    for j in range(start, end):
        r = tl.load(rows + j)
        acc += tl.load(grad + r * H + hs, mask=hmask, other=0.0)
    tl.store(grad_W + key.to(tl.int64) * H + hs, acc * inv_d, mask=hmask)


def _block_h(H: int) -> int:
    return min(128, triton.next_power_of_2(max(H, 16)))


def code_bag_forward(W: Tensor, codes: Tensor, row_of: Optional[Tensor] = None) -> Tensor:
    """float32 [R, H]: row r = (1/D) * sum_d W[d, codes[src(r), d]] (see module docstring)."""
    D, K, H = W.shape
    W = W.contiguous()
    codes = codes.contiguous()
    R = codes.shape[0] if row_of is None else row_of.numel()
    out = torch.empty(R, H, dtype=torch.float32, device=W.device)
    if R == 0 or H == 0:
        return out
    ids = row_of.reshape(-1).to(torch.int64).contiguous() if row_of is not None else codes  # dummy when unused
    BLOCK_R, BLOCK_H = 16, _block_h(H)
    grid = (triton.cdiv(R, BLOCK_R), triton.cdiv(H, BLOCK_H))
    _bag_forward_kernel[grid](
        W, codes, ids, out, R, codes.shape[0], D, K, H, 1.0 / D,
        HAS_ROW_OF=row_of is not None, BLOCK_R=BLOCK_R, BLOCK_H=BLOCK_H,
    )
    return out


def sort_by_code(codes: Tensor, D: int, K: int, row_of: Optional[Tensor] = None):
    """Stable bucketing of every (row, d) pair by key d*K + code.

    Returns (rows int64 [P] in key order, rows increasing within a key; offsets int64 [D*K + 1]).
    Padding rows (row_of == 0) are left out.
    """
    if row_of is None:
        src = torch.arange(codes.shape[0], device=codes.device)
    else:
        src = row_of.reshape(-1).to(torch.int64)
    rows = torch.arange(src.numel(), device=codes.device)
    if row_of is not None:
        keep = src != 0
        src, rows = src[keep], rows[keep]
    c = codes[src].to(torch.int64)  # [P0, D]
    keys = (c + torch.arange(D, device=codes.device) * K).reshape(-1)
    sorted_keys, perm = torch.sort(keys, stable=True)
    counts = torch.bincount(sorted_keys, minlength=D * K)
    offsets = torch.zeros(D * K + 1, dtype=torch.int64, device=codes.device)
    offsets[1:] = torch.cumsum(counts, 0)
    return rows[perm // D].contiguous(), offsets


def code_bag_backward(grad_out: Tensor, codes: Tensor, D: int, K: int, row_of: Optional[Tensor] = None) -> Tensor:
    """grad_W float32 [D, K, H] of code_bag_forward for grad_out [R, H] (or [*row_of.shape, H])."""
    H = grad_out.shape[-1]
    g = grad_out.to(torch.float32).reshape(-1, H).contiguous()
    gW = torch.empty(D, K, H, dtype=torch.float32, device=g.device)
    if H == 0:
        return gW
    rows, offsets = sort_by_code(codes, D, K, row_of)
    BLOCK_H = _block_h(H)
    _segment_sum_kernel[(D * K, triton.cdiv(H, BLOCK_H))](g, rows, offsets, gW, H, 1.0 / D, BLOCK_H=BLOCK_H)
    return gW
