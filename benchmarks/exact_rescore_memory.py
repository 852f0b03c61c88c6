"""Time and peak RSS growth of one exact re-score of candidates (vqrec_fast/ops/score_topk_gpu.py
``exact_scores``, the last step of score_topk's GPU path), on the CPU.

Usage: python3 benchmarks/exact_rescore_memory.py [--B 256] [--C 5000]
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vqrec_fast.ops.score_topk_gpu import exact_scores  # noqa: E402

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--B", type=int, default=256, help="queries")
p.add_argument("--C", type=int, default=5000, help="candidates per query")
a = p.parse_args()
torch.manual_seed(0)
D, K, N = 32, 256, 1_000_000
lut = torch.randn(a.B, D, K)
codes = torch.randint(0, K, (N, D), dtype=torch.uint8)
ids = torch.randint(0, N, (a.B, a.C))
exact_scores(lut[:2], codes, ids[:2, :10], None)  # warm-up
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
s = exact_scores(lut, codes, ids, None)
dt = time.perf_counter() - t
r1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"B={a.B}, C={a.C}, D={D}: {dt * 1e3:.0f} ms, peak RSS growth {(r1 - r0) / 1024:.0f} MiB "
      f"(checksum {float(s.double().sum()):.6f})")
