"""pytest-benchmark suite for ADC top-k scoring (run: pytest benchmarks/bench_score_topk.py).

Cosine top-50 of B=256 queries over N=200,000 random code-composed items (D=32, K=256, H=300),
against the PyTorch composition with the item matrix precomputed (whole and in item chunks); plus the small-catalogue
evaluation shape (B=2,048 users over the 4,386 items of the Scientific data set). Results are
checked against the PyTorch answer before timing. The 1e6-item comparison with faiss lives in
compare_score_topk.py (too slow for a pytest run)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import vqrec_fast as vf

D, K, H, B, TOPK = 32, 256, 300, 256, 50


def _catalogue(N, B, seed):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, K, H, generator=g) * 0.05
    codes = torch.randint(0, K, (N, D), generator=g, dtype=torch.uint8)
    q = torch.randn(B, H, generator=g)
    items = F.normalize(F.embedding_bag(codes.long() + torch.arange(D) * K, W.reshape(D * K, H), mode="mean"), dim=1)
    return W, codes, q, items


def _torch_topk(q, items):
    return torch.topk(F.normalize(q, dim=1) @ items.t(), TOPK, dim=1)


@pytest.fixture(scope="module")
def large():
    W, codes, q, items = _catalogue(200_000, B, 0)
    return vf.CodeIndex(W, codes), q, items


@pytest.mark.benchmark(group="score_topk cosine B=256 N=200k k=50")
def test_large_ours(benchmark, large):
    index, q, items = large
    s, _ = benchmark(index.search, q, TOPK)
    torch.testing.assert_close(s, _torch_topk(q, items).values, rtol=0, atol=1e-5)


@pytest.mark.benchmark(group="score_topk cosine B=256 N=200k k=50")
@pytest.mark.parametrize("level", ["avx2", "scalar"])
def test_large_ours_lower_simd_level(benchmark, large, level):
    # what a machine without AVX-512 VBMI runs (the query-major uint8 scan)
    if level not in vf.available_simd_levels():
        pytest.skip(f"{level} is not available here")
    index, q, items = large
    with vf.simd_level_context(level):
        s, _ = benchmark(index.search, q, TOPK)
    torch.testing.assert_close(s, _torch_topk(q, items).values, rtol=0, atol=1e-5)


@pytest.mark.benchmark(group="score_topk cosine B=256 N=200k k=50")
def test_large_torch_precomputed(benchmark, large):
    _, q, items = large
    benchmark(_torch_topk, q, items)


@pytest.mark.benchmark(group="score_topk cosine B=256 N=200k k=50")
def test_large_torch_precomputed_chunked(benchmark, large):
    # the faster PyTorch form: item chunks of 16,384, one reused score buffer (compare_score_topk.py)
    from compare_score_topk import chunked_topk

    _, q, items = large
    s, _ = benchmark(chunked_topk, q, TOPK, items.shape[0], lambda a, b: items[a:b])
    torch.testing.assert_close(s, _torch_topk(q, items).values, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def evaluation():
    W, codes, q, items = _catalogue(4_386, 2_048, 1)
    return W, codes, q, items


@pytest.mark.benchmark(group="score_topk cosine B=2048 N=4386 k=50 (evaluation)")
def test_eval_ours(benchmark, evaluation):
    W, codes, q, items = evaluation
    s, _ = benchmark(vf.score_topk, q, W, codes, TOPK, metric="cosine")
    torch.testing.assert_close(s, _torch_topk(q, items).values, rtol=0, atol=1e-5)


@pytest.mark.benchmark(group="score_topk cosine B=2048 N=4386 k=50 (evaluation)")
def test_eval_torch(benchmark, evaluation):
    W, codes, q, _ = evaluation
    flat = codes.long() + torch.arange(D) * K

    def torch_eval():
        items = F.normalize(F.embedding_bag(flat, W.reshape(D * K, H), mode="mean"), dim=1)
        return _torch_topk(q, items)

    benchmark(torch_eval)
