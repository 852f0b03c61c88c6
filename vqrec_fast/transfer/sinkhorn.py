"""Gumbel-Sinkhorn permutations with a learnable hardening (for code-embedding alignment).

VQ-Rec fine-tunes on a new domain with a fresh code space; a per-sub-space permutation maps
the new codes onto the pre-trained code embeddings. The paper's code hardens the doubly
stochastic matrix with ``ceil`` of a top-1, which passes no gradient, so its permutation
parameters never train. Here the forward pass uses the hard permutation and the backward pass
flows through the soft doubly stochastic matrix (straight-through estimator).

Shapes: ``log_alpha`` [..., K, K] (any leading batch dims, e.g. D sub-spaces).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor


def sinkhorn(log_alpha: Tensor, n_iters: int = 3) -> Tensor:
    """Alternating row/column normalisation in log space; returns exp of the result [..., K, K].

    After each full iteration the columns sum to one exactly and rows approximately (exactly in
    the limit)."""
    for _ in range(n_iters):
        log_alpha = log_alpha - torch.logsumexp(log_alpha, dim=-1, keepdim=True)
        log_alpha = log_alpha - torch.logsumexp(log_alpha, dim=-2, keepdim=True)
    return log_alpha.exp()


def gumbel_sinkhorn(
    log_alpha: Tensor,
    temperature: float = 1.0,
    noise_factor: float = 1.0,
    n_iters: int = 3,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """Soft permutation: sinkhorn((log_alpha + noise_factor * Gumbel) / temperature)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if noise_factor > 0:
        u = torch.rand(log_alpha.shape, generator=generator, device=log_alpha.device, dtype=log_alpha.dtype)
        gumbel = -torch.log(-torch.log(u.clamp_min(1e-20)) + 1e-20)
        log_alpha = log_alpha + noise_factor * gumbel
    return sinkhorn(log_alpha / temperature, n_iters)


@torch.no_grad()
def hard_permutation(soft: Tensor) -> Tensor:
    """Nearest permutation matrix to each [K, K] slice (max total weight assignment, exact).

    Uses the Hungarian algorithm (scipy.optimize.linear_sum_assignment); returns a 0/1 tensor
    of the same shape and dtype with exactly one 1 per row and column."""
    from scipy.optimize import linear_sum_assignment

    flat = soft.detach().reshape(-1, *soft.shape[-2:]).to(torch.float64).cpu().numpy()
    out = np.zeros_like(flat)
    for i, m in enumerate(flat):
        rows, cols = linear_sum_assignment(m, maximize=True)
        out[i, rows, cols] = 1.0
    return torch.from_numpy(out).to(dtype=soft.dtype, device=soft.device).reshape(soft.shape)


def straight_through_permutation(soft: Tensor) -> Tensor:
    """Hard permutation in the forward pass, gradient of the soft matrix in the backward pass."""
    hard = hard_permutation(soft)
    return hard + soft - soft.detach()


def is_permutation(p: Tensor) -> bool:
    """True when every [K, K] slice is a 0/1 matrix with one 1 per row and column."""
    ones = (p == 1) | (p == 0)
    return bool(ones.all()) and bool((p.sum(-1) == 1).all()) and bool((p.sum(-2) == 1).all())
