"""CUDA kernels for the code bag custom ops (registered for the "cuda" dispatch key).

Shapes: W float32 [D, K, H]; codes integer [N, D]; item_codes [I, D]; item_ids int64 [...],
0 = padding. The backward is deterministic (sort + segment sum in csrc/cuda/code_bag.cu).
Inputs were validated by the public functions in ``vqrec_fast.ops.code_bag``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..ops.code_bag import _code_bag, _code_bag_backward, _code_bag_seq, _code_bag_seq_backward
from . import _C_cuda
from ._launch import codes_for_kernel, stream_of


def forward(W: Tensor, codes: Tensor, row_of=None) -> Tensor:
    """[R, H] float32 with R = codes rows (row_of None) or row_of.numel()."""
    D, K, H = W.shape
    W = W.contiguous()
    c, ct = codes_for_kernel(codes)
    R = c.shape[0] if row_of is None else row_of.numel()
    out = torch.empty(R, H, dtype=torch.float32, device=W.device)
    with torch.cuda.device(W.device):
        _C_cuda.code_bag_forward(
            W.data_ptr(), D, K, H, c.data_ptr(), ct, c.shape[0], 0 if row_of is None else row_of.data_ptr(), R,
            out.data_ptr(), stream_of(W),
        )
    return out


def backward(grad_out: Tensor, codes: Tensor, D: int, K: int, row_of=None) -> Tensor:
    """grad_W float32 [D, K, H] for grad_out [R, H]."""
    g = grad_out.to(torch.float32).contiguous()
    H = g.shape[-1]
    g = g.reshape(-1, H)
    R = g.shape[0]
    c, ct = codes_for_kernel(codes)
    gW = torch.empty(D, K, H, dtype=torch.float32, device=g.device)
    ws_bytes = _C_cuda.code_bag_backward_workspace_bytes(R, D, K)
    ws = torch.empty(max(ws_bytes, 1), dtype=torch.uint8, device=g.device)  # torch's allocator owns it
    with torch.cuda.device(g.device):
        _C_cuda.code_bag_backward(
            g.data_ptr(), D, K, H, c.data_ptr(), ct, c.shape[0], 0 if row_of is None else row_of.data_ptr(), R,
            gW.data_ptr(), ws.data_ptr(), ws_bytes, stream_of(g),
        )
    return gW


if _C_cuda is not None:

    @_code_bag.register_kernel("cuda")
    def _(W: Tensor, codes: Tensor) -> Tensor:
        return forward(W, codes)

    @_code_bag_backward.register_kernel("cuda")
    def _(grad_out: Tensor, codes: Tensor, D: int, K: int) -> Tensor:
        return backward(grad_out, codes, D, K)

    @_code_bag_seq.register_kernel("cuda")
    def _(W: Tensor, item_codes: Tensor, item_ids: Tensor) -> Tensor:
        ids = item_ids.to(torch.int64).contiguous()
        return forward(W, item_codes, row_of=ids).reshape(*ids.shape, W.shape[2])

    @_code_bag_seq_backward.register_kernel("cuda")
    def _(grad_out: Tensor, item_codes: Tensor, item_ids: Tensor, D: int, K: int) -> Tensor:
        ids = item_ids.to(torch.int64).contiguous()
        return backward(grad_out, item_codes, D, K, row_of=ids)
