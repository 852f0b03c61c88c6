"""Packed (padding-free) layout of a batch of item sequences.

A batch of B sequences is kept as one flat token list (CSR): ``offsets`` int64 [B + 1] and
``tokens`` int64 [T] (oldest first per sequence, T = total real tokens). Projections and
feed-forward layers run on [T, H] with no padding. Attention needs each sequence's tokens
side by side, so sequences are grouped into length buckets (powers of two) and each bucket is
padded only to its own longest member: attention work on padding stays below 2x the real work,
instead of up to 50x when every sequence is padded to 50.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
from torch import Tensor


@dataclass
class Bucket:
    rows: Tensor  # int64 [b], sequence indices in this bucket
    length: int  # L, the bucket's padded length
    gather: Tensor  # int64 [b * L], packed token index per padded slot (T = the zero dummy row)
    valid: Tensor  # bool [b * L], slot holds a real token
    last: Tensor  # int64 [b], padded slot (b_i * L + len - 1) of each sequence's last token


@dataclass
class PackedLayout:
    """Index bookkeeping for one batch; built once, reused by every layer.

    offsets int64 [B + 1]; lengths int64 [B]; positions int64 [T] (0-based position of each
    token in its sequence, RecBole's left-aligned position ids); last int64 [B] (packed index of
    each sequence's last token); buckets; unperm int64 [T] (maps the concatenation of the
    buckets' valid slots back to packed order).
    """

    offsets: Tensor
    lengths: Tensor
    positions: Tensor
    last: Tensor
    buckets: List[Bucket]
    unperm: Tensor

    @property
    def num_tokens(self) -> int:
        return int(self.offsets[-1])

    @property
    def num_seqs(self) -> int:
        return int(self.lengths.numel())

    @classmethod
    def from_offsets(cls, offsets: Tensor) -> "PackedLayout":
        offsets = offsets.to(torch.int64).cpu()
        lengths = offsets[1:] - offsets[:-1]
        if lengths.numel() == 0:
            raise ValueError("a packed batch needs at least one sequence")
        if bool((lengths < 1).any()):
            bad = int(torch.nonzero(lengths < 1)[0])
            raise ValueError(f"sequence {bad} of the batch is empty; every history needs >= 1 item")
        T = int(offsets[-1])
        row_of = torch.repeat_interleave(torch.arange(lengths.numel()), lengths)
        positions = torch.arange(T) - offsets[:-1][row_of]
        # bucket id = ceil(log2(len)): lengths 1 | 2 | 3-4 | 5-8 | ... share a padded size
        bucket_id = torch.ceil(torch.log2(lengths.to(torch.float64))).to(torch.int64)
        buckets: List[Bucket] = []
        perm_parts = []
        for bid in torch.unique(bucket_id).tolist():
            rows = torch.nonzero(bucket_id == bid).flatten()
            L = int(lengths[rows].max())
            j = torch.arange(L)
            lens = lengths[rows]
            valid = (j[None, :] < lens[:, None])
            gather = torch.where(valid, offsets[rows][:, None] + j[None, :], torch.full_like(valid, T, dtype=torch.int64))
            last = torch.arange(rows.numel()) * L + lens - 1
            buckets.append(Bucket(rows, L, gather.flatten(), valid.flatten(), last))
            perm_parts.append(gather[valid])
        perm = torch.cat(perm_parts)
        unperm = torch.empty_like(perm)
        unperm[perm] = torch.arange(T)
        return cls(offsets, lengths, positions, offsets[1:] - 1, buckets, unperm)

    @classmethod
    def from_padded(cls, padded: Tensor) -> "tuple[PackedLayout, Tensor]":
        """From left-aligned padded ids [B, L] (0 = padding): returns (layout, tokens [T])."""
        mask = padded != 0
        lengths = mask.sum(1)
        offsets = torch.zeros(padded.shape[0] + 1, dtype=torch.int64)
        torch.cumsum(lengths, 0, out=offsets[1:])
        return cls.from_offsets(offsets), padded[mask]

    def to(self, device) -> "PackedLayout":
        mv = lambda t: t.to(device)  # noqa: E731
        return PackedLayout(
            mv(self.offsets), mv(self.lengths), mv(self.positions), mv(self.last),
            [Bucket(mv(b.rows), b.length, mv(b.gather), mv(b.valid), mv(b.last)) for b in self.buckets],
            mv(self.unperm),
        )
