"""Shared workload for the code bag benchmarks: the VQ-Rec training batch shape with history
lengths drawn from the real Scientific distribution (or a geometric stand-in without the data),
and the three formulations being compared."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import vqrec_fast as vf

SCI_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon2018-scientific" / "Scientific.train.inter"
B, L, D, K, H, I = 2048, 50, 32, 256, 300, 4386


def history_lengths(n: int, seed: int = 0) -> tuple[np.ndarray, str]:
    rng = np.random.default_rng(seed)
    if SCI_TRAIN.exists():
        lines = SCI_TRAIN.read_text().splitlines()[1:]
        lens = np.minimum([len(l.split("\t")[1].split()) for l in lines], L)
        return rng.choice(lens, n), "Scientific.train.inter"
    return np.minimum(rng.geometric(0.25, n), L), "geometric(0.25) stand-in"


def training_batch(seed: int = 0):
    """(W [D,K,H], item_codes uint8 [I,D], ids int64 [B,L] left-aligned with 0 padding, source)."""
    g = torch.Generator().manual_seed(seed)
    lens, src = history_lengths(B, seed)
    ids = torch.randint(1, I, (B, L), generator=g)
    ids[torch.arange(L)[None, :] >= torch.from_numpy(lens)[:, None]] = 0
    item_codes = torch.randint(0, K, (I, D), generator=g, dtype=torch.uint8)
    W = torch.randn(D, K, H, generator=g) * 0.02
    return W, item_codes, ids, src


def paper_flat(W: torch.Tensor) -> torch.Tensor:
    """The paper's table [D*(K+1), H]: a zero padding row first in each sub-space."""
    flat = torch.zeros(D, K + 1, H)
    flat[:, 1:] = W
    return flat.reshape(D * (K + 1), H)


def paper_codes(item_codes: torch.Tensor) -> torch.Tensor:
    """Item -> flat indices as in the paper's code: d*(K+1) + 1 + code; padding item -> 0s."""
    idx = item_codes.long() + 1 + torch.arange(D) * (K + 1)
    idx[0] = 0
    return idx


def seq_paper(Wflat, pcodes, ids):
    """(a) the paper's formulation: gather [B, L, D, H] (padding included) and mean over D."""
    return F.embedding(pcodes[ids], Wflat, padding_idx=0).mean(-2)


def seq_embedding_bag(Wflat, pcodes, ids):
    """(b) embedding_bag(mode="mean", padding_idx=0) over the same padded batch."""
    bags = pcodes[ids.reshape(-1)]
    return F.embedding_bag(bags, Wflat, mode="mean", padding_idx=0).reshape(*ids.shape, H)


def seq_ours(W, item_codes, ids):
    return vf.code_bag_seq(W, item_codes, ids)
