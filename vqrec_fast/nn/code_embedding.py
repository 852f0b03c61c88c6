"""CodeEmbedding: the VQ-Rec item representation as a drop-in ``nn.Module``."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .. import _validate as V
from ..ops.code_bag import code_bag, code_bag_seq


class CodeEmbedding(nn.Module):
    """Mean of learned code embeddings: item -> (1/D) * sum_d weight[d, code[item, d]].

    Args:
        num_subspaces: D, code digits per item.
        codebook_size: K, values per digit.
        dim: H, embedding size.
        item_codes: optional integer [I, D] code table (row 0 = padding item). Stored as a
            buffer (uint8 when K <= 256), so ``forward(item_ids)`` works and it is saved with
            the module's state_dict.

    Shapes:
        forward(item_ids [*]) -> [*, H] (needs item_codes; id 0 gives a zero row)
        forward(codes=[N, D]) -> [N, H]

    Example (a fast item encoder inside another model)::

        emb = CodeEmbedding(32, 256, 64, item_codes=torch.randint(0, 256, (1000, 32)))
        seq = torch.tensor([[0, 0, 5, 17], [3, 9, 9, 2]])  # 0 = padding
        x = emb(seq)                                       # [2, 4, 64]
    """

    def __init__(self, num_subspaces: int, codebook_size: int, dim: int, item_codes: Optional[Tensor] = None):
        super().__init__()
        for name, v in (("num_subspaces", num_subspaces), ("codebook_size", codebook_size), ("dim", dim)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.num_subspaces, self.codebook_size, self.dim = num_subspaces, codebook_size, dim
        self.weight = nn.Parameter(torch.empty(num_subspaces, codebook_size, dim))
        self.register_buffer("item_codes", None)
        self.reset_parameters()
        if item_codes is not None:
            self.set_item_codes(item_codes)

    def reset_parameters(self, std: float = 0.02) -> None:
        nn.init.normal_(self.weight, 0.0, std)

    @property
    def code_dtype(self) -> torch.dtype:
        return torch.uint8 if self.codebook_size <= 256 else torch.int32

    def set_item_codes(self, item_codes: Tensor) -> None:
        """Installs (or replaces) the item code table [I, D]; validated once here."""
        V.check_codes(item_codes, self.codebook_size, self.num_subspaces, "item_codes")
        if item_codes.shape[0] < 1:
            raise ValueError("item_codes needs at least the padding row 0")
        codes = item_codes.to(self.code_dtype).contiguous()
        self.item_codes = codes.to(self.weight.device)

    @property
    def num_items(self) -> int:
        return 0 if self.item_codes is None else int(self.item_codes.shape[0])

    def forward(self, item_ids: Optional[Tensor] = None, *, codes: Optional[Tensor] = None) -> Tensor:
        if (item_ids is None) == (codes is None):
            raise ValueError("CodeEmbedding.forward takes either item_ids or codes=..., not both or neither")
        if codes is not None:
            return code_bag(self.weight, codes)
        if self.item_codes is None:
            raise RuntimeError("CodeEmbedding has no item_codes; pass codes=... or call set_item_codes()")
        return code_bag_seq(self.weight, self.item_codes, item_ids, check_codes=False)

    def all_items(self) -> Tensor:
        """[I, H] representation of every item in the table (row 0 included as a code bag)."""
        if self.item_codes is None:
            raise RuntimeError("CodeEmbedding has no item_codes")
        return code_bag(self.weight, self.item_codes)

    # --------------------------------------------------------------- paper layout interop
    def export_flat(self) -> Tensor:
        """The paper's layout: [D * (K + 1), H], a zero padding row first in each sub-space."""
        D, K, H = self.weight.shape
        flat = self.weight.new_zeros(D, K + 1, H)
        flat[:, 1:] = self.weight.detach()
        return flat.reshape(D * (K + 1), H)

    @torch.no_grad()
    def load_flat(self, flat: Tensor) -> None:
        """Loads the paper's flattened table [D * (K + 1), H] (padding rows are dropped)."""
        D, K, H = self.weight.shape
        V.check_tensor(flat, "flat")
        if tuple(flat.shape) != (D * (K + 1), H):
            raise ValueError(f"flat must have shape [D*(K+1), H] = [{D * (K + 1)}, {H}], got {tuple(flat.shape)}")
        self.weight.copy_(flat.reshape(D, K + 1, H)[:, 1:])

    @classmethod
    def from_flat(cls, flat: Tensor, num_subspaces: int, item_codes: Optional[Tensor] = None) -> "CodeEmbedding":
        rows, H = flat.shape
        if rows % num_subspaces:
            raise ValueError(f"flat has {rows} rows, not a multiple of num_subspaces={num_subspaces}")
        K = rows // num_subspaces - 1
        m = cls(num_subspaces, K, H, item_codes=item_codes)
        m.load_flat(flat)
        return m

    def extra_repr(self) -> str:
        return f"D={self.num_subspaces}, K={self.codebook_size}, H={self.dim}, items={self.num_items}"


