"""The GPU kernels of the fused cross-entropy op (vqrec_fast/ops/softmax_ce_gpu.py).

Their math is device-agnostic PyTorch around a log-sum-exp kernel, so on the CPU it is checked
against the dense formulation with the reference lse and with Triton's lse under the
interpreter (small shapes, several chunks); on a CUDA machine the public
``code_softmax_cross_entropy`` is checked for every GPU backend.
"""
from __future__ import annotations

import pytest
import torch

from triton_device import DEVICE, HAS_CUDA
import vqrec_fast
import vqrec_fast.cuda as vcuda
from vqrec_fast.ops import softmax_ce as ops_ce
from vqrec_fast.ops import softmax_ce_gpu as gpu_ce
from vqrec_fast.reference.code_bag import code_bag_ref


def _data(B, D, K, H, N, seed=0, extra=False):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, generator=g, dtype=torch.float64)
    W = torch.randn(D, K, H, generator=g, dtype=torch.float64) * 0.1
    codes = torch.randint(0, K, (N, D), generator=g).to(torch.uint8)
    target = torch.randint(0, N, (B,), generator=g)
    target[1] = -1  # ignored
    x = torch.randint(0, K, (B, D), generator=g).to(torch.uint8) if extra else None
    return q, W, codes, target, x


def _dense(q, W, codes, target, x, t, normalize):
    rows = ops_ce._rows_from_dense(q, W, codes, target, x, t, normalize, code_bag_ref)
    return rows


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("extra", [False, True])
def test_forward_and_backward_match_dense(normalize, extra):
    """float32 kernels against the dense formulation evaluated in float64 on the same data."""
    q, W, codes, target, x = _data(6, 4, 16, 12, 700, extra=extra)
    t = 0.2
    want_rows = _dense(q, W, codes, target, x, t, normalize)
    q32, W32 = q.float(), W.float()
    rows, lse, alpha, lut = gpu_ce.ce_forward(q32, W32, codes, target, x, t, normalize, gpu_ce.lse_dense)
    assert torch.allclose(rows.double(), want_rows, rtol=1e-5, atol=1e-6)
    assert lut.shape == (6, 4 * 16) and alpha.shape == (700,)
    g = torch.rand(6, dtype=torch.float64)
    qq, WW = q.clone().requires_grad_(), W.clone().requires_grad_()
    dq_want, dW_want = torch.autograd.grad(_dense(qq, WW, codes, target, x, t, normalize), (qq, WW), g)
    dq, dW = gpu_ce.ce_backward(g.float(), q32, W32, codes, target, x, lse, t, normalize, chunk=128)  # 6 chunks
    for got, want in ((dq, dq_want), (dW, dW_want)):
        assert torch.allclose(got.double(), want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))
    assert torch.equal(dq[1], torch.zeros_like(dq[1]))  # row 1 is ignored

    # A probability kernel (the CUDA ADC scan's contract) gives the same gradients.
    q_hat = torch.nn.functional.normalize(q32, dim=1) if normalize else q32
    e = code_bag_ref(W32, codes)
    e_hat = torch.nn.functional.normalize(e, dim=1) if normalize else e
    seen = []

    def probs(a, b, wgt):
        seen.append((a, b))
        return torch.exp(q_hat @ e_hat[a:b].T / t - lse[:, None]) * wgt[:, None]

    dq2, dW2 = gpu_ce.ce_backward(g.float(), q32, W32, codes, target, x, lse, t, normalize, chunk=300, probs=probs)
    assert seen == [(0, 300), (300, 600), (600, 700)]
    assert torch.allclose(dq2, dq, rtol=1e-5, atol=1e-6) and torch.allclose(dW2, dW, rtol=1e-5, atol=1e-6)


def test_chunk_bounds_the_probability_block():
    assert gpu_ce.chunk_for(2048, 1_000_000) * 2048 * 4 <= 256 << 20
    assert gpu_ce.chunk_for(4, 500) == 500
    assert gpu_ce.chunk_for(1 << 20, 10_000) == 1024


def test_triton_lse_matches_dense_lse():
    from vqrec_fast.triton.softmax_ce import _lse_forward

    q, W, codes, _, _ = _data(5, 4, 16, 24, 300, seed=1)
    q, W = torch.nn.functional.normalize(q.float(), dim=1).to(DEVICE), W.float().to(DEVICE)
    got = _lse_forward(q, W, codes.to(DEVICE), 1 / 0.07, True, 128, "ieee")
    want = gpu_ce.lse_dense(q, W, codes.to(DEVICE), 1 / 0.07, True)
    assert torch.allclose(got.cpu(), want.cpu(), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- on a CUDA device


@pytest.mark.parametrize("backend", ["cuda", "triton", "reference"])
@pytest.mark.parametrize("extra", [False, True])
@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
def test_public_loss_on_cuda_matches_cpu(backend, extra):
    if backend == "cuda" and vcuda._C_cuda is None:
        pytest.skip("vqrec_fast._C_cuda was not built")
    q, W, codes, target, x = _data(64, 32, 256, 96, 30_000, seed=2, extra=extra)
    q, W = q.float(), W.float()

    def run(dev):
        qq = q.detach().to(dev, copy=True).requires_grad_()  # fresh leaves on every device
        WW = W.detach().to(dev, copy=True).requires_grad_()
        loss = vqrec_fast.code_softmax_cross_entropy(
            qq, WW, codes.to(dev), target.to(dev), ignore_index=-1,
            extra_codes=None if x is None else x.to(dev))
        loss.backward()
        return loss.detach().cpu(), qq.grad.cpu(), WW.grad.cpu()

    want = run("cpu")
    vcuda.set_gpu_backend(backend)
    try:
        got = run("cuda")
    finally:
        vcuda.set_gpu_backend("cuda")
    assert torch.allclose(got[0], want[0], rtol=1e-5), (got[0], want[0])
    for a, b in zip(got[1:], want[1:]):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max())), float((a - b).abs().max())
