"""Multi-domain VQ-Rec pre-training (VQ-Rec section 3.3).

Several datasets are mixed into one item-id space (``MixedDomains``); one code space (OPQ, or
PQ without faiss) is fitted on the text vectors of the union of their training items. Every
batch mixes rows of all domains. Loss: sequence-to-item contrastive learning with the in-batch
targets of all domains as negatives (duplicates of a row's own target are not negatives) plus
one semi-synthetic negative per example (the target's code, each digit resampled w.p. rho),
temperature 0.07, Adam. Runs on one process or under torchrun with DistributedDataParallel:
every process builds the same global batch, trains on its shard of rows and all-gathers the
target representations, so the gradient equals the 1-process gradient of the global batch.

Checkpoint (``pretrained.pt``, and ``epoch_N.pt`` every ``checkpoint_every`` epochs): a dict
with kind "vqrec-pretrain", config, model (the VQRec state_dict, union codes included),
quantizer (to code new items' text the same way), domain names and item offsets, epoch, history.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..data import SeqDataset
from ..models import PackedLayout, SeqRecModel, VQRec
from ..train import checkpoint
from ..train.config import ArchitectureConfig
from ..train.batches import Rows, build_rows, iter_batches, take_rows
from ..train.items import random_codes, resolve_encoder, text_vectors
from ..train.quantizer import encode, fit_quantizer
from .contrastive import contrastive_pretrain_loss_shard
from .distributed import gather_rows, init_from_env, shard_rows, world
from .domains import MixedDomains, load_domain
from .negatives import semi_synthetic_codes

KIND = "vqrec-pretrain"
MODEL_KEYS = ("hidden", "n_layers", "n_heads", "inner", "dropout", "attn_dropout", "layer_norm_eps", "temperature",
              "init_std", "max_len")


@dataclass
class PretrainConfig(ArchitectureConfig):
    domains: List[str] = field(default_factory=list)  # dataset directories
    model: str = "vqrec"  # vqrec | unisrec (the text baseline: PLM vectors + MoE adaptor, no codes)
    out: str = "runs/pretrain"
    codes: str = "opq"  # opq (fitted on the union's training items) | random
    text_encoder: str = "auto"
    long_row_fraction: float = 1.0  # keep this fraction of rows of histories cut at max_len (see thin_long_rows)
    rho: float = 0.75  # semi-synthetic replacement rate; 0 disables the semi-synthetic negative
    lr: float = 1e-3
    batch_size: int = 8192  # examples per global batch (all processes together)
    epochs: int = 10
    checkpoint_every: int = 1
    seed: int = 2023
    threads: int = 0

    def validate(self) -> "PretrainConfig":
        if self.model not in ("vqrec", "unisrec"):
            raise ValueError(f"model must be 'vqrec' or 'unisrec', got {self.model!r}")
        if self.codes not in ("opq", "random"):
            raise ValueError(f"codes must be 'opq' or 'random', got {self.codes!r}")
        if not 0.0 < self.long_row_fraction <= 1.0:
            raise ValueError(f"long_row_fraction must be in (0, 1], got {self.long_row_fraction}")
        if not 0.0 <= self.rho <= 1.0:
            raise ValueError(f"rho must be in [0, 1], got {self.rho}")
        for k in ("batch_size", "epochs", "checkpoint_every", "hidden", "num_subspaces", "codebook_size"):
            if getattr(self, k) < 1:
                raise ValueError(f"{k} must be >= 1, got {getattr(self, k)}")
        if not 1 <= self.batch_size <= 8192:
            raise ValueError(f"batch_size must be in [1, 8192], got {self.batch_size}")
        if self.hidden % self.n_heads:
            raise ValueError(f"hidden {self.hidden} must be divisible by n_heads {self.n_heads}")
        return self

    def model_kwargs(self) -> Dict:
        return {k: getattr(self, k) for k in MODEL_KEYS}


def domain_vectors(datasets: Sequence[SeqDataset], encoder: str, cache_dir: Optional[Path]) -> np.ndarray:
    """float32 [1 + sum num_items, P] text vectors of the mixed id space (row 0 zero), each
    domain encoded (and cached) on its own."""
    parts = [text_vectors(d, encoder, cache_dir)[1:] for d in datasets]
    return np.concatenate([np.zeros((1, parts[0].shape[1]), np.float32)] + parts)


def union_codes(mixed: MixedDomains, datasets: Sequence[SeqDataset], cfg: PretrainConfig,
                cache_dir: Optional[Path]):
    """One code space for all domains: (uint8 codes [num_items + 1, D], quantizer or None)."""
    n = mixed.dataset.num_items
    if cfg.codes == "random":
        return random_codes(n, cfg.num_subspaces, cfg.codebook_size, cfg.seed), None
    encoder = resolve_encoder(cfg.text_encoder)
    vec = domain_vectors(datasets, encoder, cache_dir)
    q = fit_quantizer(vec, mixed.dataset.train_item_ids(), cfg.num_subspaces, cfg.codebook_size, cfg.seed)
    q["encoder"] = encoder
    codes = encode(vec, q)
    codes[0] = 0
    return codes, q


def thin_long_rows(rows: Rows, max_len: int, fraction: float, seed: int) -> Rows:
    """Keeps a random ``fraction`` of the rows that hold one history cut to max_len items.

    Under RecBole's one-example-per-prefix protocol every prefix longer than max_len is its own
    max_len-token row (the "sequence" layout cannot merge them), so a domain of long histories
    (ml-100k: ~100 ratings per user) costs ~50x more tokens than its example count suggests.
    Thinning them makes pre-training on such a domain affordable; rows of short histories
    (all the targets of a user up to max_len) are all kept."""
    if fraction >= 1.0:
        return rows
    lens = np.diff(rows.offsets)
    per_row = np.add.reduceat((rows.targets != 0).astype(np.int64), rows.offsets[:-1])
    long = (lens == max_len) & (per_row == 1)
    rng = np.random.default_rng(seed)
    keep = np.flatnonzero(~long | (rng.random(len(lens)) < fraction))
    b = take_rows(rows, keep)
    targets = np.zeros(int(b.offsets[-1]), dtype=np.int64)
    targets[b.target_pos.numpy()] = b.targets.numpy()
    return Rows(b.offsets.numpy(), b.tokens.numpy(), targets)


class PretrainStep(nn.Module):
    """The part of a step that DDP wraps (its forward must hold every parameter use).

    forward(tokens [T], offsets [b + 1], target_pos [e], targets [e], neg_codes [e, D] or None)
    -> (sequence outputs [e, H], target representations [e, H], negative representations [e, H] or None)
    """

    def __init__(self, model: SeqRecModel):
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, offsets: Tensor, target_pos: Tensor, targets: Tensor,
                neg_codes: Optional[Tensor] = None):
        layout = PackedLayout.from_offsets(offsets)
        out = self.model.encode(tokens, layout)[target_pos]
        pos = self.model.embed_items(targets)
        neg = None if neg_codes is None else self.model.codes(codes=neg_codes)
        return out, pos, neg


def build_model(cfg: PretrainConfig, codes: Tensor) -> VQRec:
    torch.manual_seed(cfg.seed)
    return VQRec(codes, codebook_size=cfg.codebook_size, loss_impl="dense", topk_impl="auto", **cfg.model_kwargs())


def train_step(step: nn.Module, model: SeqRecModel, opt: torch.optim.Optimizer, batch, neg_codes: Optional[Tensor],
               temperature: float) -> float:
    """One optimizer step on this process's shard of a global batch; returns the mean loss of
    the global batch."""
    rank, n = world()
    per_row = np.diff(np.searchsorted(batch.target_pos.numpy(), batch.offsets.numpy()))
    bounds = shard_rows(per_row, n)
    if np.any(np.diff(bounds) == 0):
        raise ValueError(f"a global batch of {len(per_row)} rows cannot feed {n} processes; raise batch_size")
    ex_bounds = np.concatenate([[0], np.cumsum(per_row)])[bounds]
    sizes = np.diff(ex_bounds).tolist()
    lo, hi = int(bounds[rank]), int(bounds[rank + 1])
    e0, e1 = int(ex_bounds[rank]), int(ex_bounds[rank + 1])
    off = batch.offsets[lo : hi + 1] - batch.offsets[lo]
    tokens = batch.tokens[int(batch.offsets[lo]) : int(batch.offsets[hi])]
    tpos = batch.target_pos[e0:e1] - batch.offsets[lo]
    neg = None if neg_codes is None else neg_codes[e0:e1]
    out, pos, negr = step(tokens, off, tpos, batch.targets[e0:e1], neg)
    all_pos = gather_rows(pos, sizes)
    total = int(batch.targets.numel())
    # DDP averages gradients over n processes; scaling by n / B makes the average the gradient
    # of the global mean
    loss = contrastive_pretrain_loss_shard(out, all_pos, batch.targets, e0, negr, temperature) * (n / total)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    mean = loss.detach() / n  # this shard's share of the global mean loss
    if n > 1:
        torch.distributed.all_reduce(mean)
    return float(mean)


def pretrain(cfg: PretrainConfig, datasets: Optional[Sequence[SeqDataset]] = None, log=print,
             max_steps: Optional[int] = None, cache_dir: Optional[Path] = None) -> Dict:
    """Runs pre-training; returns {"checkpoint": path, "history": [...], "seconds": ...}.
    Under torchrun (WORLD_SIZE > 1) call it in every process; rank 0 writes the files."""
    cfg = cfg.validate()
    rank, n = init_from_env()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    if datasets is None:
        if not cfg.domains:
            raise ValueError("pre-training needs at least one domain directory")
        datasets = [load_domain(p, cfg.max_len) for p in cfg.domains]
    cache_dir = Path(cache_dir) if cache_dir is not None else out.parent / "cache"
    mixed = MixedDomains.mix(datasets)
    if cfg.model == "unisrec":
        from .unisrec import UniSRecText

        vec = torch.from_numpy(domain_vectors(datasets, resolve_encoder(cfg.text_encoder), cache_dir))
        torch.manual_seed(cfg.seed)
        model, quantizer = UniSRecText(vec, **cfg.model_kwargs()), None
    else:
        codes, quantizer = union_codes(mixed, datasets, cfg, cache_dir)
        model = build_model(cfg, codes)
    step = PretrainStep(model)
    if n > 1:
        step = nn.parallel.DistributedDataParallel(step)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rows = thin_long_rows(build_rows(mixed.dataset.train, cfg.max_len, "sequence"), cfg.max_len,
                          cfg.long_row_fraction, cfg.seed)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    neg_gen = torch.Generator().manual_seed(cfg.seed + 1)  # same draws on every process
    torch.manual_seed(cfg.seed + 2 + rank)  # dropout stream
    history, steps, t_start = [], 0, time.perf_counter()
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1) + "\n")
        log(f"pre-training on {' + '.join(mixed.names)}: {mixed.dataset.num_items} items, "
            f"{rows.num_examples} examples ({len(rows.tokens)} tokens), {n} process(es)")
    model.train()
    for epoch in range(1, cfg.epochs + 1):
        t0, total, seen = time.perf_counter(), 0.0, 0
        for batch in iter_batches(rows, cfg.batch_size, shuffle):
            neg = None
            if cfg.rho > 0 and isinstance(model, VQRec):
                neg = semi_synthetic_codes(model.codes.item_codes[batch.targets].long(), cfg.codebook_size, cfg.rho, neg_gen)
            total += train_step(step, model, opt, batch, neg, cfg.temperature) * batch.targets.numel()
            seen += int(batch.targets.numel())
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        rec = {"epoch": epoch, "loss": total / max(seen, 1), "train_seconds": time.perf_counter() - t0,
               "examples": seen}
        history.append(rec)
        if rank == 0:
            log(f"pretrain epoch {epoch}  loss {rec['loss']:.4f}  {rec['train_seconds']:.1f}s")
            state = _checkpoint(cfg, model, quantizer, mixed, epoch, history)
            if epoch % cfg.checkpoint_every == 0:
                checkpoint.save_atomic(state, out / f"epoch_{epoch}.pt")
            checkpoint.save_atomic(state, out / "pretrained.pt")
        if max_steps is not None and steps >= max_steps:
            break
    return {"checkpoint": str(out / "pretrained.pt"), "history": history, "seconds": time.perf_counter() - t_start,
            "model": model}


def _checkpoint(cfg: PretrainConfig, model: SeqRecModel, quantizer, mixed: MixedDomains, epoch: int, history) -> Dict:
    return {"kind": KIND, "config": dataclasses.asdict(cfg), "model": model.state_dict(), "quantizer": quantizer,
            "domains": mixed.names, "item_offsets": mixed.offsets.tolist(), "epoch": epoch, "history": history}


def load_pretrained(path) -> Dict:
    """Reads a pre-training checkpoint and checks it is one."""
    st = checkpoint.load(Path(path))
    if st.get("kind") != KIND:
        raise ValueError(f"{path}: not a vqrec-fast pre-training checkpoint (kind={st.get('kind')!r})")
    for key in ("config", "model"):
        if key not in st:
            raise ValueError(f"{path}: pre-training checkpoint is missing {key!r}")
    return st
