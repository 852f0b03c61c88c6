"""Shared by the GPU top-k tests: a random problem and the check against the CPU reference."""
from __future__ import annotations

import torch

import vqrec_fast
from vqrec_fast.reference.score_topk import score_topk_ref


def random_problem(B, D, K, H, N, seed=0):
    """(queries [B, H], W [D, K, H] ~ N(0, 0.1^2), uint8 codes [N, D]) on the CPU."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, generator=g)
    W = torch.randn(D, K, H, generator=g) * 0.1
    codes = torch.randint(0, K, (N, D), generator=g).to(torch.uint8)
    return q, W, codes


def check_against_reference(q, W, codes, k, s, i, scale=None, exclude=None, metric="ip"):
    """Scores equal the reference top-k (1e-5), each score belongs to its id, no id repeats,
    no excluded id is returned."""
    want_s, _ = score_topk_ref(q, W, codes, k, scale, exclude, metric)
    s, i = s.cpu(), i.cpu()
    assert torch.allclose(s.double(), want_s, rtol=1e-5, atol=1e-6), (s.double() - want_s).abs().max()
    valid = i >= 0
    all_s = vqrec_fast.score_all(q, W, codes, item_scale=scale, metric=metric)
    got = torch.gather(all_s, 1, i.clamp_min(0))
    assert torch.allclose(got[valid], s[valid], rtol=1e-5, atol=1e-6), "scores do not belong to the ids"
    for b, row in enumerate(i):
        r = row[row >= 0].tolist()
        assert len(set(r)) == len(r), "duplicate ids"
        if exclude is not None:
            assert not set(r) & set(torch.as_tensor(exclude[b]).tolist()), f"query {b} got an excluded id"
