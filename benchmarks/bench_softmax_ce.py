"""pytest-benchmark suite for the fused softmax cross-entropy (run: pytest benchmarks/bench_softmax_ce.py).

One group per catalogue size: loss forward+backward of the fused op and of the dense PyTorch
form on the same inputs (B=2048, D=32, K=256, H=300); the fused result is checked against the
dense one before timing. The side-by-side ratios and peak memory are in compare_softmax_ce.py.
"""
from __future__ import annotations

import pytest
import torch

from compare_softmax_ce import METHODS, inputs, step

B = 2048
SIZES = [4386, 25987]


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"N={n}")
def problem(request):
    x = inputs(B, request.param)
    got, want = step(METHODS["fused"], *x), step(METHODS["dense"], *x)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=0)
    for a, b in zip(got[1:], want[1:]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4 * float(b.abs().max()))
    return request.param, x


@pytest.mark.parametrize("method", sorted(METHODS))
def test_softmax_ce_fwd_bwd(benchmark, problem, method):
    N, x = problem
    benchmark.group = f"softmax CE fwd+bwd B={B} N={N}"
    benchmark.pedantic(step, args=(METHODS[method], *x), rounds=3, warmup_rounds=1)
