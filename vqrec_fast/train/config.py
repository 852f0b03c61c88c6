"""Training configuration: one flat set of keys, each documented in DOCS, read from a YAML or
TOML file and overridable from the command line (``--set key=value``)."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

MODELS = ("vqrec", "sasrec", "text")


@dataclass
class ArchitectureConfig:
    """The model's shape and its scoring temperature, shared by training, pre-training and
    fine-tuning configs so that their checkpoints stay compatible (one set of defaults)."""

    num_subspaces: int = 32
    codebook_size: int = 256
    hidden: int = 300
    n_layers: int = 2
    n_heads: int = 2
    inner: int = 256
    dropout: float = 0.5
    attn_dropout: float = 0.5
    layer_norm_eps: float = 1e-12
    init_std: float = 0.02
    temperature: float = 0.07
    max_len: int = 50


@dataclass
class TrainConfig(ArchitectureConfig):
    data: str = ""
    dataset_name: str = ""
    model: str = "vqrec"
    codes: str = "published"
    text_encoder: str = "auto"
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 2048
    epochs: int = 300
    patience: int = 10
    valid_metric: str = "ndcg@10"
    eval_batch_size: int = 4096
    train_layout: str = "sequence"
    loss_impl: str = "auto"
    topk_impl: str = "auto"
    seed: int = 2023
    threads: int = 0
    out: str = "runs/train"
    progress: bool = True
    plot: bool = True

    def validate(self) -> "TrainConfig":
        def need(cond: bool, key: str, msg: str) -> None:
            if not cond:
                raise ValueError(f"config key {key!r}: {msg} (got {getattr(self, key)!r})")

        need(self.model in MODELS, "model", f"must be one of {MODELS}")
        for k in ("num_subspaces", "codebook_size", "hidden", "n_layers", "n_heads", "inner", "max_len",
                  "batch_size", "epochs", "eval_batch_size"):
            need(isinstance(getattr(self, k), int) and getattr(self, k) >= 1, k, "must be an integer >= 1")
        need(self.codebook_size <= 256 or self.model != "vqrec", "codebook_size", "must be <= 256 (uint8 codes)")
        need(self.hidden % self.n_heads == 0, "hidden", f"must be divisible by n_heads={self.n_heads}")
        for k in ("dropout", "attn_dropout"):
            need(0.0 <= getattr(self, k) < 1.0, k, "must be in [0, 1)")
        for k in ("lr", "temperature", "layer_norm_eps", "init_std"):
            need(getattr(self, k) > 0, k, "must be > 0")
        need(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        need(self.patience >= 1, "patience", "must be >= 1")
        need(self.threads >= 0, "threads", "must be >= 0 (0 = torch's default)")
        need(self.valid_metric in ("recall@10", "ndcg@10", "recall@50", "ndcg@50"), "valid_metric",
             "must be recall@10, ndcg@10, recall@50 or ndcg@50")
        need(self.train_layout in ("sequence", "prefix"), "train_layout", "must be 'sequence' or 'prefix'")
        need(self.loss_impl in ("auto", "dense", "fused"), "loss_impl", "must be auto, dense or fused")
        need(self.topk_impl in ("auto", "dense", "fused"), "topk_impl", "must be auto, dense or fused")
        need(self.text_encoder in ("auto", "minilm", "hash"), "text_encoder", "must be auto, minilm or hash")
        return self

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **kw) -> "TrainConfig":
        return apply_overrides(self, kw)


DOCS: Dict[str, str] = {
    "data": "dataset directory (RecBole/UniSRec atomic files: NAME.{train,valid,test}.inter, NAME.text)",
    "dataset_name": "file prefix NAME inside `data` ('' = the single *.train.inter there)",
    "model": "vqrec (code-composed items), sasrec (item-id embeddings) or text (projected PLM vectors)",
    "codes": "vqrec item codes: 'published' (the faiss index in `data`), 'random', 'opq' (OPQ fitted on "
             "text vectors of training items), or a path to a faiss .index / .npy / .pt code table",
    "text_encoder": "item text -> vector for 'opq' codes and the text model: minilm (sentence-transformers "
                    "all-MiniLM-L6-v2), hash (hashed word n-grams, no download) or auto (minilm if installed)",
    "num_subspaces": "D, code digits per item (random/opq codes)",
    "codebook_size": "K, values per digit (<= 256)",
    "hidden": "H, hidden size of item vectors and the Transformer",
    "n_layers": "Transformer layers",
    "n_heads": "attention heads (hidden must be divisible by it)",
    "inner": "feed-forward inner size",
    "dropout": "dropout on embeddings and hidden states",
    "attn_dropout": "dropout on attention probabilities",
    "layer_norm_eps": "LayerNorm epsilon",
    "init_std": "std of the normal init of weights",
    "temperature": "cosine-score temperature (vqrec, text); 0.07 is the paper's, validation NDCG@10 "
                   "picks 0.14 for VQ-Rec from scratch on Scientific (benchmarks/RESULTS.md)",
    "max_len": "histories keep their most recent max_len items",
    "lr": "Adam learning rate",
    "weight_decay": "Adam weight decay",
    "batch_size": "training examples (history -> next item) per step",
    "epochs": "maximum epochs",
    "patience": "stop after this many evaluations without a better valid_metric",
    "valid_metric": "validation metric for early stopping and the best checkpoint",
    "eval_batch_size": "histories per evaluation batch",
    "train_layout": "sequence (one row per user, a target at every position; same examples, fewer tokens) "
                    "or prefix (one row per example, RecBole's layout)",
    "loss_impl": "full-softmax loss: fused (vqrec_fast.code_softmax_cross_entropy), dense, or auto (dense up to 3/4 of D*K items, fused beyond)",
    "topk_impl": "evaluation scorer: fused (vqrec_fast.score_topk), dense (chunked matmul + topk), or auto",
    "seed": "seed of init, shuffling and dropout",
    "threads": "torch CPU threads (0 = torch's default)",
    "out": "run directory: config, metrics.jsonl, checkpoints, plot, results",
    "progress": "show a progress bar",
    "plot": "write curves.png (needs matplotlib)",
}


def _coerce(key: str, value: Any, default: Any) -> Any:
    t = type(default)
    if isinstance(value, str) and t is not str:
        text = value.strip()
        if t is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"config key {key!r}: expected true/false, got {value!r}")
        try:
            return t(float(text)) if t is int and "e" in text.lower() else t(text)
        except ValueError:
            raise ValueError(f"config key {key!r}: expected {t.__name__}, got {value!r}") from None
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if t is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if type(value) is not t:
        raise ValueError(f"config key {key!r}: expected {t.__name__}, got {type(value).__name__} {value!r}")
    return value


def apply_overrides(cfg: TrainConfig, values: Dict[str, Any]) -> TrainConfig:
    known = {f.name: f for f in fields(TrainConfig)}
    out = dataclasses.replace(cfg)
    for key, value in values.items():
        if key not in known:
            raise ValueError(f"unknown config key {key!r}; known keys: {', '.join(sorted(known))}")
        setattr(out, key, _coerce(key, value, getattr(TrainConfig(), key)))
    return out.validate()


def parse_sets(items: Optional[Iterable[str]]) -> Dict[str, str]:
    out = {}
    for item in items or ():
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out


def load_config(path: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None) -> TrainConfig:
    """Defaults <- file (YAML .yaml/.yml, TOML .toml, or JSON) <- overrides; validated."""
    values: Dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: config file not found")
        text = p.read_text(encoding="utf-8")
        try:
            if p.suffix in (".yaml", ".yml"):
                import yaml

                values = yaml.safe_load(text) or {}
            elif p.suffix == ".toml":
                import tomllib

                values = tomllib.loads(text)
            elif p.suffix == ".json":
                values = json.loads(text)
            else:
                raise ValueError(f"{p}: config must be .yaml, .yml, .toml or .json")
        except ValueError:
            raise
        except Exception as exc:  # yaml.YAMLError / tomllib.TOMLDecodeError carry the line
            raise ValueError(f"{p}: cannot parse config: {exc}") from None
        if not isinstance(values, dict):
            raise ValueError(f"{p}: config must be a mapping of keys to values")
        try:
            cfg = apply_overrides(TrainConfig(), values)
        except ValueError as exc:
            raise ValueError(f"{p}: {exc}") from None
    else:
        cfg = TrainConfig()
    return apply_overrides(cfg, overrides or {})


def example_yaml() -> str:
    """Every key with its default and its documentation, as a YAML file."""
    lines = ["# vqrec-fast train configuration; every key is optional (defaults shown)."]
    for f in fields(TrainConfig):
        lines.append(f"# {DOCS[f.name]}")
        lines.append(f"{f.name}: {json.dumps(getattr(TrainConfig(), f.name))}")
    return "\n".join(lines) + "\n"
