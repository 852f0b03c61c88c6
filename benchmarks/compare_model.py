"""Side by side, one process: VQ-Rec training steps and full-ranking evaluation on Scientific.

Training (per 2,048 examples, i.e. one batch): packed "sequence" rows + fused loss | packed
"sequence" rows + dense loss | packed "prefix" rows (RecBole's examples) + dense loss | padded
[B, 50] RecBole-style forward (reference formulation) + dense loss.
Evaluation (all 8,442 test users): packed + score_topk (fused ADC top-k) | packed + dense
matmul/topk | padded reference forward + dense scores.
Prints medians over --reps after one warm-up, and ratios to the fastest path.

    python3 benchmarks/compare_model.py --data ../shared/data/amazon2018-scientific --threads 1
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def median_time(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/amazon2018-scientific")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batches", type=int, default=2, help="training batches per timing")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    from vqrec_fast.data import load_atomic
    from vqrec_fast.models import PackedLayout
    from vqrec_fast.reference.seqrec import seqrec_forward_ref
    from vqrec_fast.train import TrainConfig, build_model, build_rows, evaluate
    from vqrec_fast.train.batches import iter_batches

    ds = load_atomic(a.data)
    cfg = TrainConfig(data=a.data, codes="published", progress=False)
    model = build_model(cfg, ds)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    print(f"threads {torch.get_num_threads()}  items {ds.num_items}  train examples {len(ds.train)}")

    def train_fn(layout, impl, padded=False):
        rows = build_rows(ds.train, 50, layout)
        batches = list(iter_batches(rows, 2048, torch.Generator().manual_seed(0)))[: a.batches]

        def run():
            model.train()
            model.loss_impl = impl
            for b in batches:
                if padded:  # one row per example, padded to 50 as RecBole does
                    lens = (b.offsets[1:] - b.offsets[:-1])
                    P = torch.zeros(len(lens), 50, dtype=torch.int64)
                    for r in range(len(lens)):
                        P[r, : lens[r]] = b.tokens[b.offsets[r] : b.offsets[r + 1]]
                    out = seqrec_forward_ref(model, P)
                else:
                    out = model.encode(b.tokens, PackedLayout.from_offsets(b.offsets))[b.target_pos]
                loss = model.loss(out, b.targets)
                opt.zero_grad()
                loss.backward()
            return None

        n = sum(int(b.targets.numel()) for b in batches)
        return run, n

    res = {}
    for name, args in [("packed sequence + fused loss", ("sequence", "fused")),
                       ("packed sequence + dense loss", ("sequence", "dense")),
                       ("packed prefix + dense loss", ("prefix", "dense")),
                       ("padded prefix (RecBole layout) + dense loss", ("prefix", "dense", True))]:
        fn, n = train_fn(*args)
        t = median_time(fn, a.reps)
        res[name] = t / n * len(ds.train)
        print(f"train  {name:<45} {t / n * 1e3:8.3f} ms/example  -> {res[name]:7.1f} s/epoch (34,101 examples)", flush=True)

    def ev(impl):
        model.topk_impl = impl
        return lambda: evaluate(model, ds.test, (10, 50), 50, 4096, "test")

    def ev_padded():
        model.eval()
        with torch.no_grad():
            P = ds.test.padded(50)
            for s in range(0, P.shape[0], 1024):
                q = torch.nn.functional.normalize(seqrec_forward_ref(model, P[s : s + 1024]), dim=-1)
                torch.topk(q @ model.item_vectors().T, 50, dim=1)

    evals = {}
    for name, fn in [("packed + score_topk (fused)", ev("fused")), ("packed + dense topk", ev("dense")),
                     ("padded reference + dense scores", ev_padded)]:
        evals[name] = median_time(fn, a.reps)
        print(f"eval   {name:<45} {evals[name]:7.2f} s for {len(ds.test)} test users", flush=True)
    best_t = min(res.values())
    best_e = min(evals.values())
    print("ratios (time / fastest): train " + ", ".join(f"{k}: {v / best_t:.2f}" for k, v in res.items()))
    print("ratios (time / fastest): eval " + ", ".join(f"{k}: {v / best_e:.2f}" for k, v in evals.items()))


if __name__ == "__main__":
    main()
