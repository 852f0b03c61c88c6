"""Launches GPU ADC kernels after warm-up, for Nsight Compute to profile (stall reasons, pipes).

  --kernel fp16 (default): the fp16 ADC top-k (fp32 and fp16 partial sums) and the CE
      log-sum-exp scan, once each after three warm-up launches;
  --kernel candidates: the uint8 list kernel (adc_candidates.cu) with 2 and then 4 items per
      lane, after two warm-up launches.
Shapes: B=256 queries, N=1,000,000 items, D=32, K=256, H=300, k=50.

Usage on a GPU machine:
  ncu -k regex:'adc_topk_kernel|ce_lse_kernel' --launch-skip 3 --section SpeedOfLight \\
      --section WarpStateStats --section ComputeWorkloadAnalysis python3 benchmarks/ncu_adc.py
  ncu -k regex:adc_candidates_kernel --launch-skip 2 --section SpeedOfLight --section WarpStateStats \\
      --section ComputeWorkloadAnalysis python3 benchmarks/ncu_adc.py --kernel candidates
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vqrec_fast.cuda as vcuda  # noqa: E402
from vqrec_fast.cuda.adc_candidates import candidate_ids  # noqa: E402
from vqrec_fast.cuda.softmax_ce import lse_adc_cuda  # noqa: E402
from vqrec_fast.ops.score_topk import query_luts  # noqa: E402

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--kernel", choices=("fp16", "candidates"), default="fp16")
kernel = p.parse_args().kernel

dev = torch.device("cuda")
g = torch.Generator(device=dev).manual_seed(0)
D, K, H, N = 32, 256, 300, 1_000_000
W = torch.randn(D, K, H, device=dev, generator=g) * 0.02
codes = torch.randint(0, K, (N, D), device=dev, generator=g).to(torch.uint8)
q = torch.randn(256, H, device=dev, generator=g)
if kernel == "fp16":
    for half in (False, True, False):  # warm-up launches (skipped by --launch-skip 3)
        vcuda.score_topk_cuda(q, W, codes, 50, half_sums=half)
    vcuda.score_topk_cuda(q, W, codes, 50, half_sums=False)
    vcuda.score_topk_cuda(q, W, codes, 50, half_sums=True)
    lse_adc_cuda(torch.nn.functional.normalize(q, dim=1), W, codes, 1 / 0.07, False)
else:
    lut = query_luts(q, W) / D
    for items in (2, 4, 2, 4):  # the first two are warm-up launches (skipped by --launch-skip 2)
        cand, fallback = candidate_ids(lut, codes, 50, None, items=items)
        torch.cuda.synchronize()
        print(f"items {items}: candidates <= {cand.shape[1]}, fallback rows {int(fallback.sum())}")
torch.cuda.synchronize()
print("done")
