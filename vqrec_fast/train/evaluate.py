"""Full-ranking evaluation: every history -> model query -> top-max(K) over all real items
(the model's ``topk``: the fused ADC scorer for VQ-Rec when available, so no [B, N] score
matrix) -> ranks -> Recall/NDCG@K."""
from __future__ import annotations

import time
from typing import Dict, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from ..data import Examples
from ..models import PackedLayout, SeqRecModel
from .batches import Rows, eval_rows
from .metrics import metrics_from_ranks, target_ranks


@torch.no_grad()
def rank_rows(model: SeqRecModel, rows: Rows, k: int, batch_size: int = 4096) -> Tuple[Tensor, Tensor]:
    """Top-k (scores [B, k], ids [B, k]) for every row's last position, in row order."""
    was_training = model.training
    model.eval()
    scores, ids = [], []
    try:
        for s in range(0, rows.num_rows, batch_size):
            e = min(s + batch_size, rows.num_rows)
            off = rows.offsets[s : e + 1] - rows.offsets[s]
            tok = torch.from_numpy(rows.tokens[rows.offsets[s] : rows.offsets[e]])
            layout = PackedLayout.from_offsets(torch.from_numpy(off))
            q = model.encode(tok, layout, last_only=True)
            sc, ix = model.topk(q, k)
            scores.append(sc)
            ids.append(ix)
    finally:
        model.train(was_training)
    return torch.cat(scores), torch.cat(ids)


def evaluate(model: SeqRecModel, ex: Examples, ks: Sequence[int] = (10, 50), max_len: int = 50,
             batch_size: int = 4096, name: str = "eval") -> Dict[str, float]:
    """Recall@K and NDCG@K over the examples of one split (plus "eval_seconds")."""
    t0 = time.perf_counter()
    rows = eval_rows(ex, max_len, name)
    _, ids = rank_rows(model, rows, max(ks), batch_size)
    targets = torch.from_numpy(np.asarray(ex.targets, dtype=np.int64))
    out = metrics_from_ranks(target_ranks(ids, targets), ks)
    out["eval_seconds"] = time.perf_counter() - t0
    return out
