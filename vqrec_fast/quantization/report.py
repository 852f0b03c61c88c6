"""How well codes tell items apart: the paper argues OPQ codes are near-uniform per digit and
almost collision-free."""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch


def code_report(codes, bits: Optional[int] = None, skip_padding: bool = True) -> Dict[str, object]:
    """codes: uint8 [num_items + 1, D] (torch or numpy; row 0 = padding, skipped unless
    skip_padding=False) or an ``ItemCodes``. Returns:

    items, digits (D), codebook_size (K = 2**bits, default 256), distinct_codes,
    distinct_ratio (distinct full codes / items), items_sharing_code (items whose full code some
    other item also has), largest_shared_group, entropy_bits per digit (usage entropy of the K
    values, log2 K = uniform), entropy_mean / entropy_min, normalized_entropy_mean (mean / log2 K),
    used_values_min / used_values_mean (distinct values per digit).
    """
    if hasattr(codes, "codes") and hasattr(codes, "bits"):
        bits = codes.bits if bits is None else bits
        codes = codes.codes
    c = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    if c.ndim != 2:
        raise ValueError(f"codes must have shape [num_items + 1, D], got {c.shape}")
    if skip_padding:
        c = c[1:]
    if len(c) == 0:
        raise ValueError("codes hold no items")
    K = 1 << (8 if bits is None else bits)
    _, inverse, counts = np.unique(c, axis=0, return_inverse=True, return_counts=True)
    per_item = counts[inverse.reshape(-1)]
    ent, used = [], []
    for d in range(c.shape[1]):
        h = np.bincount(c[:, d].astype(np.int64), minlength=K).astype(np.float64)
        p = h[h > 0] / len(c)
        ent.append(float(-(p * np.log2(p)).sum()))
        used.append(int((h > 0).sum()))
    return {
        "items": int(len(c)), "digits": int(c.shape[1]), "codebook_size": K,
        "distinct_codes": int(len(counts)), "distinct_ratio": float(len(counts) / len(c)),
        "items_sharing_code": int((per_item > 1).sum()), "largest_shared_group": int(counts.max()),
        "entropy_bits": ent, "entropy_mean": float(np.mean(ent)), "entropy_min": float(np.min(ent)),
        "normalized_entropy_mean": float(np.mean(ent) / np.log2(K)),
        "used_values_min": int(min(used)), "used_values_mean": float(np.mean(used)),
    }
