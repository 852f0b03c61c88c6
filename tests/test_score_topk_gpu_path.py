"""The GPU path of score_topk (vqrec_fast/ops/score_topk_gpu.py): candidate scan + exact re-rank.

On the CPU the candidate scan is the Triton kernel under the interpreter, so the re-rank,
exclusion and fallback logic is tested in CI; on a CUDA machine the public ``score_topk`` is
compared with the CPU result for every GPU backend.
"""
from __future__ import annotations

import importlib

import pytest
import torch

from topk_checks import check_against_reference, random_problem
from triton_device import DEVICE, HAS_CUDA
import vqrec_fast
import vqrec_fast.cuda as vcuda
st = importlib.import_module("vqrec_fast.ops.score_topk")  # the module (ops/__init__ exports the function)
from vqrec_fast.ops.score_topk_gpu import candidate_count, exact_scores, excluded_mask, topk_gpu, triton_scan


_data = random_problem
_check_against_ref = check_against_reference


def test_exact_scores_match_score_all():
    q, W, codes = _data(3, 4, 16, 20, 50)
    lut = st.query_luts(q, W)
    ids = torch.randint(0, 50, (3, 7))
    scale = torch.rand(50) + 0.5
    got = exact_scores(lut, codes, ids, scale)
    want = torch.gather(vqrec_fast.score_all(q, W, codes, item_scale=scale), 1, ids)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)


def test_exact_scores_are_bitwise_the_cpu_scans_scores():
    # Same LUT, same summation order (sub-spaces in turn, then * scale / D): the GPU path's
    # re-rank reproduces the CPU's exact scores bit for bit.
    q, W, codes = _data(7, 32, 256, 64, 20_000, seed=4)
    scale = torch.rand(20_000, generator=torch.Generator().manual_seed(5)) + 0.5
    for mode in ("exact", "quantized"):
        s, i = vqrec_fast.score_topk(q, W, codes, 20, item_scale=scale, mode=mode)
        assert torch.equal(exact_scores(st.query_luts(q, W), codes, i, scale), s), mode


def test_excluded_mask_marks_exactly_the_listed_ids():
    csr = st.exclusion_csr([[3, 1], [], [0, 9, 4]], 3, 10)
    ids = torch.tensor([[1, 2, 3], [1, 2, 3], [4, 5, 9]])
    want = torch.tensor([[True, False, True], [False, False, False], [True, False, True]])
    assert torch.equal(excluded_mask(ids, csr, 10), want)
    assert excluded_mask(ids, None, 10) is None


def test_candidate_count_caps_at_n():
    assert candidate_count(50, 0, 10_000) == 66
    assert candidate_count(50, 10, 60) == 60


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_topk_gpu_with_triton_scan_matches_reference(metric):
    q, W, codes = _data(5, 4, 16, 24, 400, seed=1)
    exclude = [[0, 1, 2], [], list(range(0, 400, 7)), [399], [5]]
    csr = st.exclusion_csr(exclude, 5, 400)
    scale = st.item_scales(W, codes) if metric == "cosine" else None
    qd, Wd, cd = q.to(DEVICE), W.to(DEVICE), codes.to(DEVICE)
    sd = None if scale is None else scale.to(DEVICE)
    got = topk_gpu(qd, Wd, cd, 10, sd, csr, metric, triton_scan, st.query_luts)
    assert got is not None
    _check_against_ref(q, W, codes, 10, *got, exclude=exclude, metric=metric)


def test_topk_gpu_declines_long_candidate_lists():
    q, W, codes = _data(2, 4, 16, 24, 1000)
    csr = st.exclusion_csr([list(range(300)), []], 2, 1000)
    assert topk_gpu(q.to(DEVICE), W.to(DEVICE), codes.to(DEVICE), 5, None, csr, "ip", triton_scan, st.query_luts) is None


def test_rows_with_too_few_admissible_items_end_in_minus_one():
    q, W, codes = _data(2, 4, 16, 24, 30)
    exclude = [list(range(27)), []]
    csr = st.exclusion_csr(exclude, 2, 30)
    s, i = topk_gpu(q.to(DEVICE), W.to(DEVICE), codes.to(DEVICE), 5, None, csr, "ip", triton_scan, st.query_luts)
    assert torch.equal(i[0, 3:].cpu(), torch.tensor([-1, -1])) and bool(torch.isneginf(s[0, 3:]).all())
    _check_against_ref(q, W, codes, 5, s, i, exclude=exclude)


# ----------------------------------------------------------------------------- on a CUDA device

needs_cuda = [pytest.mark.gpu, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")]


@pytest.mark.parametrize("backend", ["cuda", "triton", "reference"])
@pytest.mark.parametrize("metric", ["ip", "cosine"])
@pytest.mark.parametrize("mode", ["auto", "dense"])
@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
def test_public_score_topk_on_cuda_matches_cpu(backend, metric, mode):
    if backend == "cuda" and vcuda._C_cuda is None:
        pytest.skip("vqrec_fast._C_cuda was not built")
    q, W, codes = _data(37, 32, 256, 64, 20_000, seed=2)
    scale = torch.rand(20_000) + 0.5
    exclude = [torch.randint(0, 20_000, (b % 9,)) for b in range(37)]
    vcuda.set_gpu_backend(backend)
    try:
        s, i = vqrec_fast.score_topk(q.cuda(), W.cuda(), codes.cuda(), 50, item_scale=scale.cuda(),
                                     exclude=[e.cuda() for e in exclude], metric=metric, mode=mode)
    finally:
        vcuda.set_gpu_backend("cuda")
    assert s.is_cuda and i.is_cuda and i.dtype == torch.int64
    _check_against_ref(q, W, codes, 50, s, i, scale=scale, exclude=exclude, metric=metric)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
def test_cosine_default_scales_on_cuda_match_cpu():
    q, W, codes = _data(8, 32, 256, 64, 5000, seed=3)
    cpu = vqrec_fast.score_topk(q, W, codes, 20, metric="cosine")
    gpu = vqrec_fast.score_topk(q.cuda(), W.cuda(), codes.cuda(), 20, metric="cosine")
    assert torch.allclose(gpu[0].cpu(), cpu[0], rtol=1e-5, atol=1e-6)


def test_fp16_range_scale_is_a_power_of_two_fitting_fp16():
    from vqrec_fast.cuda.adc_topk import fp16_range_scale

    for m in (1e-6, 0.37, 1.0, 300.0, 1e5, 3e8):
        lut = torch.tensor([[m, -m / 2, 0.0]])
        c = fp16_range_scale(lut)
        assert c == 2.0 ** round(torch.log2(torch.tensor(c)).item())  # exact power of two
        assert 2.0**8 < m * c <= 2.0**9
        assert bool(torch.isfinite((lut * c * 64).half()).all())  # 64 entries of that size still fit fp16
    assert fp16_range_scale(torch.zeros(2, 3)) == 1.0
    assert fp16_range_scale(torch.tensor([float("inf")])) == 1.0
