"""Launches the CUDA ADC top-k (fp32 and fp16 partial sums) and the CE log-sum-exp scan once each
after a warm-up, for Nsight Compute to profile (stall reasons, pipe utilisation).

Usage on a GPU machine:
  ncu -k regex:'adc_topk_kernel|ce_lse_kernel' --launch-skip 3 --section SpeedOfLight \\
      --section WarpStateStats --section ComputeWorkloadAnalysis python3 benchmarks/ncu_adc.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vqrec_fast.cuda as vcuda  # noqa: E402
from vqrec_fast.cuda.softmax_ce import lse_adc_cuda  # noqa: E402

dev = torch.device("cuda")
g = torch.Generator(device=dev).manual_seed(0)
D, K, H, N = 32, 256, 300, 1_000_000
W = torch.randn(D, K, H, device=dev, generator=g) * 0.02
codes = torch.randint(0, K, (N, D), device=dev, generator=g).to(torch.uint8)
q = torch.randn(256, H, device=dev, generator=g)
for half in (False, True, False):  # warm-up launches (skipped by --launch-skip 3)
    vcuda.score_topk_cuda(q, W, codes, 50, half_sums=half)
vcuda.score_topk_cuda(q, W, codes, 50, half_sums=False)
vcuda.score_topk_cuda(q, W, codes, 50, half_sums=True)
lse_adc_cuda(torch.nn.functional.normalize(q, dim=1), W, codes, 1 / 0.07, False)
torch.cuda.synchronize()
print("done")
