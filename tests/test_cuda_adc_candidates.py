"""CUDA uint8 candidate scan (csrc/cuda/adc_candidates.cu) + exact re-rank: the exact top-k."""
from __future__ import annotations

import importlib

import pytest
import torch

from cuda_device import needs_cuda_kernels
from topk_checks import check_against_reference, random_problem
import vqrec_fast
from vqrec_fast.cuda import adc_candidates as ac
from vqrec_fast.ops.score_topk_gpu import topk_gpu_quantized

st = importlib.import_module("vqrec_fast.ops.score_topk")  # the module (ops/__init__ exports the function)

pytestmark = needs_cuda_kernels
DEV = torch.device("cuda")


_data = random_problem
_check = check_against_reference


def _run(q, W, codes, k, scale=None, exclude=None, metric="ip", bits=8, items=2, two_pass_from=1 << 40):
    csr = st.exclusion_csr(exclude, q.shape[0], codes.shape[0])
    if metric == "cosine" and scale is None:
        scale = st.item_scales(W, codes)
    got = topk_gpu_quantized(q.to(DEV), W.to(DEV), codes.to(DEV), k, None if scale is None else scale.to(DEV), csr,
                             metric, st.query_luts, bits=bits, items=items, two_pass_from=two_pass_from)
    assert got is not None
    return got


@pytest.mark.parametrize(
    "B,D,K,N,k,metric,use_scale,bits",
    [
        (13, 32, 256, 50_000, 50, "ip", False, 8),
        (37, 32, 256, 20_000, 10, "cosine", False, 8),
        (1, 32, 256, 100_000, 64, "ip", True, 8),
        (16, 16, 100, 30_000, 20, "ip", True, 8),
        (5, 8, 7, 3_000, 1, "cosine", True, 8),
        (20, 32, 256, 40_000, 50, "ip", False, 7),
        (3, 32, 256, 70, 64, "ip", False, 8),  # N barely above k: most items are candidates
    ],
)
def test_quantized_topk_matches_reference(B, D, K, N, k, metric, use_scale, bits):
    q, W, codes = _data(B, D, K, 40, N, seed=B * 7 + N)
    scale = torch.rand(N) + 0.5 if use_scale else None
    s, i, fallback = _run(q, W, codes, k, scale, metric=metric, bits=bits)
    assert not bool(fallback.any()), "random data should not overflow the candidate lists"
    _check(q, W, codes, k, s, i, scale, metric=metric)


def test_candidates_hold_every_item_that_reaches_the_kth_score():
    q, W, codes = _data(21, 32, 256, 40, 60_000, seed=4)
    lut = st.query_luts(q, W) / 32
    cand, fallback = ac.candidate_ids(lut.to(DEV), codes.to(DEV), 30, None)
    exact = vqrec_fast.score_all(q, W, codes)
    kth = exact.topk(30, dim=1).values[:, -1:]
    cand = cand.cpu()
    for b in range(21):
        need = set((exact[b] >= kth[b]).nonzero().flatten().tolist())
        assert need <= set(cand[b].tolist()), f"query {b} misses {sorted(need - set(cand[b].tolist()))[:5]}"
    assert not bool(fallback.any())


def test_exclusions_and_rows_with_too_few_items():
    q, W, codes = _data(4, 16, 64, 40, 60, seed=5)  # k + the longest exclusion list <= 64
    exclude = [list(range(0, 60, 3)), [], list(range(57)), [7]]
    s, i, fallback = _run(q, W, codes, 12, exclude=exclude)
    assert not bool(fallback.any())
    _check(q, W, codes, 12, s, i, exclude=exclude)
    assert torch.equal(i[2, 3:].cpu(), torch.full((9,), -1)) and bool(torch.isneginf(s[2, 3:]).all())
    for b, ex in enumerate(exclude):
        assert not set(i[b].tolist()) & set(ex)


def test_ties_overflow_into_the_fallback_and_stay_exact():
    # All items score the same: every list overflows; the public op answers those rows densely.
    q, W, codes = _data(3, 32, 256, 40, 20_000, seed=6)
    W0 = torch.zeros_like(W)
    _, _, fallback = _run(q, W0, codes, 10)
    assert bool(fallback.all())
    s, i = vqrec_fast.score_topk(q.to(DEV), W0.to(DEV), codes.to(DEV), 10)
    _check(q, W0, codes, 10, s, i)


def test_duplicated_items_at_the_top():
    # 3,000 copies of one item among random ones: the top-k is a block of exact ties.
    q, W, codes = _data(5, 32, 256, 40, 30_000, seed=7)
    best = vqrec_fast.score_all(q[:1], W, codes).argmax()
    codes[torch.randperm(30_000)[:3000]] = codes[best].clone()
    s, i = vqrec_fast.score_topk(q.to(DEV), W.to(DEV), codes.to(DEV), 40)
    _check(q, W, codes, 40, s, i)


def test_items_sorted_by_score_land_in_one_split():
    # The best items all arrive in the first steps of one block: its lists may overflow (then
    # the row is recomputed densely); the answer is exact either way.
    q, W, codes = _data(2, 32, 256, 40, 80_000, seed=8)
    order = vqrec_fast.score_all(q[:1], W, codes)[0].argsort(descending=True)
    codes = codes[order].contiguous()
    s, i = vqrec_fast.score_topk(q.to(DEV), W.to(DEV), codes.to(DEV), 50)
    _check(q, W, codes, 50, s, i)


@pytest.mark.parametrize("items", [1, 2, 4])
def test_every_items_per_lane_variant_is_exact(items):
    q, W, codes = _data(19, 32, 256, 40, 45_000, seed=11)
    s, i, fallback = _run(q, W, codes, 30, items=items)
    assert not bool(fallback.any())
    _check(q, W, codes, 30, s, i)


def test_many_splits_including_empty_ones():
    q, W, codes = _data(3, 32, 256, 40, 3000, seed=9)
    lut = (st.query_luts(q, W) / 32).to(DEV)
    cand, fallback = ac.candidate_ids(lut, codes.to(DEV), 10, None, splits=400)
    exact = vqrec_fast.score_all(q, W, codes)
    top = exact.topk(10, dim=1).indices
    for b in range(3):
        assert set(top[b].tolist()) <= set(cand[b].cpu().tolist())


def test_kernel_rejects_bad_arguments():
    q, W, codes = _data(2, 32, 256, 40, 1000, seed=10)
    lut = (st.query_luts(q, W) / 32).to(DEV)
    with pytest.raises(ValueError, match="kk must be in"):
        ac.candidate_ids(lut, codes.to(DEV), 65, None)
    assert not ac.supported(24, 256, 10, codes[:, :24].contiguous().to(DEV))
    assert not ac.supported(32, 256, 65, codes.to(DEV))
    assert ac.supported(32, 256, 64, codes.to(DEV))


@pytest.mark.parametrize("metric,use_scale,k,n_ex", [("ip", False, 50, 0), ("cosine", True, 20, 9)])
def test_two_pass_sample_bound_then_threshold_scan(metric, use_scale, k, n_ex):
    # 200,000 items: the list kernel scans the first 131,072, the threshold kernel the rest.
    q, W, codes = _data(20, 32, 256, 40, 200_000, seed=12)
    scale = torch.rand(200_000) + 0.5 if use_scale else None
    exclude = [torch.randint(0, 200_000, (n_ex,)) for _ in range(20)] if n_ex else None
    s, i, fallback = _run(q, W, codes, k, scale, exclude, metric, two_pass_from=150_000)
    assert not bool(fallback.any())
    _check(q, W, codes, k, s, i, scale, exclude, metric)


def test_two_pass_with_a_poor_sample_stays_exact():
    # Worst items first: the sample's bound is low, the threshold buffers overflow, and the
    # public op answers those rows densely.
    q, W, codes = _data(3, 32, 256, 40, 400_000, seed=13)
    order = vqrec_fast.score_all(q[:1], W, codes)[0].argsort()
    codes = codes[order].contiguous()
    s, i = vqrec_fast.score_topk(q.to(DEV), W.to(DEV), codes.to(DEV), 50)
    _check(q, W, codes, 50, s, i)


def test_threshold_kernel_returns_exactly_the_items_above_the_bound():
    q, W, codes = _data(5, 16, 256, 40, 30_000, seed=14)
    lut = st.query_luts(q.to(DEV), W.to(DEV))
    tables = ac.quantize_luts(lut / 16)
    exact = vqrec_fast.score_all(q, W, codes)
    tau = exact.topk(200, dim=1).values[:, -1]
    ids, over = ac.threshold_ids(tables, 5, codes.to(DEV), 1000, None, 1.0, tau.to(DEV))
    assert not bool(over.any())
    ids = ids.cpu()
    for b in range(5):
        got = set(ids[b][ids[b] >= 0].tolist())
        need = set((exact[b, 1000:] >= tau[b]).nonzero().flatten().add(1000).tolist())
        assert need <= got, f"query {b} misses {sorted(need - got)[:5]}"
        assert min(got) >= 1000
        # and nothing far below the bound: every returned item is within the error bound of tau
        err = float(tables.err[b].cpu())
        assert bool((exact[b, sorted(got)] >= tau[b] - 2 * err - 1e-6).all())


# ----------------------------------------------------------------------------- kernels vs references
# The kernels' outputs against their PyTorch references (vqrec_fast/cuda/adc_candidates.py), up to
# float rounding at the window's edge (the kernels fuse multiply and add).


def _edge_tol(est):
    return 1e-5 * est.abs().amax(1, keepdim=True) + 1e-12


def test_list_kernel_agrees_with_its_reference():
    q, W, codes = _data(20, 32, 256, 40, 30_000, seed=15)
    lut = st.query_luts(q.to(DEV), W.to(DEV)) / 32
    codes = codes.to(DEV)
    tables = ac.quantize_luts(lut)
    cand, fallback = ac.candidate_ids(lut, codes, 40, None, tables=tables, s_max=1.0)
    assert not bool(fallback.any())
    est = ac.estimates(tables, 20, codes, None)
    win = 2.0 * (1.0 + 2.0**-20) * tables.err[:20, None]
    bound = est.topk(40, dim=1).values[:, -1:] - win
    tol = _edge_tol(est)
    cand, est, bound, tol = cand.cpu(), est.cpu(), bound.cpu(), tol.cpu()
    for b in range(20):
        got = set(cand[b][cand[b] >= 0].tolist())
        must = set((est[b] >= bound[b] + tol[b]).nonzero().flatten().tolist())
        may = set((est[b] >= bound[b] - tol[b]).nonzero().flatten().tolist())
        assert must <= got <= may, f"query {b}: {len(must - got)} missing, {len(got - may)} extra"


def test_threshold_kernel_agrees_with_its_reference():
    q, W, codes = _data(7, 32, 256, 40, 40_000, seed=16)
    lut = st.query_luts(q.to(DEV), W.to(DEV)) / 32
    codes = codes.to(DEV)
    tables = ac.quantize_luts(lut)
    tau = vqrec_fast.score_all(q, W, codes.cpu()).topk(300, dim=1).values[:, -1].to(DEV)
    ids, over = ac.threshold_ids(tables, 7, codes, 5000, None, 1.0, tau)
    assert not bool(over.any())
    est = ac.estimates(tables, 7, codes, None)
    thr = (tau - (1.0 + 2.0**-20) * tables.err[:7])[:, None]
    tol = _edge_tol(est)
    ids, est, thr, tol = ids.cpu(), est.cpu(), thr.cpu(), tol.cpu()
    for b in range(7):
        got = set(ids[b][ids[b] >= 0].tolist())
        must = {n for n in (est[b] >= thr[b] + tol[b]).nonzero().flatten().tolist() if n >= 5000}
        may = {n for n in (est[b] >= thr[b] - tol[b]).nonzero().flatten().tolist() if n >= 5000}
        assert must <= got <= may, f"query {b}: {len(must - got)} missing, {len(got - may)} extra"
