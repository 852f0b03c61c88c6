"""Reference code bag: out[n] = (1/D) * sum_d W[d, codes[n, d]].

Shapes: W float [D, K, H]; codes integer [N, D] in [0, K); item_ids int64 [...]
indexing rows of item_codes [I, D], id 0 = padding (zero output, no gradient)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _flat_index(codes: torch.Tensor, K: int) -> torch.Tensor:
    D = codes.shape[1]
    offs = torch.arange(D, device=codes.device, dtype=torch.int64) * K
    return codes.to(torch.int64) + offs


def code_bag_ref(W: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """[N, H] means of code embeddings (differentiable in W through torch autograd)."""
    D, K, H = W.shape
    N = codes.shape[0]
    if N == 0:
        return W.new_zeros(0, H)
    idx = _flat_index(codes, K)
    return F.embedding_bag(idx, W.reshape(D * K, H), mode="mean")


def code_bag_backward_ref(grad_out: torch.Tensor, codes: torch.Tensor, D: int, K: int) -> torch.Tensor:
    """dW [D, K, H] of code_bag for the output gradient grad_out [N, H]."""
    N, H = grad_out.shape
    gW = grad_out.new_zeros(D * K, H)
    if N:
        idx = _flat_index(codes, K).reshape(-1)
        src = (grad_out / D).unsqueeze(1).expand(N, D, H).reshape(-1, H)
        gW.index_add_(0, idx, src)
    return gW.reshape(D, K, H)


def code_bag_seq_ref(W: torch.Tensor, item_codes: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
    """[*item_ids.shape, H]; rows of padding id 0 are zero."""
    H = W.shape[2]
    flat = item_ids.reshape(-1)
    out = code_bag_ref(W, item_codes[flat])
    out = out * (flat != 0).unsqueeze(1).to(out.dtype)
    return out.reshape(*item_ids.shape, H)


def code_bag_seq_backward_ref(
    grad_out: torch.Tensor, item_codes: torch.Tensor, item_ids: torch.Tensor, D: int, K: int
) -> torch.Tensor:
    H = grad_out.shape[-1]
    flat = item_ids.reshape(-1)
    g = grad_out.reshape(-1, H)
    real = flat != 0
    return code_bag_backward_ref(g[real], item_codes[flat[real]], D, K)
