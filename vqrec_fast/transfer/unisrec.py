"""UniSRec-style text baseline (Hou et al., KDD 2022), the VQ-Rec paper's strongest text
competitor: frozen PLM vectors -> parametric whitening + mixture-of-experts adaptor -> the same
SASRec Transformer, cosine scores / temperature. Pre-trained with the same contrastive loss
(no semi-synthetic negative: it has no codes) and fine-tuned with the Transformer fixed,
training the adaptor (UniSRec's inductive setting).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import SeqRecModel


class MoEAdaptor(nn.Module):
    """x [..., P] -> [..., H]: sum_e softmax(x G)_e * ((x - b_e) W_e) (whitening per expert)."""

    def __init__(self, plm_size: int, hidden: int, n_experts: int = 8, dropout: float = 0.2):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_experts, plm_size, hidden))
        self.bias = nn.Parameter(torch.zeros(n_experts, plm_size))
        self.gate = nn.Linear(plm_size, n_experts, bias=False)
        self.drop = nn.Dropout(dropout)
        nn.init.normal_(self.weight, 0.0, 0.02)
        nn.init.normal_(self.gate.weight, 0.0, 0.02)

    def forward(self, x: Tensor) -> Tensor:
        g = F.softmax(self.gate(x), dim=-1)  # [..., E]
        e = torch.einsum("...ep,eph->...eh", self.drop(x).unsqueeze(-2) - self.bias, self.weight)
        return (g.unsqueeze(-1) * e).sum(-2)


class UniSRecText(SeqRecModel):
    metric = "cosine"

    def __init__(self, item_vectors: Tensor, hidden: int = 300, n_experts: int = 8, **kw):
        """item_vectors: float32 [num_items + 1, P] frozen PLM vectors (row 0 = padding)."""
        if item_vectors.dim() != 2 or item_vectors.shape[0] < 2:
            raise ValueError(f"item_vectors must be [num_items + 1, P], got {tuple(item_vectors.shape)}")
        super().__init__(item_vectors.shape[0] - 1, hidden=hidden, **kw)
        self.init_weights()
        self.register_buffer("plm", item_vectors.to(torch.float32).contiguous())
        self.adaptor = MoEAdaptor(item_vectors.shape[1], hidden, n_experts)

    def embed_items(self, ids: Tensor) -> Tensor:
        return self.adaptor(self.plm[ids])

    def item_matrix(self) -> Tensor:
        return self.adaptor(self.plm[1:])
