"""Importing published VQ-Rec codes from a faiss index file.

``Scientific.OPQ32,IVF1,PQ32x8.strict.index`` holds, in inverted list 0, one 32-byte code per
item occurring in the training split, row r belonging to the r-th smallest such item (by
internal id). Items absent from training (Scientific: 12 valid/test-only items) have no
published code; they get one by this rule:

- ``vectors`` given (float32 [num_items + 1, index.d], the same PLM as the index, e.g. BERT-base
  [CLS] for the published file): coded with the index's own OPQ + PQ, as if added to it;
- otherwise ``missing="knn"`` (default): for each such item, the ``k`` training items whose texts
  share the most words with its text (Jaccard over lower-cased word sets; ties by smaller id)
  vote digit by digit, the most frequent digit winning (ties: the nearest neighbour's digit);
- ``missing="random"``: uniform random digits seeded by the raw item id (a cold-start item).
"""
from __future__ import annotations

import re
import zlib
from collections import Counter
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from .item_codes import ItemCodes
from .quantizers import FaissPQ, _faiss

MISSING_RULES = ("knn", "random")
_WORD = re.compile(r"\w+")


def read_invlist_codes(index) -> np.ndarray:
    """uint8 [n, code_size] codes of inverted list 0 of an IVF index, in stored order."""
    faiss = _faiss()
    ivf = faiss.extract_index_ivf(index)
    if ivf.nlist != 1:
        raise ValueError(f"expected an index with one inverted list (IVF1), got nlist={ivf.nlist}")
    il = ivf.invlists
    n, cs = il.list_size(0), il.code_size
    codes = faiss.rev_swig_ptr(il.get_codes(0), n * cs).copy().reshape(n, cs)
    ids = faiss.rev_swig_ptr(il.get_ids(0), n).copy()
    if not np.array_equal(ids, np.arange(n)):
        raise ValueError("inverted list 0 ids are not 0..n-1 in order; cannot map rows to items")
    return codes


def _words(text: str) -> set:
    return set(_WORD.findall(text.lower()))


def _knn_codes(dataset, coded_ids: np.ndarray, codes: np.ndarray, targets: List[int], k: int) -> np.ndarray:
    train_words = [_words(dataset.item_text[i]) for i in coded_ids]
    out = np.zeros((len(targets), codes.shape[1]), dtype=np.uint8)
    for r, item in enumerate(targets):
        w = _words(dataset.item_text[item])
        sims = np.array([len(w & t) / max(1, len(w | t)) for t in train_words])
        nn = np.lexsort((coded_ids, -sims))[:k]  # most similar first, ties by smaller id
        for d in range(codes.shape[1]):
            votes = Counter(codes[nn, d].tolist())
            top = max(votes.values())
            out[r, d] = next(int(c) for c in codes[nn, d] if votes[int(c)] == top)
    return out


def import_faiss_index(path, dataset, vectors=None, missing: str = "knn", k: int = 5) -> ItemCodes:
    """Codes of a published ``OPQ{D},IVF1,PQ{D}x8`` "strict" index for ``dataset`` (a SeqDataset
    whose training split defines the row order). Returns ItemCodes with .codes uint8
    [num_items + 1, D], row 0 zeros, and a quantizer that codes new vectors of dim index.d."""
    if missing not in MISSING_RULES:
        raise ValueError(f"missing must be one of {MISSING_RULES}, got {missing!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    faiss = _faiss()
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        raise ValueError(f"{path}: not a readable faiss index ({str(exc).splitlines()[0]})") from None
    q = FaissPQ(index, index.d)
    if q.bits != 8:
        raise ValueError(f"{path}: PQ uses {q.bits} bits per digit; only 8-bit codes are stored as bytes")
    stored = read_invlist_codes(index)
    coded_ids = dataset.train_item_ids()
    if len(stored) != len(coded_ids):
        raise ValueError(f"{path}: inverted list holds {len(stored)} codes but {dataset.name!r} has "
                         f"{len(coded_ids)} items in its training split; is this the strict index of this dataset?")
    codes = np.zeros((dataset.num_items + 1, q.num_subspaces), dtype=np.uint8)
    codes[coded_ids] = stored
    rest = sorted(set(range(1, dataset.num_items + 1)) - set(coded_ids.tolist()))
    rule: Optional[str] = None
    if rest:
        if vectors is not None:
            v = vectors.detach().cpu().numpy() if isinstance(vectors, torch.Tensor) else np.asarray(vectors)
            if v.shape != (dataset.num_items + 1, index.d):
                raise ValueError(f"vectors must have shape [{dataset.num_items + 1}, {index.d}], got {v.shape}")
            codes[rest] = q.encode(v[rest])
            rule = "encoded with the index"
        elif missing == "knn":
            codes[rest] = _knn_codes(dataset, coded_ids, stored, rest, k)
            rule = f"knn: digit-wise vote of the {k} training items with the most similar text"
        else:
            for i in rest:
                seed = zlib.crc32(dataset.item_raw_ids[i].encode())
                codes[i] = np.random.default_rng(seed).integers(0, 256, q.num_subspaces)
            rule = "random, seeded by crc32 of the raw item id"
    info = {"source": str(path), "coded_items": int(len(coded_ids)), "uncoded_items": len(rest),
            "uncoded_rule": rule, "uncoded_ids": rest, "dim": int(index.d)}
    return ItemCodes(torch.from_numpy(codes), q, "imported", 8, info)
