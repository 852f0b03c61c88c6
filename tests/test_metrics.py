"""Recall@K / NDCG@K on hand-computed cases, and full evaluation against brute-force ranks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vqrec_fast.data import Examples
from vqrec_fast.models import SASRec
from vqrec_fast.train.evaluate import evaluate
from vqrec_fast.train.metrics import metrics_from_ranks, target_ranks
from tests._single_thread import single_thread  # noqa: F401  (autouse)


def test_ranks_from_topk_ids():
    ids = torch.tensor([[5, 3, 9], [1, 2, 4], [7, 8, 6]])
    targets = torch.tensor([3, 9, 7])
    assert target_ranks(ids, targets).tolist() == [1, 3, 0]  # 9 is not in row 1's top 3 -> k


def test_hand_computed_metrics():
    ranks = torch.tensor([0, 1, 4, 12, 60])
    m = metrics_from_ranks(ranks, (1, 5, 50))
    assert m["recall@1"] == pytest.approx(1 / 5)
    assert m["recall@5"] == pytest.approx(3 / 5)
    assert m["recall@50"] == pytest.approx(4 / 5)
    assert m["ndcg@1"] == pytest.approx(1 / 5)
    assert m["ndcg@5"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6)) / 5)
    assert m["ndcg@50"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6) + 1 / math.log2(14)) / 5)


def test_bad_shapes():
    with pytest.raises(ValueError, match="topk_ids"):
        target_ranks(torch.zeros(3, dtype=torch.int64), torch.zeros(3, dtype=torch.int64))


def test_evaluate_matches_brute_force_full_ranking():
    torch.manual_seed(0)
    n_items = 120
    m = SASRec(n_items, hidden=32, n_heads=2, inner=16, max_len=10).eval()
    rng = np.random.default_rng(0)
    hists = [rng.integers(1, n_items + 1, rng.integers(1, 15)).tolist() for _ in range(300)]
    targets = rng.integers(1, n_items + 1, 300)
    ex = Examples.from_lists(hists, targets.tolist())
    got = evaluate(m, ex, (10, 50), max_len=10, batch_size=64)
    # brute force: padded histories (last 10 items), dense scores over real items, rank = # strictly better
    with torch.no_grad():
        q = m.forward_padded(ex.padded(10))
        scores = q @ m.items.weight[1:].T
    t = torch.from_numpy(targets) - 1
    ranks = (scores > scores.gather(1, t[:, None])).sum(1)
    want = metrics_from_ranks(ranks, (10, 50))
    for k, v in want.items():
        assert got[k] == pytest.approx(v, abs=1e-12), k
