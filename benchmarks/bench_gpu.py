"""GPU benchmarks of the CUDA/Triton kernels against the PyTorch compositions named in issue 8.

  1. code bag forward+backward at the training shape (ids [2048, 50], D=32, K=256, H=300)
     vs F.embedding_bag(mode="mean") on precomputed flat indices (+ its backward);
  2. ADC top-k at B=256, N=10,000,000, k=50 vs a precomputed bf16 item matrix: matmul + topk
     (the item matrix holds 600 bytes per item, the codes 32);
  3. fused code-composed softmax CE at B=2048, N=1,000,000 (forward+backward) vs the dense form
     (item matrix, B x N logits, F.cross_entropy), with peak memory of each.

Every figure is a median of CUDA-event timings after warm-up, ratios taken in this process; each
result checks the kernel's output against the baseline's before timing. Results are appended
to --out (markdown) one line at a time, so a time-out still leaves the finished figures.

Usage: python3 benchmarks/bench_gpu.py --out gpu_results.md [--mode full|quick|smoke] [--only bag,adc,ce]
(smoke: TRITON_INTERPRET=1 python3 benchmarks/bench_gpu.py --mode smoke, on the CPU)
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vqrec_fast as vf  # noqa: E402
import vqrec_fast.cuda as vcuda  # noqa: E402
from vqrec_fast.ops.code_bag import _code_bag_seq  # noqa: E402

OUT: Path | None = None


def emit(line: str) -> None:
    print(line, flush=True)
    if OUT is not None:
        with OUT.open("a") as f:
            f.write(line + "\n")


DEV = torch.device("cuda")
# Shapes per mode: full = the figures; quick = a short GPU run; smoke = tiny, on the CPU
# (Triton interpreter, CUDA-only calls replaced by their Triton twins) to test this script.
SIZES = {
    "full": dict(bag_B=2048, adc_N=10_000_000, ce_B=2048, ce_N=1_000_000, I=30000, H=300, adc_B=256),
    "quick": dict(bag_B=256, adc_N=1_000_000, ce_B=512, ce_N=100_000, I=30000, H=300, adc_B=256),
    "smoke": dict(bag_B=4, adc_N=3000, ce_B=32, ce_N=500, I=300, H=40, adc_B=16),
}
Z = SIZES["full"]


def cuda_time(fn, warmup: int = 2, reps: int = 7, budget_s: float = 20.0) -> float:
    """Median milliseconds of fn() (CUDA events on the GPU; stops early past budget_s)."""
    for _ in range(warmup):
        fn()
    sync()
    times, t0 = [], time.time()
    for _ in range(reps):
        if DEV.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        else:
            c = time.perf_counter()
            fn()
            times.append((time.perf_counter() - c) * 1e3)
        if time.time() - t0 > budget_s and len(times) >= 3:
            break
    return statistics.median(times)


def sync() -> None:
    if DEV.type == "cuda":
        torch.cuda.synchronize()


def topk_cuda(q, W, codes, k):
    """The CUDA ADC top-k (the Triton one in smoke mode on the CPU)."""
    if DEV.type == "cuda":
        return vcuda.score_topk_cuda(q, W, codes, k)
    from vqrec_fast.triton.adc_topk import adc_topk

    return adc_topk(q, W, codes, k)


def peak_mb(fn) -> float:
    if DEV.type != "cuda":
        fn()
        return float("nan")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


# ----------------------------------------------------------------------------- 1. code bag


def bench_code_bag() -> None:
    B, L, D, K, H, I = Z["bag_B"], 50, 32, 256, Z["H"], Z["I"]
    g = torch.Generator(device=DEV).manual_seed(0)
    W = (torch.randn(D, K, H, device=DEV, generator=g) * 0.02).requires_grad_()
    item_codes = torch.randint(0, K, (I, D), device=DEV, generator=g).to(torch.uint8)
    ids = torch.randint(1, I, (B, L), device=DEV, generator=g)
    ids[:, :10] = 0  # some left padding, as in real batches
    grad = torch.randn(B, L, H, device=DEV, generator=g)
    # Baseline: embedding_bag over the flattened [D*K, H] table with precomputed flat indices
    # [B*L, D] (index construction not timed: the most favourable form for the baseline).
    flat_idx = (item_codes[ids.reshape(-1)].long() + torch.arange(D, device=DEV) * K).contiguous()
    mask = (ids.reshape(-1, 1) != 0).float()

    def baseline():
        W.grad = None
        out = F.embedding_bag(flat_idx, W.reshape(D * K, H), mode="mean") * mask
        out.backward(grad.reshape(-1, H))

    def ours():
        # The custom op itself (as CodeEmbedding calls it after validating the table once);
        # the public function's id range check would add a host sync to both forms alike.
        W.grad = None
        _code_bag_seq(W, item_codes, ids).backward(grad)

    baseline()
    want = W.grad.clone()
    results = {}
    for backend in ("cuda", "triton"):
        try:
            vcuda.set_gpu_backend(backend)
            ours()
            err = (W.grad - want).abs().max().item()
            results[backend] = (cuda_time(ours), err)
        except Exception as exc:  # keep going: report what failed
            emit(f"- code bag [{backend}]: FAILED {type(exc).__name__}: {exc}")
    vcuda.set_gpu_backend("cuda")
    t_base = cuda_time(baseline)
    shape = f"ids [{B}, {L}], D={D}, K={K}, H={H}"
    emit(f"- code bag fwd+bwd, {shape}: embedding_bag {t_base:.3f} ms")
    for backend, (t, err) in results.items():
        emit(f"  - {backend}: {t:.3f} ms, speedup x{t_base / t:.2f} (max |dW - dW_embedding_bag| = {err:.2e})")


# ----------------------------------------------------------------------------- 2. ADC top-k


def bench_adc() -> None:
    B, N, D, K, H, k = Z["adc_B"], Z["adc_N"], 32, 256, Z["H"], 50
    g = torch.Generator(device=DEV).manual_seed(1)
    W = torch.randn(D, K, H, device=DEV, generator=g) * 0.02
    codes = torch.randint(0, K, (N, D), device=DEV, generator=g).to(torch.uint8)
    q = torch.randn(B, H, device=DEV, generator=g)
    items = torch.empty(N, H, device=DEV, dtype=torch.bfloat16)
    with torch.no_grad():
        for a in range(0, N, 1 << 20):
            items[a : a + (1 << 20)] = vf.code_bag(W, codes[a : a + (1 << 20)]).to(torch.bfloat16)
    qb = q.to(torch.bfloat16)

    def baseline():
        return torch.topk(qb @ items.t(), k, dim=1)

    def ours():
        return topk_cuda(q, W, codes, k)

    s_ref, _ = baseline()
    s_ours, i_ours = ours()
    # Check: the exact fp32 score of every returned id against the score the kernel returned.
    sel = vf.code_bag(W, codes[i_ours.reshape(-1)]).reshape(B, k, H)
    exact = (sel * q[:, None, :]).sum(-1)
    err = (exact - s_ours).abs().max().item()
    agree = (s_ours[:, -1] - s_ref[:, -1].float()).abs().max().item()
    t_base = cuda_time(baseline, reps=5)
    t_ours = cuda_time(ours, reps=5)
    emit(f"- ADC top-k B={B}, N={N:,}, k={k}, D={D}, H={H}: bf16 matmul+topk {t_base:.2f} ms "
         f"({N * H * 2 / 2**30:.2f} GiB items); CUDA ADC {t_ours:.2f} ms ({N * D / 2**30:.2f} GiB codes), "
         f"speedup x{t_base / t_ours:.2f} (max |score - exact fp32| = {err:.2e}; "
         f"k-th score vs bf16 baseline differs by {agree:.2e})")
    if DEV.type == "cuda":
        t_half = cuda_time(lambda: vcuda.score_topk_cuda(q, W, codes, k, half_sums=True), reps=5)
        emit(f"  - CUDA ADC with fp16 partial sums (half_sums=True): {t_half:.2f} ms, speedup x{t_base / t_half:.2f}")
        bench_adc_quantized(q, W, codes, k, t_base)
    del items
    if DEV.type == "cuda":
        torch.cuda.empty_cache()
    # Triton cross-check at 1M items (its LUT gathers go through L1/L2; slower by design).
    try:
        from vqrec_fast.triton.adc_topk import adc_topk

        n1 = min(N, 1_000_000)
        c1 = codes[:n1]
        s_t, _ = adc_topk(q, W, c1, k)
        s_c, _ = topk_cuda(q, W, c1, k)
        t_t = cuda_time(lambda: adc_topk(q, W, c1, k), warmup=1, reps=3)
        t_c = cuda_time(lambda: topk_cuda(q, W, c1, k), warmup=1, reps=3)
        emit(f"  - at N={n1:,}: Triton ADC {t_t:.2f} ms, CUDA ADC {t_c:.2f} ms "
             f"(max |CUDA - Triton| top-k score = {(s_t - s_c).abs().max().item():.2e})")
    except Exception as exc:
        emit(f"  - Triton ADC: FAILED {type(exc).__name__}: {exc}")


def exact_topk_fp32(q, W, codes, k, chunk: int = 1 << 20):
    """Reference top-k scores in fp32 through the code-bag item matrix, chunk by chunk."""
    best_s = None
    with torch.no_grad():
        for a in range(0, codes.shape[0], chunk):
            s = q @ vf.code_bag(W, codes[a : a + chunk]).t()
            top = torch.topk(s, min(k, s.shape[1]), dim=1).values
            best_s = top if best_s is None else torch.topk(torch.cat([best_s, top], 1), k, dim=1).values
    return best_s


def bench_adc_quantized(q, W, codes, k, t_base) -> None:
    """The uint8 candidate scan (adc_candidates.cu) alone and inside the public score_topk."""
    from vqrec_fast.cuda import adc_candidates as ac
    from vqrec_fast.ops.score_topk import query_luts
    from vqrec_fast.ops.score_topk_gpu import topk_gpu_quantized

    D = W.shape[0]
    ref = exact_topk_fp32(q, W, codes, k)
    lut = query_luts(q, W) / D
    for bits, items in ((8, 2), (8, 1)):
        tag = f"{bits}-bit tables, {items} item(s) per lane"
        try:
            cand, fb = ac.candidate_ids(lut, codes, k, None, bits=bits, items=items)
            t_c = cuda_time(lambda: ac.candidate_ids(lut, codes, k, None, bits=bits, items=items), reps=5)
            emit(f"  - uint8 candidate scan, {tag} (kernel + list merge): {t_c:.2f} ms, "
                 f"x{t_base / t_c:.2f}; candidates per query <= {cand.shape[1]}, fallback rows {int(fb.sum())}")
            run = lambda: topk_gpu_quantized(q, W, codes, k, None, None, "ip", query_luts,  # noqa: E731
                                             bits=bits, items=items, two_pass_from=codes.shape[0] + 1)
            s, i, fb = run()
            sel = vf.code_bag(W, codes[i.reshape(-1)]).reshape(q.shape[0], k, -1)
            err = ((sel * q[:, None, :]).sum(-1) - s).abs().max().item()
            miss = (s - ref).abs().max().item()
            t = cuda_time(run, reps=5)
            emit(f"    - exact top-k through it (one pass): {t:.2f} ms, x{t_base / t:.2f} (max |score - fp32 of id| "
                 f"{err:.2e}; max |top-k - fp32 reference top-k| {miss:.2e}; fallback rows {int(fb.sum())})")
        except Exception as exc:
            emit(f"  - uint8 candidate scan {tag}: FAILED {type(exc).__name__}: {exc}")
            traceback.print_exc()
    pub = lambda: vf.score_topk(q, W, codes, k)  # noqa: E731  (two passes from 2^18 items)
    s_pub, i_pub = pub()
    sel = vf.code_bag(W, codes[i_pub.reshape(-1)]).reshape(q.shape[0], k, -1)
    perr = ((sel * q[:, None, :]).sum(-1) - s_pub).abs().max().item()
    miss = (s_pub - ref).abs().max().item()
    t_pub = cuda_time(pub, reps=5)
    mem = peak_mb(pub)
    emit(f"  - vqrec_fast.score_topk (public op): {t_pub:.2f} ms, **x{t_base / t_pub:.2f}**, peak extra {mem:.0f} MiB "
         f"(max |score - fp32 of id| {perr:.2e}; max |top-k - fp32 reference top-k| {miss:.2e})")
    try:  # how many candidates each pass of the two-pass path hands to the exact re-score
        from vqrec_fast.ops import score_topk_gpu as sg

        D = W.shape[0]
        lut_full = query_luts(q, W)
        tables = ac.quantize_luts(lut_full / D)
        n1 = min(sg.SAMPLE, codes.shape[0])
        cand1, _ = ac.candidate_ids(lut_full / D, codes[:n1], k, None, tables=tables, s_max=1.0)
        tau = sg._scores_of(lut_full, codes, cand1, None).topk(k, dim=1).values[:, -1]
        ids2, _ = ac.threshold_ids(tables, q.shape[0], codes, n1, None, 1.0, tau)
        per_query = (ids2 >= 0).sum(1).float()
        emit(f"    - candidates: sample pass <= {cand1.shape[1]} per query; threshold pass mean "
             f"{per_query.mean():.0f}, max {per_query.max():.0f} per query (all re-scored in fp32)")
    except Exception as exc:
        emit(f"    - candidate counts failed: {type(exc).__name__}: {exc}")
    try:  # where the public op's time goes
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            pub()
            torch.cuda.synchronize()
        def dev_us(e) -> float:
            return float(getattr(e, "device_time_total", 0.0) or getattr(e, "cuda_time_total", 0.0) or 0.0)

        rows = sorted(prof.key_averages(), key=lambda e: -dev_us(e))[:10]
        emit("    - profile (device ms / calls): " + "; ".join(f"{e.key[:48]} {dev_us(e) / 1e3:.2f}/{e.count}"
                                                          for e in rows))
    except Exception as exc:
        emit(f"    - profile failed: {type(exc).__name__}: {exc}")


# ----------------------------------------------------------------------------- 3. fused CE


def ce_problem(B: int, N: int, H: int, D: int = 32, K: int = 256):
    """(W [D, K, H], codes uint8 [N, D], x [B, H], target [B]) on DEV; W and x require grad."""
    g = torch.Generator(device=DEV).manual_seed(2)
    W = (torch.randn(D, K, H, device=DEV, generator=g) * 0.02).requires_grad_()
    codes = torch.randint(0, K, (N, D), device=DEV, generator=g).to(torch.uint8)
    x = torch.randn(B, H, device=DEV, generator=g).requires_grad_()
    target = torch.randint(0, N, (B,), device=DEV, generator=g)
    return W, codes, x, target


def bench_ce() -> None:
    from vqrec_fast.triton.softmax_ce import code_softmax_cross_entropy as triton_ce

    B, N, H = Z["ce_B"], Z["ce_N"], Z["H"]
    W, codes, x, target = ce_problem(B, N, H)

    def dense():
        W.grad = x.grad = None
        loss = vf.dense_code_softmax_cross_entropy(x, W, codes, target)
        loss.backward()
        return loss

    def fused():  # the public op; its kernels follow the selected GPU backend
        W.grad = x.grad = None
        loss = vf.code_softmax_cross_entropy(x, W, codes, target)
        loss.backward()
        return loss

    def triton_fn(precision):
        def run():
            W.grad = x.grad = None
            loss = triton_ce(x, W, codes, target, precision=precision)
            loss.backward()
            return loss

        return run

    def compare(fn, l_ref, gW_ref):
        loss = fn().item()
        return loss, ((W.grad - gW_ref).abs().max() / gW_ref.abs().max()).item()

    l_ref = dense().item()
    gW_ref = W.grad.clone()
    t_d, m_d = cuda_time(dense, reps=5), peak_mb(dense)
    emit(f"- fused CE fwd+bwd B={B}, N={N:,}, H={H} [fp32]: dense {t_d:.1f} ms / {m_d:.0f} MiB peak extra")
    backends = ["cuda", "triton"] if vcuda._C_cuda is not None else ["triton"]
    for backend in backends if DEV.type == "cuda" else []:
        vcuda.set_gpu_backend(backend)
        try:
            l_f, gerr = compare(fused, l_ref, gW_ref)
            t_f, m_f = cuda_time(fused, reps=5), peak_mb(fused)
            lse = "CUDA ADC scan" if backend == "cuda" else "Triton tiles"
            emit(f"  - vqrec_fast.code_softmax_cross_entropy [{backend}: lse by {lse}]: {t_f:.1f} ms / "
                 f"{m_f:.0f} MiB; speedup x{t_d / t_f:.2f} (loss {l_f:.6f} vs {l_ref:.6f}; rel. max dW diff {gerr:.1e})")
        except Exception as exc:
            emit(f"  - fused [{backend}]: FAILED {type(exc).__name__}: {exc}")
            traceback.print_exc()
        finally:
            vcuda.set_gpu_backend("cuda")
    if DEV.type == "cuda" and vcuda._C_cuda is not None:
        from vqrec_fast.cuda.softmax_ce import lse_adc_cuda

        from vqrec_fast._adc import inverse_item_norms

        qn = F.normalize(x.detach(), dim=1)
        inv = inverse_item_norms(W.detach(), codes)
        t_lse = cuda_time(lambda: lse_adc_cuda(qn, W.detach(), codes, 1 / 0.07, True, inv_norms=inv), reps=5)
        emit(f"  - the CUDA ADC log-sum-exp alone: {t_lse:.1f} ms")
    # The standalone Triton function, exact and with TF32 tensor cores (dense in TF32 too).
    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        prec = "tf32" if tf32 else "ieee"
        l_r = dense().item()
        gW_r = W.grad.clone()
        l_f, gerr = compare(triton_fn(prec), l_r, gW_r)
        t_dd = cuda_time(dense, reps=3) if tf32 else t_d
        t_f, m_f = cuda_time(triton_fn(prec), reps=3), peak_mb(triton_fn(prec))
        emit(f"  - Triton standalone [{prec}]: {t_f:.1f} ms / {m_f:.0f} MiB; vs dense [{prec}] {t_dd:.1f} ms: "
             f"x{t_dd / t_f:.2f} (loss {l_f:.5f} vs {l_r:.5f}; rel. max dW diff {gerr:.1e})")
    torch.backends.cuda.matmul.allow_tf32 = False


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None, help="markdown file to append results to")
    p.add_argument("--mode", choices=sorted(SIZES), default="full", help="shapes (smoke runs on the CPU)")
    p.add_argument("--only", default="bag,adc,ce", help="comma list of: bag, adc, ce (run in that order)")
    a = p.parse_args()
    global OUT, DEV, Z
    OUT, Z = a.out, SIZES[a.mode]
    if a.mode == "smoke":
        DEV = torch.device("cpu")
    elif not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name() if DEV.type == "cuda" else "cpu (smoke)"
    emit(f"device: {name}; torch {torch.__version__} (CUDA {torch.version.cuda}); "
         f"gpu backend {vcuda.gpu_backend()}; CUDA module built: {vcuda._C_cuda is not None}")
    rc = 0
    benches = {"bag": bench_code_bag, "adc": bench_adc, "ce": bench_ce}
    for name in a.only.split(","):  # in the order given, so the most wanted figure comes first
        fn = benches[name]
        t0 = time.time()
        try:
            fn()
        except Exception as exc:
            rc = 1
            emit(f"- {name}: FAILED {type(exc).__name__}: {exc}")
            traceback.print_exc()
        print(f"[{name} took {time.time() - t0:.1f} s]", flush=True)
        if DEV.type == "cuda":
            torch.cuda.empty_cache()
    return rc


if __name__ == "__main__":
    sys.exit(main())
