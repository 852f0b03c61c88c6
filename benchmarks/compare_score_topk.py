"""Side-by-side timing of full-catalogue top-k scoring, in one process (ratios are what count).

  python3 benchmarks/compare_score_topk.py --B 256 --N 1000000 --k 50

Contenders, all for cosine scores of B queries against N code-composed items
(D sub-spaces of K codes, H dims), item_n = (1/D) * sum_d W[d, codes[n, d]]:
  vqrec_fast       CodeIndex.search: LUT GEMM + native ADC scan (item scales precomputed)
  vqrec_fast+norms score_topk(metric="cosine") recomputing the item scales in the call
  torch_pre        (a) item matrix normalised once beforehand; per call normalize + matmul + topk
  torch_fly        (b) per call embedding_bag + normalize + matmul + topk
  faiss_rq         (c) faiss IndexResidualQuantizer (inner product, same codebooks W / D,
                   ST_LUT_nonorm: one LUT GEMM + code scan); compared with vqrec_fast metric="ip"
Each is run --reps times after a warm-up; the median is reported, and results are checked
against torch_pre (scores within 1e-4). Extra memory = peak RSS during the call minus RSS
before it (Linux /proc/self/clear_refs), so it counts native allocations too.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vqrec_fast as vf  # noqa: E402


def rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def measure(fn, reps: int):
    """(median seconds, extra peak bytes, last result)."""
    out = fn()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    del out
    base = rss_kb("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        out = fn()
        extra = (rss_kb("VmHWM") - base) * 1024
    except OSError:
        out, extra = fn(), -1
    return statistics.median(times), extra, out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--B", type=int, default=256)
    p.add_argument("--N", type=int, default=1_000_000)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--D", type=int, default=32)
    p.add_argument("--K", type=int, default=256)
    p.add_argument("--H", type=int, default=300)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--skip", default="", help="comma list of contenders to skip")
    a = p.parse_args(argv)
    skip = set(filter(None, a.skip.split(",")))
    torch.manual_seed(0)
    W = torch.randn(a.D, a.K, a.H) * 0.05
    codes = torch.randint(0, a.K, (a.N, a.D), dtype=torch.uint8)
    q = torch.randn(a.B, a.H)
    flat = (codes.long() + torch.arange(a.D) * a.K).contiguous()
    Wf = W.reshape(a.D * a.K, a.H)

    def items():
        return F.embedding_bag(flat, Wf, mode="mean")

    print(f"# B={a.B} N={a.N} k={a.k} D={a.D} K={a.K} H={a.H}; simd={vf.simd_level()} threads={torch.get_num_threads()}")
    rows = {}
    with torch.no_grad():
        pre = F.normalize(items(), dim=1)
        scale = 1.0 / items().norm(dim=1)

        def torch_pre():
            return torch.topk(F.normalize(q, dim=1) @ pre.t(), a.k, dim=1)

        if "torch_pre" not in skip:
            rows["torch_pre"] = measure(torch_pre, a.reps)
        ref_scores = torch_pre()[0]
        del pre
        index = vf.CodeIndex(W, codes, metric="cosine", item_scale=scale)
        rows["vqrec_fast"] = measure(lambda: index.search(q, a.k), a.reps)
        if "exact" not in skip:
            rows["vqrec_fast exact"] = measure(
                lambda: vf.score_topk(q, W, codes, a.k, item_scale=scale, metric="cosine", mode="exact"), a.reps
            )
        if "norms" not in skip:
            rows["vqrec_fast+norms"] = measure(lambda: vf.score_topk(q, W, codes, a.k, metric="cosine"), a.reps)

        def torch_fly():
            return torch.topk(F.normalize(q, dim=1) @ F.normalize(items(), dim=1).t(), a.k, dim=1)

        if "torch_fly" not in skip:
            rows["torch_fly"] = measure(torch_fly, a.reps)
        if "faiss" not in skip:
            import faiss

            ix = faiss.IndexResidualQuantizer(
                a.H, a.D, 8, faiss.METRIC_INNER_PRODUCT, faiss.AdditiveQuantizer.ST_LUT_nonorm
            )
            faiss.copy_array_to_vector((W / a.D).numpy().reshape(-1), ix.rq.codebooks)
            ix.rq.is_trained = True
            ix.is_trained = True
            faiss.copy_array_to_vector(codes.numpy().reshape(-1), ix.codes)
            ix.ntotal = a.N
            qn = q.numpy()
            rows["faiss_rq (ip)"] = measure(lambda: ix.search(qn, a.k), a.reps)
            rows["vqrec_fast (ip)"] = measure(lambda: vf.score_topk(q, W, codes, a.k, metric="ip"), a.reps)
            fs = torch.from_numpy(rows["faiss_rq (ip)"][2][0])
            ours_ip = rows["vqrec_fast (ip)"][2][0]
            assert (fs - ours_ip).abs().max() < 1e-4 * max(1.0, float(fs.abs().max())), "ip results differ from faiss"

    for name in ("vqrec_fast", "vqrec_fast exact", "vqrec_fast+norms"):
        if name in rows:
            got = rows[name][2][0]
            err = float((got - ref_scores).abs().max())
            assert err < 1e-4, f"{name} scores differ from torch_pre by {err}"
    ours = rows["vqrec_fast"][0]
    print(f"{'contender':<20} {'median s':>10} {'vs vqrec_fast':>14} {'extra MB':>10}")
    for name, (t, extra, _) in rows.items():
        base = rows["vqrec_fast (ip)"][0] if name == "faiss_rq (ip)" else ours
        print(f"{name:<20} {t:>10.4f} {t / base:>13.1f}x {extra / 2**20:>10.1f}")


if __name__ == "__main__":
    main()
