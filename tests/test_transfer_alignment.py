"""Gumbel-Sinkhorn alignment and semi-synthetic negatives (issue 7 mechanisms)."""
from __future__ import annotations

import pytest
import torch

from vqrec_fast.transfer import (
    PermutationAlignment,
    gumbel_sinkhorn,
    hard_permutation,
    is_permutation,
    semi_synthetic_codes,
    sinkhorn,
)


def test_sinkhorn_is_doubly_stochastic():
    g = torch.Generator().manual_seed(0)
    la = torch.randn(4, 16, 16, generator=g) * 3
    p = sinkhorn(la, n_iters=3)
    torch.testing.assert_close(p.sum(-2), torch.ones(4, 16), rtol=0, atol=1e-5)  # columns: exact
    row_err = [(sinkhorn(la, n).sum(-1) - 1).abs().max().item() for n in (1, 3, 10)]
    assert row_err[0] > row_err[1] > row_err[2], row_err  # rows converge
    p = sinkhorn(la, n_iters=200)
    torch.testing.assert_close(p.sum(-1), torch.ones(4, 16), rtol=0, atol=1e-4)
    torch.testing.assert_close(p.sum(-2), torch.ones(4, 16), rtol=0, atol=1e-4)
    soft = gumbel_sinkhorn(la, temperature=0.7, generator=g)
    assert soft.shape == la.shape and bool((soft >= 0).all())


def test_hard_permutation_is_a_permutation_and_maximises_weight():
    g = torch.Generator().manual_seed(1)
    soft = sinkhorn(torch.randn(3, 12, 12, generator=g) * 2, 20)
    hard = hard_permutation(soft)
    assert is_permutation(hard)
    # the assignment is at least as good as the greedy row-argmax whenever that is a permutation
    perm = torch.eye(12)[torch.randperm(12, generator=g)]
    assert torch.equal(hard_permutation(perm * 5 + 0.01), perm)


def test_learned_permutation_receives_gradient():
    al = PermutationAlignment(2, 8, mode="learned")
    W = torch.randn(2, 8, 5)
    al(W).pow(2).sum().backward()
    assert al.log_alpha.grad is not None and al.log_alpha.grad.abs().sum() > 0
    assert is_permutation(al.current_hard_permutation())


def test_alignment_recovers_a_known_permutation():
    torch.manual_seed(0)
    D, K, H = 2, 8, 16
    W_pre = torch.randn(D, K, H)
    target_perm = torch.stack([torch.eye(K)[torch.randperm(K)] for _ in range(D)])
    W_target = torch.bmm(target_perm, W_pre)
    al = PermutationAlignment(D, K, mode="learned", noise_factor=0.3)
    opt = torch.optim.Adam(al.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        opt.zero_grad()
        loss = (al(W_pre, generator=g) - W_target).pow(2).mean()
        loss.backward()
        opt.step()
    assert torch.equal(al.current_hard_permutation(), target_perm)


def test_write_back_preserves_permuted_rows():
    al = PermutationAlignment(3, 6, mode="random", seed=3)
    W = torch.randn(3, 6, 4)
    P = al.current_hard_permutation()
    expect = torch.bmm(P, W)
    out = al.write_back(W.clone())
    torch.testing.assert_close(out, expect)
    idx = P.argmax(-1)  # new code k takes pre-trained row idx[d, k]
    for d in range(3):
        for k in range(6):
            assert torch.equal(out[d, k], W[d, idx[d, k]])
    none = PermutationAlignment(3, 6, mode="none")
    torch.testing.assert_close(none(W), W)


def test_semi_synthetic_replacement_rate():
    g = torch.Generator().manual_seed(0)
    K = 256
    codes = torch.randint(0, K, (4000, 32), generator=g, dtype=torch.uint8)
    for rho in (0.0, 0.25, 0.75, 1.0):
        neg = semi_synthetic_codes(codes, K, rho, generator=g)
        assert neg.dtype == codes.dtype and neg.shape == codes.shape
        changed = (neg != codes).float().mean().item()
        expected = rho * (1 - 1 / K)  # a replaced digit may redraw its own value
        assert abs(changed - expected) < 0.01, (rho, changed)
    with pytest.raises(ValueError, match="rho"):
        semi_synthetic_codes(codes, K, 1.5)


def test_contrastive_loss_against_a_plain_loop():
    from vqrec_fast.transfer.contrastive import contrastive_pretrain_loss

    g = torch.Generator().manual_seed(0)
    B, H, t = 7, 5, 0.07
    s, e, n = (torch.randn(B, H, generator=g, dtype=torch.float64) for _ in range(3))
    ids = torch.tensor([3, 9, 3, 4, 5, 9, 1])  # duplicates: rows 0/2 and 1/5
    got = contrastive_pretrain_loss(s, e, ids, n, temperature=t, reduction="none")
    cos = lambda a, b: float((a @ b) / (a.norm() * b.norm()))
    for i in range(B):
        terms = [cos(s[i], e[j]) / t for j in range(B) if j == i or ids[j] != ids[i]]
        terms.append(cos(s[i], n[i]) / t)
        expect = -cos(s[i], e[i]) / t + torch.logsumexp(torch.tensor(terms, dtype=torch.float64), 0).item()
        assert abs(got[i].item() - expect) < 1e-9
    no_neg = contrastive_pretrain_loss(s, e, ids, None, temperature=t)
    assert no_neg.item() < contrastive_pretrain_loss(s, e, ids, n, temperature=t).item()
