"""Triton ADC top-k (vqrec_fast/triton/adc_topk.py) against brute-force scores of the item matrix."""
from __future__ import annotations

import pytest
import torch

from triton_device import DEVICE
from tolerance import assert_close
from vqrec_fast import _adc
from vqrec_fast.triton.adc_topk import adc_topk


def _data(B, D, K, H, N, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, H, generator=g),
        torch.randn(D, K, H, generator=g),
        torch.randint(0, K, (N, D), generator=g).to(torch.uint8),
        torch.rand(N, generator=g) + 0.5,
    )


@pytest.mark.parametrize("metric", ["ip", "cosine"])
@pytest.mark.parametrize("use_scale", [False, True])
def test_topk_matches_bruteforce(metric, use_scale):
    q, W, codes, scale = _data(5, 4, 16, 24, 301)
    s_arg = scale if use_scale else None
    # chunk < N exercises the running merge across chunks.
    s_dev = scale.to(DEVICE) if use_scale else None
    s, i = adc_topk(q.to(DEVICE), W.to(DEVICE), codes.to(DEVICE), 7, s_dev, metric, chunk=128)
    dense = _adc.dense_scores(q, W, codes, s_arg, metric)
    want, _ = dense.topk(7, dim=1)
    # Ties: compare scores, and check each returned id really has the returned score.
    assert_close(s, want, rtol=1e-5, atol=1e-5, name="top-k scores")
    assert_close(torch.gather(dense, 1, i.cpu()), s, rtol=1e-5, atol=1e-5, name="scores of returned ids")
    assert bool((s[:, :-1] >= s[:, 1:]).all()), "scores must be sorted best first"


def test_chunk_not_a_multiple_of_the_tile():
    # N = 100 items in one chunk of 100 columns: the second 64-item tile overhangs the buffer.
    q, W, codes, _ = _data(3, 2, 8, 16, 100, seed=4)
    s, i = adc_topk(q.to(DEVICE), W.to(DEVICE), codes.to(DEVICE), 5)
    want, _ = _adc.dense_scores(q, W, codes, None, "ip").topk(5, dim=1)
    assert_close(s, want, rtol=1e-5, atol=1e-5, name="top-k scores")


def test_k_equals_n_and_argument_errors():
    q, W, codes, _ = _data(2, 2, 4, 8, 6, seed=3)
    s, i = adc_topk(q.to(DEVICE), W.to(DEVICE), codes.to(DEVICE), 6)
    assert sorted(i[0].tolist()) == list(range(6))
    with pytest.raises(ValueError, match="k=7 exceeds"):
        adc_topk(q, W, codes, 7)
    with pytest.raises(ValueError, match="metric"):
        adc_topk(q, W, codes, 2, metric="l2")
    with pytest.raises(ValueError, match="queries has H=3"):
        adc_topk(q[:, :3], W, codes, 2)
    with pytest.raises(TypeError, match="uint8"):
        adc_topk(q, W, codes.to(torch.int32), 2)
