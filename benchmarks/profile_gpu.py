"""Kernel-level profile of the GPU paths (torch.profiler), to see where the time of each op goes.

Prints, per op, the CUDA kernels sorted by device time over a few iterations at the shapes of
benchmarks/bench_gpu.py. Usage (on a GPU machine): python3 benchmarks/profile_gpu.py [--only bag,adc,ce]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import vqrec_fast as vf  # noqa: E402
from vqrec_fast.ops.code_bag import _code_bag_seq  # noqa: E402

DEV = torch.device("cuda")


def show(name: str, fn, iters: int = 3, rows: int = 14) -> None:
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
    print(f"\n##### {name} ({iters} iterations)", flush=True)
    print(prof.key_averages().table(sort_by="self_device_time_total", row_limit=rows, max_name_column_width=60),
          flush=True)


def bag() -> None:
    B, L, D, K, H, I = 2048, 50, 32, 256, 300, 30000
    g = torch.Generator(device=DEV).manual_seed(0)
    W = (torch.randn(D, K, H, device=DEV, generator=g) * 0.02).requires_grad_()
    item_codes = torch.randint(0, K, (I, D), device=DEV, generator=g).to(torch.uint8)
    ids = torch.randint(1, I, (B, L), device=DEV, generator=g)
    ids[:, :10] = 0
    grad = torch.randn(B, L, H, device=DEV, generator=g)
    flat_idx = (item_codes[ids.reshape(-1)].long() + torch.arange(D, device=DEV) * K).contiguous()
    mask = (ids.reshape(-1, 1) != 0).float()

    def ours():
        W.grad = None
        _code_bag_seq(W, item_codes, ids).backward(grad)

    def baseline():
        W.grad = None
        (F.embedding_bag(flat_idx, W.reshape(D * K, H), mode="mean") * mask).backward(grad.reshape(-1, H))

    show("code bag fwd+bwd (ours, cuda)", ours)
    show("embedding_bag fwd+bwd", baseline)


def adc() -> None:
    B, N, D, K, H, k = 256, 10_000_000, 32, 256, 300, 50
    g = torch.Generator(device=DEV).manual_seed(1)
    W = torch.randn(D, K, H, device=DEV, generator=g) * 0.02
    codes = torch.randint(0, K, (N, D), device=DEV, generator=g).to(torch.uint8)
    q = torch.randn(B, H, device=DEV, generator=g)
    show("score_topk public (N=10M)", lambda: vf.score_topk(q, W, codes, k), iters=2)


def ce() -> None:
    from bench_gpu import ce_problem  # same problem as the benchmark

    W, codes, x, target = ce_problem(2048, 1_000_000, 300)

    def fused():
        W.grad = x.grad = None
        vf.code_softmax_cross_entropy(x, W, codes, target).backward()

    def dense():
        W.grad = x.grad = None
        vf.dense_code_softmax_cross_entropy(x, W, codes, target).backward()

    show("fused CE (cuda backend)", fused, iters=2, rows=18)
    show("dense CE", dense, iters=2)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="bag,adc,ce")
    a = p.parse_args()
    for name, fn in (("bag", bag), ("adc", adc), ("ce", ce)):
        if name in a.only.split(","):
            fn()
            torch.cuda.empty_cache()
