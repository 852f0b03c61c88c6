"""The lane-chunk kernels behind the fused softmax cross-entropy's item norms and norm gradient
(``_C.code_bag_norms``, ``_C.code_bag_norm_grad``) against a float64 PyTorch reference, at
every SIMD level: H below, at and off the 16-lane chunks, D off the 4 accumulators, N over
two backward chunks (8192 items) and on both sides of the norms' small-catalogue path (12,000
items), int32 codes, N = 0; determinism across thread counts; the C++ argument checks."""
from __future__ import annotations

import pytest
import torch

from vqrec_fast import _validate as V
from vqrec_fast._native import _C, num_threads

from tolerance import assert_close

pytestmark = pytest.mark.skipif(_C is None, reason="native extension not built")


def _problem(N, D, K, H, seed=0, code_dtype=torch.uint8):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, K, H, generator=g)
    codes = torch.randint(0, K, (N, D), generator=g).to(code_dtype)
    gamma = torch.randn(N, generator=g)
    return W, codes, gamma


def _bags64(W, codes):
    D = W.shape[0]
    return W.double()[torch.arange(D), codes.long()].mean(dim=1)  # [N, H]


def _norms(W, codes):
    D, K, H = W.shape
    c, ct = V.native_code_tensor(codes)
    out = torch.empty(codes.shape[0])
    _C.code_bag_norms(W.data_ptr(), D, K, H, c.data_ptr(), ct, codes.shape[0], out.data_ptr(), num_threads())
    return out


def _norm_grad(W, codes, gamma, dW):
    D, K, H = W.shape
    c, ct = V.native_code_tensor(codes)
    _C.code_bag_norm_grad(W.data_ptr(), D, K, H, c.data_ptr(), ct, codes.shape[0], gamma.data_ptr(), dW.data_ptr(),
                          num_threads())
    return dW


def _norm_grad_ref(W, codes, gamma):
    """dW[d, k] = (1/D) sum over items with code k in sub-space d of gamma_n e_n (float64)."""
    D, K, H = W.shape
    rows = gamma.double()[:, None] * _bags64(W, codes) / D
    out = torch.zeros(D * K, H, dtype=torch.float64)
    out.index_add_(0, (codes.long() + torch.arange(D) * K).reshape(-1), rows.repeat_interleave(D, 0))
    return out.reshape(D, K, H)


SHAPES = [(1, 1, 1, 1), (7, 3, 5, 16), (9, 4, 8, 17), (100, 5, 16, 1), (17000, 5, 16, 19), (300, 32, 256, 300)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_norms_match_reference(simd_level, shape):
    W, codes, _ = _problem(*shape)
    want = _bags64(W, codes).norm(dim=1)
    assert_close(_norms(W, codes).double(), want, rtol=1e-6, atol=1e-7, name="norms")


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_norm_grad_accumulates_reference(simd_level, shape):
    W, codes, gamma = _problem(*shape, seed=1)
    start = torch.randn(W.shape, generator=torch.Generator().manual_seed(2))
    got = _norm_grad(W, codes, gamma, start.clone())
    want = start.double() + _norm_grad_ref(W, codes, gamma)
    assert_close(got.double(), want, rtol=0, atol=1e-5 * float(want.abs().max()), name="dW")


def test_int32_codes_and_empty_catalogue():
    W, codes, gamma = _problem(50, 4, 300, 20, code_dtype=torch.int32)
    assert_close(_norms(W, codes).double(), _bags64(W, codes).norm(dim=1), rtol=1e-6, atol=1e-7, name="norms")
    want = _norm_grad_ref(W, codes, gamma)
    assert_close(_norm_grad(W, codes, gamma, torch.zeros_like(W)).double(), want, rtol=0,
                 atol=1e-5 * float(want.abs().max()), name="dW")
    empty = torch.zeros(0, 4, dtype=torch.int32)
    assert _norms(W, empty).shape == (0,)
    dW = torch.ones_like(W)
    assert torch.equal(_norm_grad(W, empty, torch.zeros(0), dW), torch.ones_like(W))


@pytest.mark.parametrize("N", [9000, 13000])  # code-bag tiles below 12,000 items, lane chunks above
def test_bit_identical_across_thread_counts(N):
    W, codes, gamma = _problem(N, 6, 16, 40, seed=3)
    before = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append((_norms(W, codes), _norm_grad(W, codes, gamma, torch.zeros_like(W))))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


def test_cpp_checks_codes_and_shapes():
    W, codes, gamma = _problem(5, 2, 4, 3)
    bad = codes.clone()
    bad[3, 1] = 4
    with pytest.raises(ValueError, match=r"codes\[3, 1\] = 4 is outside"):
        _norms(W, bad)
    with pytest.raises(ValueError, match=r"codes\[3, 1\] = 4 is outside"):
        _norm_grad(W, bad, gamma, torch.zeros_like(W))
    with pytest.raises(ValueError, match="need D, K, H >= 1"):
        _C.code_bag_norms(W.data_ptr(), 2, 4, 0, codes.data_ptr(), "uint8", 5, 0, 1)
    with pytest.raises(ValueError, match="null pointer"):
        _C.code_bag_norm_grad(W.data_ptr(), 2, 4, 3, codes.data_ptr(), "uint8", 5, 0, 0, 1)


_NO_MEMORY_CHILD = """
import resource, sys
hard = resource.getrlimit(resource.RLIMIT_AS)[1]
cap = 16 << 30 if hard == resource.RLIM_INFINITY else min(16 << 30, hard)
resource.setrlimit(resource.RLIMIT_AS, (cap, hard))  # at most 16 GiB of address space
import torch
from vqrec_fast._native import _C
N, K = 12_000, 1 << 32  # per-thread table [D*K, 16] floats: 256 GiB
W = torch.zeros(4)
codes = torch.zeros(N, 1, dtype=torch.int32)
out = torch.empty(N)
try:
    _C.code_bag_norms(W.data_ptr(), 1, K, 3, codes.data_ptr(), "int32", N, out.data_ptr(), 2)
except MemoryError:
    print("MemoryError")
"""


def test_scratch_that_cannot_be_allocated_raises_memory_error():
    # Per-thread tables are allocated before the parallel region (and before W is read): one
    # that cannot be had must reach Python as MemoryError, not end the process. The child caps
    # its address space so the allocation fails on any machine; 12,000 items take the lane path.
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", _NO_MEMORY_CHILD], capture_output=True, text=True, cwd=repo,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("MemoryError")


def test_thread_count_is_bounded():
    W, codes, gamma = _problem(5, 2, 4, 3)
    out = torch.empty(5)
    for bad in (0, 5000):
        with pytest.raises(ValueError, match=r"nthreads must be in \[1, 4096\], got " + str(bad)):
            _C.code_bag_norms(W.data_ptr(), 2, 4, 3, codes.data_ptr(), "uint8", 5, out.data_ptr(), bad)


def test_too_many_subspaces_for_the_bucket_offsets():
    W, codes, gamma = _problem(3, 2, 4, 3)
    D = (1 << 16) + 1
    with pytest.raises(ValueError, match=r"need D <= 65536 sub-spaces, got D=65537"):
        _C.code_bag_norm_grad(W.data_ptr(), D, 4, 3, codes.data_ptr(), "uint8", 3, gamma.data_ptr(), W.data_ptr(), 1)
