"""The distinct-item path of the CUDA seq code bag (vqrec_fast/cuda/code_bag.py seq_forward /
seq_backward), checked on the CPU: its two launchers are swapped for their Triton twins (same
signatures and semantics, run by Triton's interpreter), so the composition itself is tested."""
from __future__ import annotations

import pytest
import torch

from triton_device import DEVICE
from tolerance import assert_close
import vqrec_fast.cuda.code_bag as ccb
from vqrec_fast.reference import code_bag as ref
from vqrec_fast.triton import code_bag as tcb


@pytest.fixture
def triton_launchers(monkeypatch):
    monkeypatch.setattr(ccb, "forward", tcb.code_bag_forward)
    monkeypatch.setattr(ccb, "backward", tcb.code_bag_backward)


@pytest.mark.parametrize("I", [6, 400])  # many repeats (distinct-item path) / few (direct path)
def test_seq_paths_match_reference(triton_launchers, I):
    D, K, H = 3, 10, 24
    g = torch.Generator().manual_seed(I)
    W = torch.randn(D, K, H, generator=g)
    item_codes = torch.randint(0, K, (I, D), generator=g).to(torch.uint8)
    ids = torch.randint(0, I, (4, 9), generator=g)
    ids[:, :2] = 0
    grad = torch.randn(4, 9, H, generator=g)
    dev = lambda t: t.to(DEVICE)  # noqa: E731
    out = ccb.seq_forward(dev(W), dev(item_codes), dev(ids))
    assert_close(out, ref.code_bag_seq_ref(W, item_codes, ids), rtol=1e-5, atol=1e-6, name="seq forward")
    gW = ccb.seq_backward(dev(grad), dev(item_codes), dev(ids), D, K)
    want = ref.code_bag_seq_backward_ref(grad, item_codes, ids, D, K)
    assert_close(gW, want, rtol=1e-5, atol=1e-5, name="seq backward")


def test_seq_empty_ids(triton_launchers):
    W = torch.randn(2, 3, 8, device=DEVICE)
    codes = torch.zeros(4, 2, dtype=torch.uint8, device=DEVICE)
    ids = torch.zeros(0, 5, dtype=torch.int64, device=DEVICE)
    assert ccb.seq_forward(W, codes, ids).shape == (0, 5, 8)
    gW = ccb.seq_backward(torch.zeros(0, 5, 8, device=DEVICE), codes, ids, 2, 3)
    assert bool((gW == 0).all())
