"""Permutation-based code-embedding alignment for fine-tuning on a new domain.

For each sub-space d a learnable K x K matrix ``log_alpha[d]`` is turned into a doubly
stochastic matrix by Gumbel-Sinkhorn (3 iterations, noise temperature 0.7 by default) and
hardened to a permutation P[d] (straight-through). The aligned table is
``W'[d, k] = sum_j P[d, k, j] * W[d, j]``: new code k of sub-space d uses pre-trained
embedding j. After the alignment epochs ``write_back`` bakes the hard permutation into the
code-embedding table, which then trains freely.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .sinkhorn import gumbel_sinkhorn, hard_permutation, straight_through_permutation


class PermutationAlignment(nn.Module):
    """Learnable per-sub-space permutations of a [D, K, H] code-embedding table.

    Args:
        num_subspaces, codebook_size: D and K.
        temperature: Gumbel-Sinkhorn temperature (the paper's noise temperature 0.7).
        n_iters: Sinkhorn iterations (3).
        noise_factor: scale of the Gumbel noise while training (0 disables it).
        mode: "learned" (straight-through hard permutation, trains), "random" (one fixed random
            permutation per sub-space, what the paper's code effectively does), "none" (identity).
    """

    def __init__(self, num_subspaces: int, codebook_size: int, temperature: float = 0.7, n_iters: int = 3,
                 noise_factor: float = 1.0, mode: str = "learned", seed: int = 0):
        super().__init__()
        if mode not in ("learned", "random", "none"):
            raise ValueError(f"mode must be 'learned', 'random' or 'none', got {mode!r}")
        self.D, self.K, self.mode = num_subspaces, codebook_size, mode
        self.temperature, self.n_iters, self.noise_factor = temperature, n_iters, noise_factor
        # Start near the identity so an aligned table begins as the pre-trained one.
        init = torch.eye(codebook_size).expand(num_subspaces, -1, -1) * 3.0
        self.log_alpha = nn.Parameter(init.clone(), requires_grad=(mode == "learned"))
        g = torch.Generator().manual_seed(seed)
        fixed = torch.stack([torch.eye(codebook_size)[torch.randperm(codebook_size, generator=g)]
                             for _ in range(num_subspaces)])
        self.register_buffer("fixed_perm", fixed if mode == "random" else torch.eye(codebook_size).expand(
            num_subspaces, -1, -1).clone())

    def permutation(self, generator: Optional[torch.Generator] = None) -> Tensor:
        """[D, K, K] permutation used now (hard; differentiable in 'learned' mode)."""
        if self.mode != "learned":
            return self.fixed_perm
        soft = gumbel_sinkhorn(self.log_alpha, self.temperature, self.noise_factor if self.training else 0.0,
                               self.n_iters, generator)
        return straight_through_permutation(soft)

    def forward(self, W: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        """Aligned table [D, K, H] = P @ W per sub-space."""
        return torch.bmm(self.permutation(generator).to(W.dtype), W)

    @torch.no_grad()
    def current_hard_permutation(self) -> Tensor:
        if self.mode != "learned":
            return self.fixed_perm.clone()
        return hard_permutation(gumbel_sinkhorn(self.log_alpha, self.temperature, 0.0, self.n_iters))

    @torch.no_grad()
    def write_back(self, weight: Tensor) -> Tensor:
        """Bakes the hard permutation into ``weight`` [D, K, H] in place and returns it."""
        P = self.current_hard_permutation().to(weight.dtype)
        weight.copy_(torch.bmm(P, weight))
        return weight
