"""Side-by-side timing of full-catalogue top-k scoring, in one process (ratios are what count).

  python3 benchmarks/compare_score_topk.py --B 256 --N 1000000 --k 50
  python3 benchmarks/compare_score_topk.py --scaling        # N x B table of CodeIndex.search

Contenders, all for cosine scores of B queries against N code-composed items
(D sub-spaces of K codes, H dims), item_n = (1/D) * sum_d W[d, codes[n, d]]:
  vqrec_fast       CodeIndex.search: LUT GEMM + native ADC scan (item scales precomputed)
  vqrec_fast+norms score_topk(metric="cosine") recomputing the item scales in the call
  torch_pre        (a) item matrix normalised once beforehand; per call normalize + matmul + topk
  torch_pre_chunked  (a) in item chunks of 16,384 (matmul into one reused [B, chunk] buffer, top-k
                   per chunk, then a top-k of the B x k*chunks candidates): no 1 GB score matrix,
                   measured faster than torch_pre, so the better of the two is "(a)"
  torch_fly        (b) per call embedding_bag + normalize + matmul + topk
  torch_fly_chunked  (b) in item chunks of 16,384 (items, scores and top-k per chunk); likewise
  faiss_rq         (c) faiss IndexResidualQuantizer (inner product, same codebooks W / D,
                   ST_LUT_nonorm: one LUT GEMM + code scan); compared with vqrec_fast metric="ip"
Each is run --reps times after a cold first call (which measures memory), round-robin (one
call of each per repetition, so a drifting background load hits all alike; --sequential runs
them back to back); the median is reported, and results are checked against torch_pre (scores
within 1e-4). Extra memory = peak RSS during the call minus RSS
before it (Linux /proc/self/clear_refs), so it counts native allocations too.
"""
from __future__ import annotations

import argparse
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


def cold(fn):
    """(extra peak bytes, result) of a first (cold) call: peak RSS during it minus RSS before
    it; later calls would reuse freed allocator pages."""
    base = rss_kb("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        out = fn()
        return (rss_kb("VmHWM") - base) * 1024, out
    except OSError:
        return -1, fn()


def chunked_topk(q, k: int, N: int, items_of, chunk: int = 16384):
    """PyTorch top-k of cosine scores over N items without a [B, N] matrix: items_of(s, e)
    gives the normalised rows s..e-1; scores go into one reused [B, chunk] buffer (a fresh
    one per chunk would be faulted in again every time), each chunk keeps its top-k, and a
    last top-k merges the B x k * ceil(N / chunk) candidates."""
    qn = F.normalize(q, dim=1)
    buf = torch.empty(q.shape[0], min(chunk, N))
    vals, ids = [], []
    for s in range(0, N, chunk):
        e = min(N, s + chunk)
        scores = torch.mm(qn, items_of(s, e).t(), out=buf[:, : e - s])
        v, i = torch.topk(scores, min(k, e - s), dim=1)
        vals.append(v)
        ids.append(i + s)
    v, i = torch.cat(vals, 1), torch.cat(ids, 1)
    top, pos = torch.topk(v, min(k, v.shape[1]), dim=1)
    return top, i.gather(1, pos)


def timed(fns: dict, reps: int, sequential: bool = False) -> dict:
    """name -> (median wall seconds, median CPU seconds of the process) over `reps` calls each.

    Round-robin by default (one call of each contender per repetition), so that on a shared
    machine a drifting background load hits every contender alike; sequential=True times each
    contender's calls back to back. CPU seconds (all threads) are reported beside wall time
    because on a shared machine wall time also counts waiting for a core."""
    times = {name: ([], []) for name in fns}

    def one(name):
        t, c = time.perf_counter(), time.process_time()
        fns[name]()
        times[name][0].append(time.perf_counter() - t)
        times[name][1].append(time.process_time() - c)

    if sequential:
        for name in fns:
            for _ in range(reps):
                one(name)
    else:
        for _ in range(reps):
            for name in fns:
                one(name)
    return {name: (statistics.median(w), statistics.median(c)) for name, (w, c) in times.items()}


def measure(fn, reps: int):
    """(median wall seconds, extra peak bytes, first result, median CPU seconds) of one contender."""
    extra, out = cold(fn)
    (t, c) = timed({"fn": fn}, reps)["fn"]
    return t, extra, out, c


def scaling(a) -> None:
    """Scores/s and extra memory of CodeIndex.search over N x B (random scales: speed does not
    depend on their values)."""
    torch.manual_seed(0)
    Ns = [int(float(n)) for n in a.scaling_N.split(",")]
    Bs = [int(b) for b in a.scaling_B.split(",")]
    W = torch.randn(a.D, a.K, a.H) * 0.05
    codes_all = torch.randint(0, a.K, (max(Ns), a.D), dtype=torch.uint8)
    scale_all = torch.rand(max(Ns)) + 0.5
    print(f"# scaling: k={a.k} D={a.D} K={a.K} H={a.H}; simd={vf.simd_level()} threads={torch.get_num_threads()}")
    print("| N | B | median s | scores/s | extra MB | mode |")
    print("| ---: | ---: | ---: | ---: | ---: | --- |")
    for N in Ns:
        index = vf.CodeIndex(W, codes_all[:N], metric="cosine", item_scale=scale_all[:N])
        for B in Bs:
            q = torch.randn(B, a.H)
            reps = max(1, min(a.reps, int(2e10 // (B * N * a.D))))  # fewer repeats for the big cells
            t, extra, _, _ = measure(lambda: index.search(q, a.k), reps)
            mode = "dense" if N <= a.D * a.K else ("quantized" if vf.simd_level() == "avx512" else "exact")
            print(f"| {N:.0e} | {B} | {t:.4f} | {B * N / t:.3g} | {extra / 2**20:.1f} | {mode} |", flush=True)


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
    p.add_argument("--sequential", action="store_true",
                   help="time each contender's repetitions back to back instead of round-robin")
    p.add_argument("--scaling", action="store_true", help="print the N x B scaling table instead")
    p.add_argument("--scaling-N", default="1e4,1e5,1e6,1e7")
    p.add_argument("--scaling-B", default="1,32,256,4096")
    a = p.parse_args(argv)
    if a.scaling:
        return scaling(a)
    skip = set(filter(None, a.skip.split(",")))
    torch.manual_seed(0)
    W = torch.randn(a.D, a.K, a.H) * 0.05
    codes = torch.randint(0, a.K, (a.N, a.D), dtype=torch.uint8)
    q = torch.randn(a.B, a.H)
    flat = (codes.long() + torch.arange(a.D) * a.K).contiguous()
    Wf = W.reshape(a.D * a.K, a.H)

    def items():
        return F.embedding_bag(flat, Wf, mode="mean")

    print(
        f"# B={a.B} N={a.N} k={a.k} D={a.D} K={a.K} H={a.H}; "
        f"simd={vf.simd_level()} threads={torch.get_num_threads()}"
    )
    fns = {}
    with torch.no_grad():
        pre = F.normalize(items(), dim=1)
        scale = 1.0 / items().norm(dim=1)

        def torch_pre():
            return torch.topk(F.normalize(q, dim=1) @ pre.t(), a.k, dim=1)

        if "torch_pre" not in skip:
            fns["torch_pre"] = torch_pre
        ref_scores = torch_pre()[0]
        index = vf.CodeIndex(W, codes, metric="cosine", item_scale=scale)
        fns["vqrec_fast"] = lambda: index.search(q, a.k)
        if "exact" not in skip:
            fns["vqrec_fast exact"] = lambda: vf.score_topk(
                q, W, codes, a.k, item_scale=scale, metric="cosine", mode="exact"
            )
        if "scans" not in skip:  # the two quantized scans behind mode="quantized", forced
            for scan in ("blocks", "queries"):
                fns[f"vqrec_fast {scan}"] = lambda scan=scan: vf.score_topk(
                    q, W, codes, a.k, item_scale=scale, metric="cosine", mode=f"quantized_{scan}"
                )
        if "norms" not in skip:
            fns["vqrec_fast+norms"] = lambda: vf.score_topk(q, W, codes, a.k, metric="cosine")

        def torch_fly():
            return torch.topk(F.normalize(q, dim=1) @ F.normalize(items(), dim=1).t(), a.k, dim=1)

        if "torch_fly" not in skip:
            fns["torch_fly"] = torch_fly
        if "chunked" not in skip:
            fns["torch_pre_chunked"] = lambda: chunked_topk(q, a.k, a.N, lambda s, e: pre[s:e])
            fns["torch_fly_chunked"] = lambda: chunked_topk(
                q, a.k, a.N, lambda s, e: F.normalize(F.embedding_bag(flat[s:e], Wf, mode="mean"), dim=1)
            )
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
            fns["faiss_rq (ip)"] = lambda: ix.search(qn, a.k)
            fns["vqrec_fast (ip)"] = lambda: vf.score_topk(q, W, codes, a.k, metric="ip")
        firsts = {name: cold(fn) for name, fn in fns.items()}  # memory, results to check
        times = timed(fns, a.reps, a.sequential)
        rows = {name: (times[name][0], firsts[name][0], firsts[name][1], times[name][1]) for name in fns}
        if "faiss" not in skip:
            fs = torch.from_numpy(rows["faiss_rq (ip)"][2][0])
            ours_ip = rows["vqrec_fast (ip)"][2][0]
            assert (fs - ours_ip).abs().max() < 1e-4 * max(1.0, float(fs.abs().max())), "ip results differ from faiss"

    checked = ("vqrec_fast", "vqrec_fast exact", "vqrec_fast blocks", "vqrec_fast queries", "vqrec_fast+norms",
               "torch_pre_chunked", "torch_fly_chunked")
    for name in checked:
        if name in rows:
            got = rows[name][2][0]
            err = float((got - ref_scores).abs().max())
            assert err < 1e-4, f"{name} scores differ from torch_pre by {err}"
    print(f"| contender | median wall s | wall ratio | median CPU s | CPU ratio | extra MB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, (t, extra, _, c) in rows.items():
        base = rows["vqrec_fast (ip)" if name == "faiss_rq (ip)" else "vqrec_fast"]
        print(f"| {name} | {t:.4f} | {t / base[0]:.1f}x | {c:.3f} | {c / base[3]:.1f}x | {extra / 2**20:.1f} |")


if __name__ == "__main__":
    main()
