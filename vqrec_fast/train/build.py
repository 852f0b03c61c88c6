"""Config + dataset -> model (with its item codes or text vectors)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..data import SeqDataset
from ..models import SASRec, SeqRecModel, TextSeqRec, VQRec
from .config import TrainConfig
from .items import load_codes, text_codes, text_vectors


def model_kwargs(cfg: TrainConfig) -> dict:
    return dict(hidden=cfg.hidden, max_len=cfg.max_len, n_layers=cfg.n_layers, n_heads=cfg.n_heads, inner=cfg.inner,
                dropout=cfg.dropout, attn_dropout=cfg.attn_dropout, layer_norm_eps=cfg.layer_norm_eps,
                temperature=cfg.temperature, init_std=cfg.init_std)


def build_model(cfg: TrainConfig, ds: SeqDataset, cache_dir: Path = None) -> SeqRecModel:
    """Seeds torch with cfg.seed, then builds the configured model (init is reproducible)."""
    torch.manual_seed(cfg.seed)
    kw = model_kwargs(cfg)
    if cfg.model == "sasrec":
        return SASRec(ds.num_items, **kw)
    if cfg.model == "text":
        vec = torch.from_numpy(text_vectors(ds, cfg.text_encoder, cache_dir))
        torch.manual_seed(cfg.seed)
        return TextSeqRec(vec, **kw)
    quantizer = None
    if cfg.codes == "opq":  # keep the quantizer: it codes new items' texts at recommendation time
        codes, quantizer, _ = text_codes(ds, cfg.num_subspaces, cfg.codebook_size, cfg.seed, cfg.text_encoder,
                                         cache_dir)
    else:
        codes = load_codes(cfg.codes, ds, cfg.num_subspaces, cfg.codebook_size, cfg.seed, cfg.text_encoder, cache_dir)
    torch.manual_seed(cfg.seed)
    m = VQRec(codes, codebook_size=cfg.codebook_size, loss_impl=cfg.loss_impl, topk_impl=cfg.topk_impl, **kw)
    m.quantizer = quantizer
    return m


def model_from_state(cfg: TrainConfig, state: dict, num_items: int) -> SeqRecModel:
    """Rebuilds a model from a checkpoint's state_dict (codes / text vectors are buffers in it)."""
    kw = model_kwargs(cfg)
    if cfg.model == "sasrec":
        m = SASRec(num_items, **kw)
    elif cfg.model == "text":
        m = TextSeqRec(state["plm"], **kw)
    else:
        m = VQRec(state["codes.item_codes"], codebook_size=cfg.codebook_size, loss_impl=cfg.loss_impl,
                  topk_impl=cfg.topk_impl, **kw)
    m.load_state_dict(state)
    return m
