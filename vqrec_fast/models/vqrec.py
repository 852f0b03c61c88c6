"""VQ-Rec (Hou et al., WWW 2023): item -> D discrete codes -> mean of learned code embeddings
(``CodeEmbedding``, table W float32 [D, K, H]) -> SASRec Transformer; scores are cosine / 0.07
against every item's code-composed vector (the paper's inductive setting).

The loss and top-k can use the fused kernels (``loss_impl="fused"``: no [E, N] logits;
``score_topk``: no [B, N] score matrix) when those ops are available; ``"dense"`` is the
straightforward PyTorch composition and the fallback. ``"auto"`` (the default) takes the
faster loss for the catalogue: dense up to 3/4 of D*K items (6,144 at the paper's size), fused
beyond.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..nn import CodeEmbedding
from .base import SeqRecModel


def _fused_loss_fn():
    import vqrec_fast as vf

    return getattr(vf, "code_softmax_cross_entropy", None)


def _fused_topk_fn():
    import vqrec_fast as vf

    return getattr(vf, "score_topk", None)


class VQRec(SeqRecModel):
    metric = "cosine"

    def __init__(self, item_codes: Tensor, codebook_size: int = 256, hidden: int = 300, loss_impl: str = "auto",
                 topk_impl: str = "auto", **kw):
        """item_codes: integer [num_items + 1, D] (row 0 = padding, ignored); values in [0, K)."""
        if item_codes.dim() != 2 or item_codes.shape[0] < 2:
            raise ValueError(f"item_codes must be [num_items + 1, D] with >= 1 real item, got {tuple(item_codes.shape)}")
        super().__init__(item_codes.shape[0] - 1, hidden=hidden, **kw)
        if loss_impl not in ("auto", "dense", "fused"):
            raise ValueError(f"loss_impl must be 'auto', 'dense' or 'fused', got {loss_impl!r}")
        if topk_impl not in ("auto", "dense", "fused"):
            raise ValueError(f"topk_impl must be 'auto', 'dense' or 'fused', got {topk_impl!r}")
        self.codes = CodeEmbedding(int(item_codes.shape[1]), codebook_size, hidden, item_codes=item_codes)
        self.loss_impl, self.topk_impl = loss_impl, topk_impl
        self.init_weights()

    def set_item_codes(self, item_codes: Tensor) -> None:
        """Swap the code table (e.g. new items, the inductive setting); W is kept."""
        self.codes.set_item_codes(item_codes)
        self.num_items = int(item_codes.shape[0]) - 1

    def embed_items(self, ids: Tensor) -> Tensor:
        return self.codes(ids)

    def item_matrix(self) -> Tensor:
        return self.codes(codes=self.codes.item_codes[1:])

    def _use(self, impl: str, fn) -> bool:
        if impl == "fused" and fn is None:
            raise RuntimeError("the fused op is not available in this build (set the impl to 'dense' or 'auto')")
        return impl == "fused" or (impl == "auto" and fn is not None)

    def loss(self, seq_out: Tensor, targets: Tensor) -> Tensor:
        fn = _fused_loss_fn()
        impl = self.loss_impl
        if impl == "auto" and fn is not None:
            # The measured rule of vqrec_fast.ops.softmax_ce: dense for catalogues up to 3/4 of
            # D*K items (Scientific's 4,385: a training step 1.24 s vs 1.55 s per 3 batches fused),
            # fused beyond that or when the dense logits would not fit 1 GiB.
            from ..ops.softmax_ce import dense_ce_is_faster

            B, N = seq_out.shape[0], self.num_items
            impl = "dense" if dense_ce_is_faster(B, N, self.codes.num_subspaces, self.codes.codebook_size) else "fused"
        if self._use(impl, fn):
            return fn(seq_out, self.codes.weight, self.codes.item_codes[1:], targets - 1,
                      temperature=self.temperature, normalize=True)
        return super().loss(seq_out, targets)

    @torch.no_grad()
    def topk(self, seq_out: Tensor, k: int, chunk: int = 2048) -> Tuple[Tensor, Tensor]:
        fn = _fused_topk_fn()
        if self._use(self.topk_impl, fn):
            k = min(k, self.num_items)
            scores, ids = fn(seq_out.contiguous(), self.codes.weight, self.codes.item_codes[1:], k, metric="cosine")
            return scores / self.temperature, ids.to(torch.int64) + 1
        return super().topk(seq_out, k, chunk)

    def describe(self) -> dict:
        d = super().describe()
        d.update(D=self.codes.num_subspaces, K=self.codes.codebook_size)
        return d
