"""CUDA kernels for the code bag custom ops (registered for the "cuda" dispatch key).

Shapes: W float32 [D, K, H]; codes integer [N, D]; item_codes [I, D]; item_ids int64 [...],
0 = padding. The backward is deterministic (sort + segment sum in csrc/cuda/code_bag.cu).
Inputs were validated by the public functions in ``vqrec_fast.ops.code_bag``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..reference import code_bag as ref
from ..ops.code_bag import _code_bag, _code_bag_backward, _code_bag_seq, _code_bag_seq_backward
from . import cuda_module
from ._launch import codes_for_kernel, stream_of


def forward(W: Tensor, codes: Tensor, row_of=None) -> Tensor:
    """CUDA module launch: [R, H] float32 with R = codes rows (row_of None) or row_of.numel()."""
    D, K, H = W.shape
    W = W.contiguous()
    c, ct = codes_for_kernel(codes)
    R = c.shape[0] if row_of is None else row_of.numel()
    out = torch.empty(R, H, dtype=torch.float32, device=W.device)
    with torch.cuda.device(W.device):
        cuda_module().code_bag_forward(
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
    mod = cuda_module()
    ws_bytes = mod.code_bag_backward_workspace_bytes(R, D, K)
    ws = torch.empty(max(ws_bytes, 1), dtype=torch.uint8, device=g.device)  # torch's allocator owns it
    with torch.cuda.device(g.device):
        mod.code_bag_backward(
            g.data_ptr(), D, K, H, c.data_ptr(), ct, c.shape[0], 0 if row_of is None else row_of.data_ptr(), R,
            gW.data_ptr(), ws.data_ptr(), ws_bytes, stream_of(g),
        )
    return gW


def seq_forward(W: Tensor, item_codes: Tensor, ids: Tensor) -> Tensor:
    """[*ids.shape, H]: bags of the distinct ids once, then a row gather.

    A training batch (e.g. 2048 x 50 positions) names far fewer distinct items than positions,
    and each bag costs D row reads of W, so bagging distinct items first cuts that work by the
    repeat factor. torch.unique costs one host sync."""
    flat = ids.reshape(-1)
    if flat.numel() == 0:
        return W.new_zeros(*ids.shape, W.shape[2])
    uniq, inv = torch.unique(flat, return_inverse=True)
    if uniq.numel() * 4 > flat.numel() * 3:  # few repeats: direct is cheaper
        return forward(W, item_codes, row_of=flat.contiguous()).reshape(*ids.shape, W.shape[2])
    bags = forward(W, item_codes, row_of=uniq.contiguous())  # id 0 -> zero row
    return bags.index_select(0, inv).reshape(*ids.shape, W.shape[2])


def seq_backward(grad_out: Tensor, item_codes: Tensor, ids: Tensor, D: int, K: int) -> Tensor:
    """grad_W [D, K, H] for grad_out [*ids.shape, H], in two deterministic segment sums:
    positions -> distinct items (a code bag backward with D = 1 over the item index), then
    distinct items -> (d, k) rows. Each grad row is then read once, and only the U distinct
    items' sums (small enough to stay in L2) are read D times, instead of every position."""
    flat = ids.reshape(-1)
    H = grad_out.shape[-1]
    g = grad_out.reshape(-1, H)
    if flat.numel() == 0:
        return backward(g, item_codes, D, K, row_of=flat)
    uniq, inv = torch.unique(flat, return_inverse=True)
    if uniq.numel() * 4 > flat.numel() * 3:
        return backward(g, item_codes, D, K, row_of=flat.contiguous())
    U = uniq.numel()
    # D = 1, "codes" = position -> distinct-item index: per-item sums of grad rows (scale 1/1).
    # Padding positions are left out (row_of 0 = padding; position p reads code row p + 1 of
    # [0, inv...]), so their gradient rows, often most of a batch, are never summed into a
    # segment that stage 2 would drop anyway.
    P = flat.numel()
    pos_rows = torch.where(flat == 0, 0, torch.arange(1, P + 1, device=flat.device))
    pos_codes = torch.cat([inv.new_zeros(1), inv.reshape(-1)]).to(torch.int32).reshape(-1, 1)
    per_item = backward(g, pos_codes, 1, U, row_of=pos_rows).reshape(U, H)
    return backward(per_item, item_codes, D, K, row_of=uniq.contiguous())  # id 0 is skipped


def _impl():
    """(forward, backward, seq_forward, seq_backward) of the selected GPU backend, or None."""
    from . import gpu_backend

    name = gpu_backend()
    if name == "cuda":
        return forward, backward, seq_forward, seq_backward
    if name == "triton":
        from ..triton import code_bag as tcb

        def t_seq_forward(W, item_codes, ids):
            return tcb.code_bag_forward(W, item_codes, ids).reshape(*ids.shape, W.shape[2])

        def t_seq_backward(grad_out, item_codes, ids, D, K):
            return tcb.code_bag_backward(grad_out, item_codes, D, K, ids)

        return tcb.code_bag_forward, tcb.code_bag_backward, t_seq_forward, t_seq_backward
    return None


# Registered for CUDA tensors whatever the backend; "reference" defers to the default kernels.
@_code_bag.register_kernel("cuda")
def _(W: Tensor, codes: Tensor) -> Tensor:
    impl = _impl()
    return impl[0](W, codes) if impl else ref.code_bag_ref(W, codes)


@_code_bag_backward.register_kernel("cuda")
def _(grad_out: Tensor, codes: Tensor, D: int, K: int) -> Tensor:
    impl = _impl()
    return impl[1](grad_out, codes, D, K) if impl else ref.code_bag_backward_ref(grad_out, codes, D, K)


@_code_bag_seq.register_kernel("cuda")
def _(W: Tensor, item_codes: Tensor, item_ids: Tensor) -> Tensor:
    impl = _impl()
    if impl is None:
        return ref.code_bag_seq_ref(W, item_codes, item_ids)
    return impl[2](W, item_codes, item_ids.to(torch.int64).contiguous())


@_code_bag_seq_backward.register_kernel("cuda")
def _(grad_out: Tensor, item_codes: Tensor, item_ids: Tensor, D: int, K: int) -> Tensor:
    impl = _impl()
    if impl is None:
        return ref.code_bag_seq_backward_ref(grad_out, item_codes, item_ids, D, K)
    return impl[3](grad_out, item_codes, item_ids.to(torch.int64).contiguous(), D, K)
