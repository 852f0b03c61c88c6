"""Triton code bag (vqrec_fast/triton/code_bag.py) against the pure-PyTorch reference."""
from __future__ import annotations

import pytest
import torch

from triton_device import DEVICE
from tolerance import assert_close
from vqrec_fast.reference import code_bag as ref
from vqrec_fast.triton import code_bag as tcb

# Odd sizes on purpose: H not a multiple of the block, K not a power of two, D > 1 and D = 1.
SHAPES = [(3, 5, 37, 11), (1, 7, 16, 4), (4, 256, 20, 9)]


@pytest.mark.parametrize("D,K,H,N", SHAPES)
@pytest.mark.parametrize("code_dtype", [torch.uint8, torch.int64])
def test_forward_backward_match_reference(D, K, H, N, code_dtype):
    g = torch.Generator().manual_seed(D * 1000 + K)
    W = torch.randn(D, K, H, generator=g)
    codes = torch.randint(0, K, (N, D), generator=g).to(code_dtype)
    grad = torch.randn(N, H, generator=g)
    out = tcb.code_bag_forward(W.to(DEVICE), codes.to(DEVICE))
    assert_close(out, ref.code_bag_ref(W, codes), rtol=1e-5, atol=1e-6, name="forward")
    gW = tcb.code_bag_backward(grad.to(DEVICE), codes.to(DEVICE), D, K)
    assert_close(gW, ref.code_bag_backward_ref(grad, codes, D, K), rtol=1e-5, atol=1e-6, name="backward")


def test_seq_padding_rows_are_zero_and_get_no_gradient():
    D, K, H, I = 4, 9, 33, 12
    g = torch.Generator().manual_seed(1)
    W = torch.randn(D, K, H, generator=g)
    item_codes = torch.randint(0, K, (I, D), generator=g).to(torch.uint8)
    ids = torch.tensor([[0, 3, 11, 0], [5, 5, 0, 1], [0, 0, 0, 0]])
    grad = torch.randn(3, 4, H, generator=g)
    out = tcb.code_bag_forward(W.to(DEVICE), item_codes.to(DEVICE), ids.to(DEVICE)).reshape(3, 4, H)
    assert_close(out, ref.code_bag_seq_ref(W, item_codes, ids), rtol=1e-5, atol=1e-6, name="seq forward")
    assert bool((out[ids.to(DEVICE) == 0] == 0).all())
    gW = tcb.code_bag_backward(grad.to(DEVICE), item_codes.to(DEVICE), D, K, ids.to(DEVICE))
    want = ref.code_bag_seq_backward_ref(grad, item_codes, ids, D, K)
    assert_close(gW, want, rtol=1e-5, atol=1e-6, name="seq backward")


def test_backward_is_deterministic_with_hot_rows():
    # Every item shares code 0 in sub-space 0: one very hot row, summed in a fixed order.
    D, K, H, N = 2, 4, 24, 200
    g = torch.Generator().manual_seed(2)
    codes = torch.randint(0, K, (N, D), generator=g).to(torch.uint8)
    codes[:, 0] = 0
    grad = torch.randn(N, H, generator=g).to(DEVICE)
    a = tcb.code_bag_backward(grad, codes.to(DEVICE), D, K)
    b = tcb.code_bag_backward(grad, codes.to(DEVICE), D, K)
    assert torch.equal(a, b)
    assert_close(a, ref.code_bag_backward_ref(grad.cpu(), codes, D, K), rtol=1e-5, atol=1e-5, name="hot row")


def test_empty_inputs():
    W = torch.randn(2, 3, 8, device=DEVICE)
    codes = torch.zeros(0, 2, dtype=torch.uint8, device=DEVICE)
    assert tcb.code_bag_forward(W, codes).shape == (0, 8)
    gW = tcb.code_bag_backward(torch.zeros(0, 8, device=DEVICE), codes, 2, 3)
    assert gW.shape == (2, 3, 8) and bool((gW == 0).all())
