"""Analyses of a trained recommender on its test users (transfer study).

- text over-emphasis: for each test user, mean PLM cosine similarity between the top-10 items
  and the last history item, minus the same similarity for the true next item. Positive = the
  model recommends items more "similar-titled" to the last item than what users really pick.
- cold start: Recall@10 / NDCG@10 by the target item's popularity in training (its count in
  the users' training sequences).
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch

from ..data import SeqDataset
from ..models import SeqRecModel
from ..train.batches import eval_rows
from ..train.evaluate import rank_rows
from ..train.metrics import metrics_from_ranks, target_ranks

POP_GROUPS = ((0, 0), (1, 4), (5, 19), (20, None))


def test_topk(model: SeqRecModel, ds: SeqDataset, k: int = 50, max_len: int = 50) -> torch.Tensor:
    """int64 [num_test, k] top-k item ids for every test user."""
    return rank_rows(model, eval_rows(ds.test, max_len, "test"), k)[1]


def text_overemphasis(top: torch.Tensor, ds: SeqDataset, vectors: np.ndarray, k: int = 10) -> Dict[str, float]:
    """top int64 [U, >=k]; vectors float32 [num_items + 1, P] PLM vectors -> mean similarities."""
    v = torch.nn.functional.normalize(torch.from_numpy(np.asarray(vectors, np.float32)), dim=-1)
    last = torch.from_numpy(ds.test.items[ds.test.offsets[1:] - 1])
    tgt = torch.from_numpy(ds.test.targets)
    rec_sim = (v[top[:, :k]] * v[last][:, None, :]).sum(-1).mean(1)
    tgt_sim = (v[tgt] * v[last]).sum(-1)
    return {"rec_sim": float(rec_sim.mean()), "target_sim": float(tgt_sim.mean()),
            "overemphasis": float((rec_sim - tgt_sim).mean())}


def train_popularity(ds: SeqDataset) -> np.ndarray:
    """int64 [num_items + 1]: occurrences of each item in the users' training sequences (the
    validation histories: everything before the validation and test items)."""
    return np.bincount(ds.valid.items, minlength=ds.num_items + 1)


def cold_start(top: torch.Tensor, ds: SeqDataset, groups: Sequence = POP_GROUPS) -> Dict[str, Dict[str, float]]:
    pop = train_popularity(ds)[ds.test.targets]
    ranks = target_ranks(top, torch.from_numpy(ds.test.targets))
    out = {}
    for lo, hi in groups:
        m = (pop >= lo) & (pop <= (hi if hi is not None else np.inf))
        name = f"{lo}" if lo == hi else (f"{lo}+" if hi is None else f"{lo}-{hi}")
        r = metrics_from_ranks(ranks[torch.from_numpy(m)], (10,))
        r["users"] = int(m.sum())
        out[name] = r
    return out
