"""Fine-tuning a pre-trained VQ-Rec on a new domain (VQ-Rec section 3.4), and inductive items.

1. Codes for the target domain: "fresh" = a new strict OPQ index fitted on the text vectors of
   the target's training items (the paper); "pretrain" = the pre-training code space applied to
   the target's texts (ablation); "published" = the faiss index shipped with the data;
   "random" = random codes (ablation).
2. The pre-trained Transformer, position embedding, LayerNorm and code-embedding table W
   [D, K, H] are loaded (every key but the item code table must match in name and shape).
3. ``fix_encoder`` (default, as the paper): Transformer and position embedding are frozen.
4. Alignment: for ``align_epochs`` epochs only the per-sub-space permutations train (W itself
   is fixed; the model sees P[d] @ W[d]); then the hard permutation is written back into W and
   the code embeddings (and LayerNorm) train with early stopping (``Trainer``). Modes: learned
   (straight-through Gumbel-Sinkhorn), random (one fixed random permutation: what the paper's
   code ends up doing), none.

With no pre-trained checkpoint the same code path trains from scratch (nothing frozen, no
alignment), so "scratch vs transfer" differ only in initialisation.

The run folder also gets ``quantizer.pt`` (fresh codes) so new items can be coded from their
text later (``add_items``: the inductive setting).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from ..data import SeqDataset
from ..models import PackedLayout, VQRec
from ..train import TrainConfig, Trainer, checkpoint
from ..train.batches import build_rows, iter_batches
from ..train.items import encode_texts, load_codes, random_codes, text_codes, text_vectors
from ..train.quantizer import encode
from .alignment import PermutationAlignment
from .pretrain import MODEL_KEYS, load_pretrained

CODE_MODES = ("fresh", "pretrain", "published", "random")
ALIGN_MODES = ("learned", "random", "none")


@dataclasses.dataclass
class FinetuneOptions:
    pretrained: str = ""  # pre-training checkpoint ("" = train from scratch)
    model: str = "vqrec"  # vqrec | unisrec (text baseline; codes and alignment do not apply)
    codes: str = "fresh"
    fix_encoder: bool = True
    align: str = "learned"
    align_epochs: int = 5
    align_lr: float = 1e-3  # the paper's fine-tuning learning rate
    train_fraction: float = 1.0  # keep this fraction of the target's training examples (data curve)

    def validate(self) -> "FinetuneOptions":
        if self.model not in ("vqrec", "unisrec"):
            raise ValueError(f"model must be 'vqrec' or 'unisrec', got {self.model!r}")
        if self.codes not in CODE_MODES:
            raise ValueError(f"codes must be one of {CODE_MODES}, got {self.codes!r}")
        if self.align not in ALIGN_MODES:
            raise ValueError(f"align must be one of {ALIGN_MODES}, got {self.align!r}")
        if self.align_epochs < 0:
            raise ValueError(f"align_epochs must be >= 0, got {self.align_epochs}")
        if not 0 < self.train_fraction <= 1:
            raise ValueError(f"train_fraction must be in (0, 1], got {self.train_fraction}")
        return self


def target_codes(opts: FinetuneOptions, cfg: TrainConfig, ds: SeqDataset, pre: Optional[Dict], cache_dir: Path):
    """(uint8 codes [num_items + 1, D], quantizer or None) for the target domain."""
    D, K = cfg.num_subspaces, cfg.codebook_size
    if opts.codes == "fresh":
        codes, q, _ = text_codes(ds, D, K, cfg.seed, cfg.text_encoder, cache_dir)
        return codes, q
    if opts.codes == "pretrain":
        q = None if pre is None else pre.get("quantizer")
        if q is None:
            raise ValueError("codes='pretrain' needs a pre-training checkpoint with a fitted quantizer (codes=opq)")
        codes = encode(text_vectors(ds, q["encoder"], cache_dir), q)
        codes[0] = 0
        return codes, q
    if opts.codes == "random":
        return random_codes(ds.num_items, D, K, cfg.seed), None
    return load_codes("published", ds, D, K, cfg.seed), None


ITEM_SIDE = ("codes.item_codes", "plm")  # per-domain item tables: never transferred


def load_pretrained_weights(model: nn.Module, state: Dict[str, torch.Tensor], path: str = "checkpoint") -> None:
    """Copies every pre-trained tensor except the item tables; names and shapes must match."""
    own = model.state_dict()
    wanted = {k for k in own if k not in ITEM_SIDE}
    missing = sorted(wanted - set(state))
    if missing:
        raise ValueError(f"{path}: pre-trained checkpoint lacks {missing[:5]} (model architecture differs)")
    for k in wanted:
        if tuple(state[k].shape) != tuple(own[k].shape):
            raise ValueError(f"{path}: {k} has shape {tuple(state[k].shape)} in the checkpoint, "
                             f"{tuple(own[k].shape)} in the model")
    model.load_state_dict({k: state[k] for k in wanted}, strict=False)


def freeze_encoder(model: nn.Module) -> None:
    """The paper's "fix encoder": Transformer layers and position embedding do not train."""
    for mod in (model.encoder, model.position):
        for p in mod.parameters():
            p.requires_grad_(False)


class _AlignedLoss(nn.Module):
    """Full-softmax loss of ``model`` with its code table replaced by the aligned table."""

    def __init__(self, model: VQRec):
        super().__init__()
        self.model = model

    def forward(self, tokens, offsets, target_pos, targets):
        out = self.model.encode(tokens, PackedLayout.from_offsets(offsets))
        return self.model.loss(out[target_pos], targets)


def train_alignment(model: VQRec, align: PermutationAlignment, ds: SeqDataset, cfg: TrainConfig, epochs: int,
                    lr: float, log=print) -> list:
    """Trains only the permutations for ``epochs`` epochs; returns per-epoch mean losses."""
    rows = build_rows(ds.train, cfg.max_len, cfg.train_layout)
    opt = torch.optim.Adam([align.log_alpha], lr=lr)
    step = _AlignedLoss(model)
    gen = torch.Generator().manual_seed(cfg.seed + 7)
    noise = torch.Generator().manual_seed(cfg.seed + 8)
    losses = []
    model.train()
    align.train()
    for ep in range(epochs):
        t0, total, seen = time.perf_counter(), 0.0, 0
        for b in iter_batches(rows, cfg.batch_size, gen):
            aligned = align(model.codes.weight.detach(), generator=noise)
            loss = functional_call(step, {"model.codes.weight": aligned}, (b.tokens, b.offsets, b.target_pos, b.targets))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * b.targets.numel()
            seen += int(b.targets.numel())
        losses.append(total / max(seen, 1))
        log(f"align epoch {ep + 1}  loss {losses[-1]:.4f}  {time.perf_counter() - t0:.1f}s")
    return losses


def subsample_train(ds: SeqDataset, fraction: float, seed: int) -> SeqDataset:
    """Keeps a random fraction of the training examples (valid/test untouched)."""
    if fraction >= 1:
        return ds
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(ds.train), max(1, int(round(fraction * len(ds.train)))), replace=False))
    return dataclasses.replace(ds, train=ds.train.subset(keep))


def finetune(cfg: TrainConfig, ds: SeqDataset, opts: FinetuneOptions, log=print) -> Dict:
    """Builds the target model (pre-trained or fresh), aligns, trains; returns Trainer results plus
    {"align_losses", "permutation_changed"}. cfg.out is the run folder."""
    opts = opts.validate()
    out = Path(cfg.out)
    cache_dir = out.parent / "cache"
    pre = load_pretrained(opts.pretrained) if opts.pretrained else None
    if pre is not None:  # architecture and code-space sizes come from the checkpoint
        pc = pre["config"]
        cfg = cfg.replace(**{k: pc[k] for k in MODEL_KEYS if k not in ("dropout", "attn_dropout")},
                          num_subspaces=pc["num_subspaces"], codebook_size=pc["codebook_size"])
    cfg = cfg.replace(model="vqrec")
    ds = subsample_train(ds, opts.train_fraction, cfg.seed)
    kw = {k: getattr(cfg, k) for k in MODEL_KEYS}
    info: Dict = {"align_losses": [], "permutation_changed": 0.0}
    if opts.model == "unisrec":
        return _finetune_unisrec(cfg, ds, opts, pre, kw, cache_dir, info, log)
    codes, quantizer = target_codes(opts, cfg, ds, pre, cache_dir)
    torch.manual_seed(cfg.seed)
    model = VQRec(codes, codebook_size=cfg.codebook_size, loss_impl=cfg.loss_impl, topk_impl=cfg.topk_impl, **kw)
    if pre is not None:
        load_pretrained_weights(model, pre["model"], opts.pretrained)
        if opts.fix_encoder:
            freeze_encoder(model)
        align = PermutationAlignment(cfg.num_subspaces, cfg.codebook_size, mode=opts.align, seed=cfg.seed)
        if opts.align == "learned" and opts.align_epochs > 0:
            info["align_losses"] = train_alignment(model, align, ds, cfg, opts.align_epochs, opts.align_lr, log)
        P = align.current_hard_permutation()
        eye = torch.eye(cfg.codebook_size).expand_as(P)
        info["permutation_changed"] = float((P.argmax(-1) != eye.argmax(-1)).float().mean())
        align.write_back(model.codes.weight.data)
    out.mkdir(parents=True, exist_ok=True)
    if quantizer is not None:
        checkpoint.save_atomic({"quantizer": quantizer}, out / "quantizer.pt")
    trainer = Trainer(cfg, ds, model=model)
    res = trainer.fit(log=log)
    res.update(info)
    res["options"] = dataclasses.asdict(opts)
    return res


def _finetune_unisrec(cfg, ds, opts, pre, kw, cache_dir, info, log) -> Dict:
    """The text baseline: target PLM vectors, pre-trained Transformer (fixed) + adaptor (trains)."""
    from .unisrec import UniSRecText

    vec = torch.from_numpy(text_vectors(ds, cfg.text_encoder, cache_dir))
    torch.manual_seed(cfg.seed)
    model = UniSRecText(vec, **kw)
    if pre is not None:
        load_pretrained_weights(model, pre["model"], opts.pretrained)
        if opts.fix_encoder:
            freeze_encoder(model)
    res = Trainer(cfg, ds, model=model).fit(log=log)
    res.update(info)
    res["options"] = dataclasses.asdict(opts)
    return res


def load_run_model(run) -> nn.Module:
    """The best model of a fine-tuning run folder (VQ-Rec, baselines, or the UniSRec-style model)."""
    from ..train import load_trained

    st = checkpoint.load(Path(run) / "best.pt")
    if "adaptor.weight" not in st["model"]:
        return load_trained(run)
    from .unisrec import UniSRecText

    cfg = TrainConfig(**st["config"])
    model = UniSRecText(st["model"]["plm"], n_experts=st["model"]["adaptor.weight"].shape[0],
                        **{k: getattr(cfg, k) for k in MODEL_KEYS})
    model.load_state_dict(st["model"])
    return model.eval()


@torch.no_grad()
def add_items(model: VQRec, quantizer: Dict, texts: Sequence[str]) -> torch.Tensor:
    """Inductive use: appends items known only by their text (text -> vector with the quantizer's
    encoder -> codes -> code-bag representation). Returns their new ids int64 [len(texts)]."""
    if not texts:
        raise ValueError("texts is empty")
    vec = encode_texts(list(texts), quantizer["encoder"])
    new = encode(vec, quantizer)
    start = model.codes.item_codes.shape[0]
    model.set_item_codes(torch.cat([model.codes.item_codes.cpu(), new]))
    return torch.arange(start, start + len(texts), dtype=torch.int64)
