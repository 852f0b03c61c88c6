"""Text baseline (SASRec(T) in the VQ-Rec paper): each item is a learned linear projection of
its frozen PLM vector; scores are cosine / temperature like VQ-Rec. It isolates the question
"does the discrete code step help?": same text, no quantization."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import SeqRecModel


class TextSeqRec(SeqRecModel):
    metric = "cosine"

    def __init__(self, item_vectors: Tensor, hidden: int = 300, **kw):
        """item_vectors: float32 [num_items + 1, P] frozen PLM vectors (row 0 = padding)."""
        if item_vectors.dim() != 2 or item_vectors.shape[0] < 2:
            raise ValueError(f"item_vectors must be [num_items + 1, P], got {tuple(item_vectors.shape)}")
        super().__init__(item_vectors.shape[0] - 1, hidden=hidden, **kw)
        self.register_buffer("plm", item_vectors.to(torch.float32).contiguous())
        self.proj = nn.Linear(item_vectors.shape[1], hidden)
        self.init_weights()

    def embed_items(self, ids: Tensor) -> Tensor:
        return self.proj(self.plm[ids])

    def item_matrix(self) -> Tensor:
        return self.proj(self.plm[1:])
