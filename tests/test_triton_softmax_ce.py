"""Triton fused code-composed cross-entropy against the dense PyTorch form."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from triton_device import DEVICE
from tolerance import assert_close
from vqrec_fast.reference.code_bag import code_bag_ref
from vqrec_fast.triton.softmax_ce import code_softmax_cross_entropy


def dense_loss(x, W, codes, target, t, normalize, reduction):
    items = code_bag_ref(W, codes)
    if normalize:
        x, items = F.normalize(x, dim=1), F.normalize(items, dim=1)
    return F.cross_entropy(x @ items.t() / t, target, ignore_index=-100, reduction=reduction)


@pytest.mark.parametrize("normalize,reduction", [(True, "mean"), (False, "sum"), (True, "none")])
def test_loss_and_gradients_match_dense(normalize, reduction):
    g = torch.Generator().manual_seed(7)
    D, K, H, N, B = 3, 12, 40, 150, 6
    W = torch.randn(D, K, H, generator=g) * (1.0 if normalize else 0.1)
    codes = torch.randint(0, K, (N, D), generator=g).to(torch.uint8)
    x = torch.randn(B, H, generator=g)
    target = torch.tensor([1, 5, -100, 149, 0, 7])
    w_ref, x_ref = W.clone().requires_grad_(), x.clone().requires_grad_()
    want = dense_loss(x_ref, w_ref, codes, target, 0.07, normalize, reduction)
    want.sum().backward()
    w_dev, x_dev = W.to(DEVICE).requires_grad_(), x.to(DEVICE).requires_grad_()
    # chunk=64 < N: the online log-sum-exp crosses chunk boundaries.
    got = code_softmax_cross_entropy(x_dev, w_dev, codes.to(DEVICE), target.to(DEVICE), 0.07, normalize,
                                     reduction=reduction, chunk=64)
    got.sum().backward()
    assert_close(got, want, rtol=1e-4, atol=1e-4, name="loss")
    assert_close(x_dev.grad, x_ref.grad, rtol=1e-4, atol=1e-5, name="d seq_out")
    assert_close(w_dev.grad, w_ref.grad, rtol=1e-4, atol=1e-5, name="d W")


def test_bad_target_is_named():
    W = torch.randn(2, 4, 16)
    codes = torch.zeros(5, 2, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"target\[1\] = 5 is outside"):
        code_softmax_cross_entropy(torch.randn(2, 16), W, codes, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="temperature"):
        code_softmax_cross_entropy(torch.randn(2, 16), W, codes, torch.tensor([0, 1]), temperature=0.0)
