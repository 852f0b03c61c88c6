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


def _problem(seed, B, D=32, K=256, H=300, N=20000):
    """W [D, K, H], uint8 codes [N, D], seq_out [B, H], target [B] on the GPU."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, K, H, generator=g).to(DEV)
    codes = torch.randint(0, K, (N, D), generator=g).to(torch.uint8).to(DEV)
    x = torch.randn(B, H, generator=g).to(DEV)
    target = torch.randint(0, N, (B,), generator=g).to(DEV)
    return W, codes, x, target


def test_fused_loss_matches_dense_on_gpu():
    pytest.importorskip("triton")
    from vqrec_fast.triton.softmax_ce import code_softmax_cross_entropy

    W, codes, x, target = _problem(11, B=64)
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


@pytest.mark.parametrize("D,K,H,N,normalize", [(32, 256, 300, 30000, True), (5, 16, 24, 777, False)])
def test_cuda_adc_logsumexp_matches_dense(D, K, H, N, normalize):
    import vqrec_fast.cuda as vcuda

    if vcuda._C_cuda is None:
        pytest.skip("vqrec_fast._C_cuda was not built")
    from vqrec_fast.cuda.softmax_ce import lse_adc_cuda

    g = torch.Generator().manual_seed(D + N)
    W = (torch.randn(D, K, H, generator=g) * (1.0 if normalize else 0.05)).to(DEV)
    codes = torch.randint(0, K, (N, D), generator=g).to(torch.uint8).to(DEV)
    q = torch.randn(13, H, generator=g).to(DEV)  # 13: not a multiple of the 4-query groups
    items = code_bag_ref(W, codes)
    qq = q
    if normalize:
        qq, items = F.normalize(q, dim=1), F.normalize(items, dim=1)
    want = torch.logsumexp(qq @ items.t() / 0.07, dim=1)
    got = lse_adc_cuda(qq, W, codes, 1 / 0.07, normalize)
    assert_close(got, want, rtol=1e-5, atol=2e-4, name="lse")
    if normalize:  # the caller's precomputed 1 / |e_n| gives the same result
        inv = 1.0 / code_bag_ref(W, codes).norm(dim=1).clamp_min(1e-12)
        assert_close(lse_adc_cuda(qq, W, codes, 1 / 0.07, True, inv_norms=inv), want, rtol=1e-5, atol=2e-4,
                     name="lse with inv_norms")


def test_fused_loss_with_cuda_adc_forward():
    import vqrec_fast.cuda as vcuda

    if vcuda._C_cuda is None:
        pytest.skip("vqrec_fast._C_cuda was not built")
    pytest.importorskip("triton")
    from vqrec_fast.triton.softmax_ce import code_softmax_cross_entropy

    W, codes, x, target = _problem(12, B=32)
    a = code_softmax_cross_entropy(x, W, codes, target, lse_kernel="cuda_adc")
    b = code_softmax_cross_entropy(x, W, codes, target, lse_kernel="triton")
    assert_close(a, b, rtol=1e-5, atol=2e-4, name="loss cuda_adc vs triton")


@pytest.mark.parametrize("D,K,H,C,B,normalize", [(32, 256, 300, 10000, 13, True), (5, 16, 24, 777, 6, False)])
def test_cuda_adc_probabilities_match_dense(D, K, H, C, B, normalize):
    """softmax_ce_probs: exp(logit - lse) * wgt for a chunk of items, B not a multiple of 4."""
    import vqrec_fast.cuda as vcuda

    if vcuda._C_cuda is None:
        pytest.skip("vqrec_fast._C_cuda was not built")
    from vqrec_fast.cuda.softmax_ce import backward_lut, probs_adc_cuda

    g = torch.Generator().manual_seed(D + C)
    W = torch.randn(D, K, H, generator=g).to(DEV) * 0.3
    codes = torch.randint(0, K, (C + 50, D), generator=g).to(torch.uint8).to(DEV)
    q = F.normalize(torch.randn(B, H, generator=g), dim=1).to(DEV)
    items = code_bag_ref(W, codes)
    inv = 1.0 / items.norm(dim=1).clamp_min(1e-12) if normalize else None
    e = F.normalize(items, dim=1) if normalize else items
    t = 0.07
    logits = q @ e.t() / t
    lse = torch.logsumexp(logits, dim=1)
    wgt = torch.rand(B, generator=g).to(DEV)
    lut = q @ W.reshape(D * K, H).t()  # the op's saved LUT
    # The chunk starts at item 50 (codes and scales are sliced, as the backward does).
    got = probs_adc_cuda(backward_lut(lut, D, K, 1 / t), codes[50:], None if inv is None else inv[50:], lse, wgt, B)
    want = torch.exp(logits[:, 50:] - lse[:, None]) * wgt[:, None]
    assert got.shape == (B, C)
    assert_close(got, want, rtol=1e-4, atol=1e-7, name="probabilities")
