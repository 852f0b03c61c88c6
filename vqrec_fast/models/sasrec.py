"""SASRec with item-id embeddings (Kang & McAuley 2018, RecBole's version): the item table
float32 [num_items + 1, H] (row 0 = padding) serves as input and output; scores are dot products.
A transductive baseline: it cannot score items unseen in training."""
from __future__ import annotations

from torch import Tensor, nn

from .base import SeqRecModel


class SASRec(SeqRecModel):
    metric = "dot"

    def __init__(self, num_items: int, hidden: int = 300, **kw):
        super().__init__(num_items, hidden=hidden, **kw)
        self.items = nn.Embedding(num_items + 1, hidden, padding_idx=0)
        self.init_weights()

    def embed_items(self, ids: Tensor) -> Tensor:
        return self.items(ids)

    def item_matrix(self) -> Tensor:
        return self.items.weight[1:]
