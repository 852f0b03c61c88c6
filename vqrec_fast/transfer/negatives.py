"""Semi-synthetic negatives for VQ-Rec pre-training: the target's code with each digit
replaced by a uniformly random code with probability rho (default 0.75)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def semi_synthetic_codes(codes: Tensor, codebook_size: int, rho: float = 0.75,
                         generator: Optional[torch.Generator] = None) -> Tensor:
    """codes [B, D] integer -> [B, D] same dtype; each digit is resampled in [0, K) w.p. rho."""
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must be in [0, 1], got {rho}")
    if codes.dim() != 2:
        raise ValueError(f"codes must have shape [B, D], got {tuple(codes.shape)}")
    replace = torch.rand(codes.shape, generator=generator, device=codes.device) < rho
    random = torch.randint(0, codebook_size, codes.shape, generator=generator, device=codes.device)
    return torch.where(replace, random.to(codes.dtype), codes)
