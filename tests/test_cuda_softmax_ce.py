"""Fused code-composed cross-entropy (Triton) on the GPU against the dense PyTorch form."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cuda_device import needs_cuda
from tolerance import assert_close
from vqrec_fast.reference.code_bag import code_bag_ref

pytestmark = needs_cuda
DEV = torch.device("cuda")


def test_fused_loss_matches_dense_on_gpu():
    pytest.importorskip("triton")
    from vqrec_fast.triton.softmax_ce import code_softmax_cross_entropy

    g = torch.Generator().manual_seed(11)
    D, K, H, N, B = 32, 256, 300, 20000, 64
    W = torch.randn(D, K, H, generator=g).to(DEV)
    codes = torch.randint(0, K, (N, D), generator=g).to(torch.uint8).to(DEV)
    x = torch.randn(B, H, generator=g).to(DEV)
    target = torch.randint(0, N, (B,), generator=g).to(DEV)
    target[3] = -100
    w1, x1 = W.clone().requires_grad_(), x.clone().requires_grad_()
    got = code_softmax_cross_entropy(x1, w1, codes, target, chunk=8192)
    got.backward()
    w2, x2 = W.clone().requires_grad_(), x.clone().requires_grad_()
    items = F.normalize(code_bag_ref(w2, codes), dim=1)
    want = F.cross_entropy(F.normalize(x2, dim=1) @ items.t() / 0.07, target, ignore_index=-100)
    want.backward()
    assert_close(got, want, rtol=1e-4, atol=1e-4, name="loss")
    assert_close(x1.grad, x2.grad, rtol=1e-3, atol=1e-5, name="d seq_out")
    assert_close(w1.grad, w2.grad, rtol=1e-3, atol=1e-6, name="d W")
