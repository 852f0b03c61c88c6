"""Fitting item codes on training items only ("strict": no valid/test leakage), then coding
every item, including ones never seen in training (VQ-Rec step 2)."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from .item_codes import ItemCodes
from .quantizers import FaissPQ, RandomCodes, ResidualKMeans, _as_f32

METHODS = ("opq", "pq", "rq", "random")


def fit_codes(vectors, train_item_ids, method: str = "opq", num_subspaces: int = 32, bits: int = 8,
              seed: int = 0, opq_iterations: int = 50, cache_dir=None) -> ItemCodes:
    """vectors: float32 [num_items + 1, dim] (row 0 = padding, ignored), e.g. from
    ``vqrec_fast.text.encode_items``; train_item_ids: internal ids (1..num_items) to fit on,
    normally ``dataset.train_item_ids()``.

    method: "opq" = faiss OPQ{D},IVF1,PQ{D}x{bits} with inner product (the paper's codes);
      "pq" = the same without the OPQ rotation; "rq" = residual k-means with D levels;
      "random" = random digits (ignores the vectors).
    opq_iterations: alternations of rotation and PQ when fitting OPQ (faiss's default 50; fewer
      is faster and slightly worse).
    cache_dir: if given, the fitted ItemCodes are stored there under a key hashed from the
      vectors, the training ids and every option, and a later call with the same inputs loads
      them instead of refitting (an OPQ fit takes a minute; loading takes milliseconds).
    Returns ItemCodes with .codes uint8 [num_items + 1, D] (row 0 zeros) for every item.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in [1, 8] (codes are uint8), got {bits}")
    if num_subspaces < 1:
        raise ValueError(f"num_subspaces must be >= 1, got {num_subspaces}")
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().cpu().numpy()
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or len(vectors) < 2:
        raise ValueError(f"vectors must have shape [num_items + 1, dim], got {tuple(vectors.shape)}")
    vectors = _as_f32(vectors, vectors.shape[1])
    ids = np.unique(np.asarray(train_item_ids, dtype=np.int64))
    if len(ids) == 0 or ids[0] < 1 or ids[-1] >= len(vectors):
        raise ValueError(f"train_item_ids must be non-empty internal ids in [1, {len(vectors) - 1}]")
    need = 256 if method == "opq" else 1 << bits  # faiss trains the OPQ rotation with 8-bit PQ
    if method != "random" and len(ids) < need:
        raise ValueError(f"{method} needs at least {need} training items for {need} centroids, got {len(ids)}")
    cache_path = None
    if cache_dir is not None:
        key = hashlib.sha256()
        key.update(np.ascontiguousarray(vectors).tobytes())
        key.update(ids.tobytes())
        key.update(json.dumps([method, num_subspaces, bits, seed, opq_iterations]).encode())
        cache_path = Path(cache_dir) / f"codes-{method}-{key.hexdigest()[:32]}.npz"
        if cache_path.exists():
            cached = ItemCodes.load(cache_path)
            cached.info["cache"] = str(cache_path)
            return cached
    x = vectors[ids]
    t0 = time.perf_counter()
    if method in ("opq", "pq"):
        q = FaissPQ.train(x, num_subspaces, bits, rotate=method == "opq", seed=seed,
                           opq_iterations=opq_iterations)
    elif method == "rq":
        q = ResidualKMeans.train(x, num_subspaces, bits, seed=seed)
    else:
        q = RandomCodes(vectors.shape[1], num_subspaces, bits, seed)
    codes = np.zeros((len(vectors), num_subspaces), dtype=np.uint8)
    codes[1:] = q.encode(vectors[1:])
    info = {"train_items": int(len(ids)), "dim": int(vectors.shape[1]), "seed": seed,
            "fit_seconds": round(time.perf_counter() - t0, 3)}
    result = ItemCodes(torch.from_numpy(codes), q, method, bits, info)
    if cache_path is not None:
        result.save(cache_path)  # atomic (temp file + rename)
    return result
