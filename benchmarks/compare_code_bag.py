"""Side-by-side timing of the code bag (one process; medians after a warm-up).

  python benchmarks/compare_code_bag.py [--reps 5] [--skip-paper]

Training shape: forward+backward at B=2048, L=50, D=32, K=256, H=300 (history lengths from
Scientific.train.inter) against (a) the paper's gather+mean and (b) embedding_bag with the same
padding. Catalogue shape: forward of N=1,000,000 items against embedding_bag. Outputs and
gradients are checked against each other inside the benchmark. Ours and embedding_bag run
round-robin (one call each per repetition) so that both see the same background load, or back
to back with --sequential.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

import vqrec_fast as vf
from code_bag_workload import B, D, H, K, L, paper_codes, paper_flat, seq_embedding_bag, seq_ours, seq_paper, training_batch


def timeit(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def timeit_interleaved(fns, reps, sequential=False):
    """Medians of each fn, run round-robin after one warm-up each, so that on a shared machine
    the contenders see the same background load (the ratios are what count). sequential=True
    times each fn's repetitions back to back instead."""
    if sequential:
        return [timeit(fn, reps) for fn in fns]
    for fn in fns:
        fn()
    ts = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            ts[i].append(time.perf_counter() - t)
    return [statistics.median(x) for x in ts]


def fwd_bwd(f, table, codes, ids, grad):
    table = table.detach().requires_grad_(True)
    out = f(table, codes, ids)
    out.backward(grad)
    return out.detach(), table.grad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--skip-paper", action="store_true", help="skip (a), which needs ~8 GB and seconds per step")
    ap.add_argument("--catalog", type=int, default=1_000_000)
    ap.add_argument("--sequential", action="store_true",
                    help="time each contender's repetitions back to back instead of round-robin")
    args = ap.parse_args()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    print(f"# machine: {cpu}, {torch.get_num_threads()} threads, SIMD level {vf.simd_level()}, torch {torch.__version__}")

    W, item_codes, ids, src = training_batch()
    Wflat, pcodes = paper_flat(W), paper_codes(item_codes)
    real = int((ids != 0).sum())
    print(f"# training shape B={B} L={L} D={D} K={K} H={H}; lengths from {src}; real tokens {real} of {B * L}")
    grad = torch.randn(B, L, H) * (ids != 0).unsqueeze(-1)

    o_ours, g_ours = fwd_bwd(seq_ours, W, item_codes, ids, grad)
    o_eb, g_eb = fwd_bwd(seq_embedding_bag, Wflat, pcodes, ids, grad)
    torch.testing.assert_close(o_ours, o_eb, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_ours, g_eb.reshape(D, K + 1, H)[:, 1:], rtol=1e-4, atol=1e-5)

    t_ours, t_eb = timeit_interleaved(
        [lambda: fwd_bwd(seq_ours, W, item_codes, ids, grad), lambda: fwd_bwd(seq_embedding_bag, Wflat, pcodes, ids, grad)],
        args.reps,
        args.sequential,
    )
    rows = [("vqrec_fast.code_bag_seq", t_ours), ("(b) embedding_bag mean, padding_idx=0", t_eb)]
    if not args.skip_paper:
        o_p, g_p = fwd_bwd(seq_paper, Wflat, pcodes, ids, grad)
        torch.testing.assert_close(o_ours, o_p, rtol=1e-5, atol=1e-6)
        del o_p, g_p
        rows.append(("(a) paper: embedding(codes).mean(-2)", timeit(lambda: fwd_bwd(seq_paper, Wflat, pcodes, ids, grad), max(2, args.reps // 2))))
    print("\n| training step, forward+backward | median s | ours is x faster |")
    print("| --- | --- | --- |")
    for name, t in rows:
        print(f"| {name} | {t:.4f} | {t / t_ours:.1f} |")

    # catalogue forward
    N = args.catalog
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, K, (N, D), generator=g, dtype=torch.uint8)
    flat_idx = codes.long() + torch.arange(D) * K
    Wf = W.reshape(D * K, H)
    offs = torch.arange(D) * K
    ours = lambda: vf.code_bag(W, codes)
    eb = lambda: F.embedding_bag(flat_idx, Wf, mode="mean")
    # What a caller holding the compact uint8 codes must do per call without caching the
    # int64 flat indices (which cost 8x the codes' memory: 256 MB at N=1e6).
    eb_codes = lambda: F.embedding_bag(codes.long() + offs, Wf, mode="mean")
    # Batch inference that reuses one output buffer (code_bag(..., out=)): no fresh memory to
    # fault in per call. Reported beside, not instead of, the fresh-output comparison.
    buf = torch.empty(N, H)
    ours_out = lambda: vf.code_bag(W, codes, out=buf)
    torch.testing.assert_close(ours(), eb(), rtol=1e-5, atol=1e-6)
    assert torch.equal(ours_out(), ours())
    t_c, t_e, t_ec, t_o = timeit_interleaved([ours, eb, eb_codes, ours_out], args.reps, args.sequential)
    print(f"\n| catalogue forward, N={N:,} | median s | ours is x faster |")
    print("| --- | --- | --- |")
    print(f"| vqrec_fast.code_bag (uint8 codes) | {t_c:.4f} | 1.0 |")
    print(f"| embedding_bag mean, int64 flat indices precomputed (+{flat_idx.numel() * 8 / 2**20:.0f} MiB) | {t_e:.4f} | {t_e / t_c:.1f} |")
    print(f"| embedding_bag mean, indices built from the uint8 codes per call | {t_ec:.4f} | {t_ec / t_c:.1f} |")
    print(f"| vqrec_fast.code_bag(..., out=buffer reused across calls) | {t_o:.4f} | "
          f"{t_e / t_o:.1f} vs embedding_bag (int64 held) |")


if __name__ == "__main__":
    main()
