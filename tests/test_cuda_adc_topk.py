"""CUDA ADC top-k (fp16 LUT in shared memory) against brute-force fp32 scores."""
from __future__ import annotations

import pytest
import torch

from cuda_device import needs_cuda_kernels
from vqrec_fast import _adc
from vqrec_fast.cuda import score_topk_cuda

pytestmark = needs_cuda_kernels
DEV = torch.device("cuda")


def _data(B, D, K, H, N, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, generator=g)
    W = torch.randn(D, K, H, generator=g) * 0.1
    codes = torch.randint(0, K, (N, D), generator=g).to(torch.uint8)
    scale = torch.rand(N, generator=g) + 0.5
    return q, W, codes, scale


def _check(q, W, codes, scale, k, metric, s, i, rel=2.0**-10):
    """Returned scores ~ the true top-k scores, within the fp16 rounding bound (rel of the sum of
    |LUT| entries: 2^-10 for fp16 entries summed in fp32, 2^-7 when 16 at a time are summed in
    fp16 first)."""
    dense = _adc.dense_scores(q, W, codes, scale, metric)
    lut, sc = _adc.prepare(q, W, codes, scale, metric)
    D = W.shape[0]
    mag = lut.abs()[:, torch.arange(D), codes.long()].sum(-1)  # [B, N]: sum_d |LUT| per item
    if sc is not None:
        mag = mag * sc
    tol = (mag.max(dim=1).values * rel + 1e-6)[:, None]
    want, _ = dense.topk(k, dim=1)
    s, i = s.cpu(), i.cpu()
    assert s.shape == (q.shape[0], k) and i.dtype == torch.int64
    assert bool((i >= 0).all() and (i < codes.shape[0]).all()), "ids out of range"
    assert bool(((s - want).abs() <= tol).all()), f"scores off by {(s - want).abs().max():.3g} > tol"
    true_of_ids = torch.gather(dense, 1, i)
    assert bool(((true_of_ids - s).abs() <= tol).all()), "returned score does not belong to returned id"
    assert bool((s[:, :-1] >= s[:, 1:]).all()), "not sorted best first"
    for row in i:
        assert len(set(row.tolist())) == k, "duplicate ids"


@pytest.mark.parametrize(
    "B,D,K,H,N,k,metric,use_scale",
    [
        (13, 32, 256, 300, 5000, 50, "ip", False),  # D % 16 == 0: vector code loads; B % 8 != 0
        (8, 5, 16, 24, 777, 1, "ip", True),  # scalar code loads, k = 1
        (9, 32, 256, 64, 3001, 256, "cosine", False),  # the largest k the kernel supports
        (3, 16, 100, 40, 20000, 10, "cosine", True),
        (8, 32, 256, 32, 5000, 96, "ip", False),  # the largest k of the barrier-free (per-warp) kernel
        (8, 32, 256, 32, 5000, 97, "ip", True),  # the smallest k of the block-buffer kernel
    ],
)
def test_topk_matches_bruteforce(B, D, K, H, N, k, metric, use_scale):
    q, W, codes, scale = _data(B, D, K, H, N, seed=B + N)
    sc = scale if use_scale else None
    s, i = score_topk_cuda(q.to(DEV), W.to(DEV), codes.to(DEV), k, None if sc is None else sc.to(DEV), metric)
    _check(q, W, codes, sc, k, metric, s, i)


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_half_sums_within_their_bound(metric):
    q, W, codes, scale = _data(13, 32, 256, 300, 20000, seed=11)
    s, i = score_topk_cuda(q.to(DEV), W.to(DEV), codes.to(DEV), 50, scale.to(DEV), metric, half_sums=True)
    _check(q, W, codes, scale, 50, metric, s, i, rel=2.0**-7)


def test_huge_queries_do_not_overflow_fp16():
    q, W, codes, _ = _data(8, 32, 256, 64, 3000, seed=12)
    q = q * 1e6  # LUT entries ~1e5, beyond fp16's 65504 unless scaled first
    for half in (False, True):
        s, i = score_topk_cuda(q.to(DEV), W.to(DEV), codes.to(DEV), 10, half_sums=half)
        assert bool(torch.isfinite(s).all())
        _check(q, W, codes, None, 10, "ip", s, i, rel=2.0**-7 if half else 2.0**-10)


def test_many_splits_including_empty_ones():
    q, W, codes, _ = _data(8, 32, 256, 32, 1000, seed=5)
    # 64 splits of 16 items: the last splits are empty and must contribute nothing.
    s, i = score_topk_cuda(q.to(DEV), W.to(DEV), codes.to(DEV), 20, splits=64)
    _check(q, W, codes, None, 20, "ip", s, i)


def test_agrees_with_triton():
    pytest.importorskip("triton")
    from vqrec_fast.triton.adc_topk import adc_topk

    q, W, codes, _ = _data(16, 32, 256, 300, 50000, seed=6)
    q, W, codes = q.to(DEV), W.to(DEV), codes.to(DEV)
    s1, _ = score_topk_cuda(q, W, codes, 50)
    s2, _ = adc_topk(q, W, codes, 50)
    assert (s1 - s2).abs().max().item() < 2e-3 * s2.abs().max().item()


def test_k_too_large_is_a_value_error():
    q, W, codes, _ = _data(2, 4, 8, 16, 400, seed=7)
    with pytest.raises(ValueError, match="k must be in"):
        score_topk_cuda(q.to(DEV), W.to(DEV), codes.to(DEV), 300)
