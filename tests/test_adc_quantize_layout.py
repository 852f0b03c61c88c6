"""The uint8 tables of the CUDA candidate scan (vqrec_fast/cuda/adc_candidates.py), on the CPU:
the layout the kernel addresses and the error bound its candidate window relies on."""
from __future__ import annotations

import pytest
import torch

from vqrec_fast.cuda.adc_candidates import QUERIES_PER_BLOCK, quantize_luts, table_sums


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
