"""The transfer study (``vqrec-fast experiment transfer``): pre-train on source domains,
fine-tune on a target domain, compare with training from scratch, ablate, analyse.

Runs (same seed, same protocol, full ranking on the target's test users):
  scratch            VQ-Rec, fresh OPQ codes, random init
  transfer           pre-trained (semi-synthetic negatives) + fresh codes + learned alignment
  align=random       ... random permutation (what the paper's code effectively does)
  align=none         ... no alignment
  no semi-synthetic  pre-trained with rho = 0, then as "transfer"
  random codes       pre-trained, fine-tuned with random target codes
  pretrain codes     pre-trained, target coded with the pre-training code space (no fresh index)
  text (scratch)     SASRec(T)-style text baseline: linear projection of the frozen PLM vectors
  UniSRec-style      whitening + MoE adaptor over the frozen PLM vectors, from scratch and
                     pre-trained + fine-tuned the same way (fixed Transformer)
A run folder that already holds results (results.json / a finished pretrained.pt) is reused,
so an interrupted study continues where it stopped.
plus the training-data fraction curve (scratch vs transfer) and, per model, text
over-emphasis and cold-start metrics. Runs go through a process pool (``jobs``), one thread each.
"""
from __future__ import annotations

import dataclasses
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..train import TrainConfig, Trainer
from ..train.items import resolve_encoder, text_vectors
from .analysis import cold_start, test_topk, text_overemphasis
from .domains import load_domain
from .finetune import FinetuneOptions, finetune, load_run_model
from .pretrain import PretrainConfig, load_pretrained, pretrain

PAPER_ROW = {"recall@10": 0.1211, "ndcg@10": 0.0643, "recall@50": 0.2369, "ndcg@50": 0.0897}
METRICS = ("recall@10", "ndcg@10", "recall@50", "ndcg@50")


@dataclasses.dataclass
class StudyConfig:
    sources: List[str]
    target: str
    out: str = "runs/transfer"
    hidden: int = 300
    inner: int = 256
    num_subspaces: int = 32
    codebook_size: int = 256
    pretrain_epochs: int = 10
    pretrain_batch: int = 8192
    pretrain_long_fraction: float = 1.0  # PretrainConfig.long_row_fraction
    epochs: int = 50  # fine-tuning / scratch epochs (early stopping on valid NDCG@10)
    patience: int = 10
    align_epochs: int = 5
    align_lr: float = 1e-3
    batch_size: int = 2048
    fractions: Sequence[float] = (0.1, 0.25, 0.5)
    text_encoder: str = "auto"
    seed: int = 2023
    jobs: int = 2


def _quiet(*_):
    pass


def _run_pretrain(sc: StudyConfig, name: str, rho: float, model: str = "vqrec") -> Dict:
    done = Path(sc.out) / name / "pretrained.pt"
    if done.exists():  # a finished earlier run of the same study folder is reused
        st = load_pretrained(done)
        if st["epoch"] == sc.pretrain_epochs:
            return {"checkpoint": str(done), "history": st["history"], "seconds": 0.0, "reused": True}
    cfg = PretrainConfig(domains=list(sc.sources), out=str(Path(sc.out) / name), hidden=sc.hidden, inner=sc.inner,
                         model=model, long_row_fraction=sc.pretrain_long_fraction,
                         epochs=sc.pretrain_epochs, batch_size=sc.pretrain_batch, rho=rho, seed=sc.seed, threads=1,
                         text_encoder=sc.text_encoder, checkpoint_every=max(1, sc.pretrain_epochs),
                         num_subspaces=sc.num_subspaces, codebook_size=sc.codebook_size)
    res = pretrain(cfg, log=_quiet, cache_dir=Path(sc.out) / "cache")
    return {"checkpoint": res["checkpoint"], "history": res["history"], "seconds": res["seconds"]}


def _train_cfg(sc: StudyConfig, name: str, model: str = "vqrec") -> TrainConfig:
    return TrainConfig(data=sc.target, model=model, out=str(Path(sc.out) / name), hidden=sc.hidden, inner=sc.inner,
                       epochs=sc.epochs, patience=sc.patience, batch_size=sc.batch_size, seed=sc.seed, threads=1,
                       text_encoder=sc.text_encoder, progress=False, plot=False, loss_impl="dense", codes="opq",
                       num_subspaces=sc.num_subspaces, codebook_size=sc.codebook_size)


def _run(sc: StudyConfig, name: str, kind: str, opts: Optional[Dict]) -> Dict:
    """One target-domain run in a worker process; returns its results dict."""
    import torch

    torch.set_num_threads(1)
    done = Path(sc.out) / name / "results.json"
    if done.exists():  # finished in an earlier invocation on the same folder
        return {**json.loads(done.read_text()), "reused": True}
    t0 = time.perf_counter()
    ds = load_domain(sc.target)
    cfg = _train_cfg(sc, name, "text" if kind == "text" else "vqrec")
    if kind == "text":
        res = Trainer(cfg, ds).fit(log=_quiet)
    else:
        res = finetune(cfg, ds, FinetuneOptions(**opts), log=_quiet)
    res["wall_seconds"] = time.perf_counter() - t0
    return res


def _analyse(sc: StudyConfig, name: str) -> Dict:
    import torch

    torch.set_num_threads(1)
    ds = load_domain(sc.target)
    model = load_run_model(Path(sc.out) / name)
    top = test_topk(model, ds, 50)
    vec = text_vectors(ds, resolve_encoder(sc.text_encoder), Path(sc.out) / "cache")
    return {"overemphasis": text_overemphasis(top, ds, vec), "cold_start": cold_start(top, ds)}


def run_study(sc: StudyConfig, log=print) -> Dict:
    out = Path(sc.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # encode every domain's text once before the workers start (they share the cache)
    for p in list(sc.sources) + [sc.target]:
        text_vectors(load_domain(p), resolve_encoder(sc.text_encoder), out / "cache")
    log(f"text vectors ready ({time.perf_counter() - t0:.0f}s)")
    with ProcessPoolExecutor(sc.jobs) as pool:
        pre = {n: pool.submit(_run_pretrain, sc, n, rho, m)
               for n, rho, m in (("pretrain", 0.75, "vqrec"), ("pretrain_rho0", 0.0, "vqrec"),
                                 ("pretrain_unisrec", 0.0, "unisrec"))}
        scratch = {"scratch": ("vqrec", {}), "text_scratch": ("text", None),
                   "unisrec_scratch": ("vqrec", {"model": "unisrec"})}
        for f in sc.fractions:
            scratch[f"scratch_frac{f}"] = ("vqrec", {"train_fraction": f})
        futs = {n: pool.submit(_run, sc, n, k, o) for n, (k, o) in scratch.items()}
        pre = {n: f.result() for n, f in pre.items()}
        log(f"pre-training done ({time.perf_counter() - t0:.0f}s)")
        ck, ck0 = pre["pretrain"]["checkpoint"], pre["pretrain_rho0"]["checkpoint"]
        ft = {
            "transfer": {"pretrained": ck},
            "align_random": {"pretrained": ck, "align": "random"},
            "align_none": {"pretrained": ck, "align": "none"},
            "no_semi_synthetic": {"pretrained": ck0},
            "random_codes": {"pretrained": ck, "codes": "random"},
            "pretrain_codes": {"pretrained": ck, "codes": "pretrain"},
            "unisrec_transfer": {"pretrained": pre["pretrain_unisrec"]["checkpoint"], "model": "unisrec"},
        }
        for f in sc.fractions:
            ft[f"transfer_frac{f}"] = {"pretrained": ck, "train_fraction": f}
        for n, o in ft.items():
            o.update(align_epochs=sc.align_epochs, align_lr=sc.align_lr)
            futs[n] = pool.submit(_run, sc, n, "vqrec", o)
        runs = {n: f.result() for n, f in futs.items()}
        log(f"fine-tuning done ({time.perf_counter() - t0:.0f}s)")
        main = [n for n in runs if "frac" not in n]
        an = {n: pool.submit(_analyse, sc, n) for n in main}
        analyses = {n: f.result() for n, f in an.items()}
    result = {"config": dataclasses.asdict(sc), "pretrain": pre, "runs": runs, "analyses": analyses,
              "seconds": time.perf_counter() - t0}
    (out / "study.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    from .report import write_report

    write_report(result, out)
    log(f"study done in {result['seconds']:.0f}s: {out / 'study.md'}")
    return result
