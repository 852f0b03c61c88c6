"""Shared skeleton of the sequential recommenders: item vectors + learned positions ->
LayerNorm -> dropout -> packed causal Transformer -> output at each sequence's last token.

Subclasses choose the item representation (``embed_items`` for input tokens, ``item_matrix``
for the catalogue) and the score: cosine / temperature (VQ-Rec, text baseline) or the dot
product (SASRec with item ids). Item ids: 0 = padding, real items 1..num_items; scores and
losses cover real items only (padding excluded, RecBole's full ranking).
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .encoder import PackedTransformerEncoder
from .packed import PackedLayout


class SeqRecModel(nn.Module):
    #: "cosine" (normalize both sides, divide by temperature) or "dot"
    metric: str = "cosine"

    def __init__(self, num_items: int, hidden: int = 300, max_len: int = 50, n_layers: int = 2, n_heads: int = 2,
                 inner: int = 256, dropout: float = 0.5, attn_dropout: float = 0.5, layer_norm_eps: float = 1e-12,
                 temperature: float = 0.07, init_std: float = 0.02):
        super().__init__()
        if num_items < 1:
            raise ValueError(f"num_items must be >= 1, got {num_items}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.num_items, self.hidden, self.max_len = num_items, hidden, max_len
        self.temperature, self.init_std = temperature, init_std
        self.position = nn.Embedding(max_len, hidden)
        self.ln = nn.LayerNorm(hidden, eps=layer_norm_eps)
        self.drop = nn.Dropout(dropout)
        self.encoder = PackedTransformerEncoder(n_layers, hidden, n_heads, inner, dropout, attn_dropout, layer_norm_eps)

    def init_weights(self) -> None:
        """RecBole's init: Linear/Embedding weights ~ N(0, init_std), biases 0, LayerNorm 1/0."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, self.init_std)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ item side (subclasses)
    def embed_items(self, ids: Tensor) -> Tensor:
        """ids int64 [T] (real items, >= 1) -> float32 [T, H] input vectors."""
        raise NotImplementedError

    def item_matrix(self) -> Tensor:
        """float32 [num_items, H]: row i-1 represents item i (padding excluded)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ sequence side
    def encode(self, tokens: Tensor, layout: PackedLayout, last_only: bool = False) -> Tensor:
        """tokens int64 [T] packed histories -> [T, H] outputs (or [B, H] at last tokens)."""
        if tokens.numel() != layout.num_tokens:
            raise ValueError(f"tokens has {tokens.numel()} entries, layout expects {layout.num_tokens}")
        if int(layout.lengths.max()) > self.max_len:
            raise ValueError(f"a history has {int(layout.lengths.max())} items, more than max_len={self.max_len}")
        x = self.embed_items(tokens) + self.position(layout.positions)
        x = self.drop(self.ln(x))
        return self.encoder(x, layout, last_only=last_only)

    def forward(self, tokens: Tensor, offsets: Tensor) -> Tensor:
        """Packed histories (tokens int64 [T], offsets int64 [B + 1]) -> [B, H] sequence outputs."""
        layout = PackedLayout.from_offsets(offsets).to(tokens.device)
        return self.encode(tokens, layout, last_only=True)

    def forward_padded(self, padded: Tensor) -> Tensor:
        """Left-aligned padded histories int64 [B, L] (0 = padding) -> [B, H]."""
        layout, tokens = PackedLayout.from_padded(padded)
        return self.encode(tokens, layout.to(padded.device), last_only=True)

    # ------------------------------------------------------------------ scores and loss
    def query(self, seq_out: Tensor) -> Tensor:
        return F.normalize(seq_out, dim=-1) if self.metric == "cosine" else seq_out

    def item_vectors(self) -> Tensor:
        """[num_items, H] item side of the score (normalized for cosine)."""
        m = self.item_matrix()
        return F.normalize(m, dim=-1) if self.metric == "cosine" else m

    def scale(self) -> float:
        return 1.0 / self.temperature if self.metric == "cosine" else 1.0

    def logits(self, seq_out: Tensor) -> Tensor:
        """[E, num_items] full scores (dense; for tests and small catalogues)."""
        return self.query(seq_out) @ self.item_vectors().T * self.scale()

    def loss(self, seq_out: Tensor, targets: Tensor) -> Tensor:
        """Mean full-softmax cross-entropy; targets int64 [E] in 1..num_items."""
        return F.cross_entropy(self.logits(seq_out), targets - 1)

    @torch.no_grad()
    def topk(self, seq_out: Tensor, k: int, chunk: int = 2048) -> Tuple[Tensor, Tensor]:
        """Top-k items for each query: (scores [B, k], item ids [B, k], ids in 1..num_items)."""
        items = self.item_vectors()
        q = self.query(seq_out)
        k = min(k, items.shape[0])
        scores, ids = [], []
        for s in range(0, q.shape[0], chunk):
            sc, ix = torch.topk(q[s : s + chunk] @ items.T, k, dim=1)
            scores.append(sc * self.scale())
            ids.append(ix + 1)
        return torch.cat(scores), torch.cat(ids)

    def describe(self) -> dict:
        return {"model": type(self).__name__, "num_items": self.num_items, "hidden": self.hidden}

