"""CUDA code bag kernels, through the public ops (autograd), against the CPU reference."""
from __future__ import annotations

import pytest
import torch

from cuda_device import needs_cuda_kernels
from tolerance import assert_close
import vqrec_fast as vf
import vqrec_fast.cuda as vcuda
from vqrec_fast.reference import code_bag as ref

pytestmark = needs_cuda_kernels
DEV = torch.device("cuda")


@pytest.fixture(params=["cuda", "triton"])
def backend(request):
    if request.param == "triton":
        pytest.importorskip("triton")
    before = vcuda._backend
    vcuda.set_gpu_backend(request.param)
    yield request.param
    vcuda.set_gpu_backend(before)


# (D, K, H, N): the training shape's D, K, H; H = 37 takes the scalar (non-float4) path.
@pytest.mark.parametrize("D,K,H,N", [(32, 256, 300, 1000), (3, 5, 37, 11), (1, 7, 16, 4)])
@pytest.mark.parametrize("code_dtype", [torch.uint8, torch.int64])
def test_code_bag_forward_backward(backend, D, K, H, N, code_dtype):
    g = torch.Generator().manual_seed(N)
    W = torch.randn(D, K, H, generator=g)
    codes = torch.randint(0, K, (N, D), generator=g).to(code_dtype)
    grad = torch.randn(N, H, generator=g)
    Wd = W.to(DEV).requires_grad_()
    out = vf.code_bag(Wd, codes.to(DEV))
    out.backward(grad.to(DEV))
    assert_close(out, ref.code_bag_ref(W, codes), rtol=1e-5, atol=1e-5, name=f"{backend} forward")
    assert_close(Wd.grad, ref.code_bag_backward_ref(grad, codes, D, K), rtol=1e-4, atol=1e-5, name=f"{backend} dW")


@pytest.mark.parametrize("I", [500, 100000])  # repeated ids (distinct-item path) / nearly all distinct
def test_code_bag_seq_padding(backend, I):
    D, K, H = 32, 256, 300
    g = torch.Generator().manual_seed(3)
    W = torch.randn(D, K, H, generator=g)
    item_codes = torch.randint(0, K, (I, D), generator=g).to(torch.uint8)
    ids = torch.randint(0, I, (8, 50), generator=g)
    ids[:, :10] = 0  # left padding, as in training batches
    grad = torch.randn(8, 50, H, generator=g)
    Wd = W.to(DEV).requires_grad_()
    out = vf.code_bag_seq(Wd, item_codes.to(DEV), ids.to(DEV))
    out.backward(grad.to(DEV))
    assert_close(out, ref.code_bag_seq_ref(W, item_codes, ids), rtol=1e-5, atol=1e-5, name="seq forward")
    assert bool((out[:, :10] == 0).all())
    want = ref.code_bag_seq_backward_ref(grad, item_codes, ids, D, K)
    assert_close(Wd.grad, want, rtol=1e-4, atol=1e-5, name="seq dW")


def test_backward_bit_identical_across_runs_with_hot_rows():
    D, K, H, N = 32, 256, 300, 20000
    g = torch.Generator().manual_seed(4)
    codes = torch.randint(0, K, (N, D), generator=g).to(torch.uint8)
    codes[:, 0] = 7  # one very hot row
    codes = codes.to(DEV)
    grad = torch.randn(N, H, generator=g).to(DEV)
    a = vcuda.code_bag.backward(grad, codes, D, K)
    b = vcuda.code_bag.backward(grad, codes, D, K)
    assert torch.equal(a, b)
    assert_close(a, ref.code_bag_backward_ref(grad.cpu(), codes.cpu(), D, K), rtol=1e-4, atol=1e-4, name="hot dW")


def test_unaligned_W_uses_scalar_path():
    D, K, H, N = 2, 3, 8, 5
    base = torch.randn(D * K * H + 1, device=DEV)
    W = base[1:].view(D, K, H)  # 4-byte offset: not 16-byte aligned
    codes = torch.randint(0, K, (N, D), dtype=torch.uint8, device=DEV)
    assert_close(vcuda.code_bag.forward(W, codes), ref.code_bag_ref(W.cpu(), codes.cpu()), rtol=1e-6, atol=1e-6)


def test_cuda_and_triton_backends_agree():
    pytest.importorskip("triton")
    from vqrec_fast.triton import code_bag as tcb

    D, K, H, N = 32, 256, 300, 3000
    W = torch.randn(D, K, H, device=DEV)
    codes = torch.randint(0, K, (N, D), dtype=torch.uint8, device=DEV)
    grad = torch.randn(N, H, device=DEV)
    assert_close(vcuda.code_bag.forward(W, codes), tcb.code_bag_forward(W, codes), rtol=1e-5, atol=1e-5)
    # Both sum each (d, k) row in increasing row order: expected equal up to fp32 rounding order
    # inside vector lanes (identical in practice).
    assert_close(vcuda.code_bag.backward(grad, codes, D, K), tcb.code_bag_backward(grad, codes, D, K),
                 rtol=1e-5, atol=1e-5)
