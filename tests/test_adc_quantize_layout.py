"""The uint8 tables of the CUDA candidate scans (vqrec_fast/cuda/adc_candidates.py), on the CPU:
the layout the kernels address, the error bound their windows rely on, and the two-pass top-k's
host logic run through the kernels' PyTorch references."""
from __future__ import annotations

import importlib

import pytest
import torch

from topk_checks import check_against_reference, random_problem
import vqrec_fast
from vqrec_fast.cuda import adc_candidates as ac
from vqrec_fast.cuda.adc_candidates import QUERIES_PER_BLOCK, quantize_luts, table_sums
from vqrec_fast.ops import score_topk_gpu as sg

st = importlib.import_module("vqrec_fast.ops.score_topk")  # the module (ops/__init__ exports the function)


def _luts(B, D, K, H=48, seed=0, scale=0.1):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, generator=g)
    W = torch.randn(D, K, H, generator=g) * scale
    return (q @ W.reshape(D * K, H).t()).reshape(B, D, K) / D, g


def _exact(lut, codes):
    B, D, K = lut.shape
    N = codes.shape[0]
    flat = (codes.long() + torch.arange(D) * K)[None].expand(B, N, D)
    return torch.gather(lut.reshape(B, 1, D * K).expand(B, N, D * K), 2, flat).sum(-1)


@pytest.mark.parametrize("B,D,K,bits", [(37, 32, 256, 8), (5, 16, 100, 8), (16, 8, 3, 8), (17, 32, 256, 7)])
def test_estimate_within_bound_through_kernel_layout(B, D, K, bits):
    lut, g = _luts(B, D, K, seed=B + D)
    codes = torch.randint(0, K, (4000, D), generator=g).to(torch.uint8)
    qt = quantize_luts(lut, bits)
    G = -(-B // QUERIES_PER_BLOCK)
    assert qt.table.shape == (G, D // 8, 256, 8, QUERIES_PER_BLOCK) and qt.table.dtype == torch.uint8
    assert int(qt.table.max()) <= (255 if bits == 8 else 127)
    U = table_sums(qt.table, codes, B)  # read through the kernel's byte-address formula
    est = qt.off[:B, None] + qt.step[:B, None] * U
    dev = (_exact(lut, codes) - est).abs()
    assert bool((dev <= qt.err[:B, None]).all()), float((dev / qt.err[:B, None]).max())
    # The bound is not loose by orders of magnitude: the worst item gets within 10x of it.
    assert float((dev / qt.err[:B, None]).max()) > 0.1


def test_layout_puts_each_entry_where_the_kernel_reads_it():
    B, D, K = 18, 16, 256
    lut, _ = _luts(B, D, K, seed=3)
    qt = quantize_luts(lut, 8)
    u = torch.round((lut - lut.amin(2, keepdim=True)) / qt.step[:B, None, None]).clamp(0, 255)
    for b, d, c in [(0, 0, 0), (17, 15, 255), (5, 9, 77), (16, 8, 1)]:
        flat = qt.table[b // 16].reshape(-1)
        addr = (d // 8) * 32768 + c * 128 + (d % 8) * 16 + b % 16
        assert int(flat[addr]) == int(u[b, d, c])


def test_constant_tables_and_rounding_ties():
    # A query whose entries are all equal (span 0) and entries exactly between two steps.
    lut = torch.zeros(2, 8, 4)
    lut[1, :, 1] = 1.0
    lut[1, :, 2] = 0.5 / 255  # halfway between steps 0 and 1 of 1/255
    codes = torch.tensor([[0] * 8, [1] * 8, [2] * 8, [3] * 8], dtype=torch.uint8)
    qt = quantize_luts(lut, 8)
    est = qt.off[:2, None] + qt.step[:2, None] * table_sums(qt.table, codes, 2)
    assert bool(((_exact(lut, codes) - est).abs() <= qt.err[:2, None]).all())
    assert float(qt.step[0]) == 1.0 and bool((est[0] == 0).all())


def test_bad_arguments():
    with pytest.raises(ValueError, match="bits"):
        quantize_luts(torch.zeros(1, 8, 4), 6)
    with pytest.raises(ValueError, match="D in"):
        quantize_luts(torch.zeros(1, 24, 4), 8)
    with pytest.raises(ValueError, match="K <= 256"):
        quantize_luts(torch.zeros(1, 8, 300), 8)


# ----------------------------------------------------------------------------- the two-pass host logic
# topk_gpu_quantized on CPU tensors with the kernels' PyTorch references in their place: the
# sample bound, the threshold pass, the exclusions and the re-rank run in CI (the kernels
# themselves run in tests/test_cuda_adc_candidates.py on a GPU).


@pytest.fixture
def reference_kernels(monkeypatch):
    monkeypatch.setattr(ac, "supported", lambda D, K, kk, codes: D in ac.SUPPORTED_D and K <= 256 and kk <= 64)
    monkeypatch.setattr(ac, "candidate_ids", ac.candidate_ids_reference)
    monkeypatch.setattr(ac, "threshold_ids", ac.threshold_ids_reference)
    monkeypatch.setattr(sg, "SAMPLE", 1500)


@pytest.mark.parametrize("two_pass", [False, True])
@pytest.mark.parametrize("metric,use_scale,n_ex", [("ip", False, 0), ("cosine", True, 7), ("ip", True, 3)])
def test_two_pass_host_logic_with_reference_kernels(reference_kernels, two_pass, metric, use_scale, n_ex):
    q, W, codes = random_problem(9, 16, 64, 24, 6000, seed=21)
    g = torch.Generator().manual_seed(22)
    scale = torch.rand(6000, generator=g) + 0.5 if use_scale else None
    exclude = [torch.randint(0, 6000, (n_ex,), generator=g) for _ in range(9)] if n_ex else None
    csr = st.exclusion_csr(exclude, 9, 6000)
    sc = st.item_scales(W, codes) if metric == "cosine" and scale is None else scale
    got = sg.topk_gpu_quantized(q, W, codes, 20, sc, csr, metric, st.query_luts,
                                two_pass_from=2000 if two_pass else 1 << 40)
    assert got is not None
    s, i, fallback = got
    assert not bool(fallback.any())
    check_against_reference(q, W, codes, 20, s, i, scale, exclude, metric)


def test_reference_candidates_hold_the_exact_top_kk():
    q, W, codes = random_problem(6, 32, 256, 24, 3000, seed=23)
    lut = st.query_luts(q, W)
    cand, _ = ac.candidate_ids_reference(lut / 32, codes, 25, None)
    exact = vqrec_fast.score_all(q, W, codes)
    kth = exact.topk(25, dim=1).values[:, -1:]
    for b in range(6):
        need = set((exact[b] >= kth[b]).nonzero().flatten().tolist())
        assert need <= set(cand[b].tolist())
