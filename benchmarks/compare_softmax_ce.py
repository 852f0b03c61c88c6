"""Side-by-side timing and peak memory of the fused softmax cross-entropy vs the dense form.

  python benchmarks/compare_softmax_ce.py [--reps 5] [--B 2048] [--N 4386 25987] [--big 1000000]

For each N: loss forward+backward (grads of seq_out and W) of
  fused: vqrec_fast.code_softmax_cross_entropy
  dense: vqrec_fast.ops.softmax_ce.dense_code_softmax_cross_entropy (native code bag, [B, N]
         logits, F.cross_entropy)
in one process, medians after a warm-up, results checked against each other first. Peak extra
memory is measured in a fresh subprocess per (method, N): peak RSS (VmHWM) during one
forward+backward minus RSS just before it. --big N runs the fused form only (the dense form
would need ~3 * B * N * 4 bytes: 24 GB at N = 1e6).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import torch

import vqrec_fast as vf
from vqrec_fast.ops.softmax_ce import dense_code_softmax_cross_entropy

from compare_code_bag import timeit  # median after one warm-up

D, K, H = 32, 256, 300
METHODS = {"fused": vf.code_softmax_cross_entropy, "dense": dense_code_softmax_cross_entropy}


def inputs(B: int, N: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, K, H, generator=g) * 0.02
    q = torch.randn(B, H, generator=g)
    codes = torch.randint(0, K, (N, D), generator=g, dtype=torch.uint8)
    target = torch.randint(0, N, (B,), generator=g)
    return q, W, codes, target


def step(fn, q, W, codes, target):
    q = q.detach().requires_grad_(True)
    W = W.detach().requires_grad_(True)
    loss = fn(q, W, codes, target)
    loss.backward()
    return loss.detach(), q.grad, W.grad


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """VmHWM: this process image's peak RSS. (ru_maxrss is no good here: Linux carries it over
    fork + exec, so a child would report the parent's RSS.)"""
    with open("/proc/self/status") as f:
        kb = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    return kb * 1024


def one_memory_run(method: str, B: int, N: int) -> None:
    """Child process: prints {"peak_extra_mb": ..., "seconds": ...} for one forward+backward."""
    step(METHODS[method], *inputs(64, 100))  # library start-up (thread pools, BLAS buffers) is not ours
    args = inputs(B, N)
    before = rss_bytes()
    t = time.perf_counter()
    step(METHODS[method], *args)
    seconds = time.perf_counter() - t
    peak = peak_rss_bytes()
    print(json.dumps({"peak_extra_mb": (peak - before) / 2**20, "seconds": seconds}))


def memory_of(method: str, B: int, N: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", method, "--B", str(B), "--N", str(N)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--B", type=int, default=2048)
    ap.add_argument("--N", type=int, nargs="*", default=[4386, 25987])
    ap.add_argument("--big", type=int, nargs="*", default=[1_000_000])
    ap.add_argument("--memory-child", choices=sorted(METHODS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        one_memory_run(args.memory_child, args.B, args.N[0])
        return

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    print(f"# machine: {cpu}, {torch.get_num_threads()} threads, SIMD level {vf.simd_level()}, torch {torch.__version__}")
    print(f"# B={args.B} D={D} K={K} H={H}, temperature 0.07, normalize, reduction mean; forward+backward")
    print("\n| N | dense median s | fused median s | fused is x faster | dense peak extra MiB | fused peak extra MiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for N in args.N:
        x = inputs(args.B, N)
        got, want = step(METHODS["fused"], *x), step(METHODS["dense"], *x)
        torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=0)
        for a, b in zip(got[1:], want[1:]):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-4 * float(b.abs().max()))
        t_f = timeit(lambda: step(METHODS["fused"], *x), args.reps)
        t_d = timeit(lambda: step(METHODS["dense"], *x), args.reps)
        del x
        m_d, m_f = memory_of("dense", args.B, N), memory_of("fused", args.B, N)
        print(f"| {N:,} | {t_d:.3f} | {t_f:.3f} | {t_d / t_f:.2f} | {m_d['peak_extra_mb']:.0f} | {m_f['peak_extra_mb']:.0f} |",
              flush=True)
    for N in args.big:
        m = memory_of("fused", args.B, N)
        print(f"| {N:,} | (not run: ~{3 * args.B * N * 4 / 2**30:.0f} GiB) | {m['seconds']:.2f} (one cold run) | — | — | "
              f"{m['peak_extra_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
