"""Text vectors -> item codes, and the saved quantizer that codes new items' texts later.

A quantizer is a dict: ``rotation`` float32 [P, P] or None (x is rotated as x @ rotation.T),
``centroids`` float32 [D, K, P / D], ``encoder`` (the text encoder name). With faiss it is OPQ
(faiss.OPQMatrix + ProductQuantizer, as the paper); without faiss (a plain ``pip install``)
and for catalogues with fewer training items than K) it falls back to product quantization by
k-means in torch (no rotation), so quickstart runs everywhere.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch


def _nearest(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Index of the nearest row of c [k, d] for each row of x [n, d] (squared L2, one matmul)."""
    return ((c * c).sum(1)[None, :] - 2.0 * (x @ c.T)).argmin(1)


def _kmeans(x: torch.Tensor, k: int, iters: int, g: torch.Generator) -> torch.Tensor:
    """x float32 [n, d] -> centroids [k, d] (Lloyd; empty clusters re-seeded from random points)."""
    n = x.shape[0]
    c = x[torch.randperm(n, generator=g)[: min(k, n)]].clone()
    if c.shape[0] < k:  # fewer points than centroids: repeat with a little noise
        extra = x[torch.randint(0, n, (k - c.shape[0],), generator=g)]
        c = torch.cat([c, extra + 1e-3 * torch.randn(extra.shape, generator=g)])
    for _ in range(iters):
        assign = _nearest(x, c)
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        empty = counts == 0
        c = torch.where(empty[:, None], x[torch.randint(0, n, (k,), generator=g)], sums / counts.clamp_min(1)[:, None])
    return c


def fit_pq_torch(train: np.ndarray, D: int, K: int, seed: int, iters: int = 20) -> Dict:
    x = torch.from_numpy(np.ascontiguousarray(train, dtype=np.float32))
    P = x.shape[1]
    g = torch.Generator().manual_seed(seed)
    sub = P // D
    cents = torch.stack([_kmeans(x[:, d * sub : (d + 1) * sub], K, iters, g) for d in range(D)])
    return {"rotation": None, "centroids": cents, "method": "pq-kmeans"}


def fit_opq_faiss(train: np.ndarray, D: int, K: int, seed: int) -> Dict:
    import faiss

    if K != 256:
        raise ValueError("faiss OPQ here uses 8-bit codes: codebook_size must be 256")
    faiss.omp_set_num_threads(torch.get_num_threads())
    P = train.shape[1]
    xt = np.ascontiguousarray(train, dtype=np.float32)
    pq = faiss.ProductQuantizer(P, D, 8)
    pq.cp.seed = seed
    pq.cp.min_points_per_centroid = 1  # small catalogues: no "please provide more points" spam
    opq = faiss.OPQMatrix(P, D)
    opq.verbose = False
    opq.pq = pq  # OPQ alternates rotation and PQ training on this quantizer
    opq.train(xt)
    pq.train(opq.apply(xt))
    rot = faiss.vector_to_array(opq.A).reshape(P, P)
    cents = faiss.vector_to_array(pq.centroids).reshape(D, K, P // D)
    return {"rotation": torch.from_numpy(rot.copy()), "centroids": torch.from_numpy(cents.copy()), "method": "opq-faiss"}


def fit_quantizer(vectors: np.ndarray, train_items: np.ndarray, D: int, K: int, seed: int,
                  method: Optional[str] = None) -> Dict:
    """Fits on the training items' vectors only (no valid/test leakage, the "strict" setting)."""
    P = vectors.shape[1]
    if P % D:
        raise ValueError(f"text vector size {P} is not divisible by num_subspaces={D}")
    if method is None:
        try:
            import faiss  # noqa: F401

            # faiss k-means needs at least K training points per sub-space
            method = "opq-faiss" if K == 256 and len(train_items) >= K else "pq-kmeans"
        except ImportError:
            method = "pq-kmeans"
    train = vectors[train_items]
    return fit_opq_faiss(train, D, K, seed) if method == "opq-faiss" else fit_pq_torch(train, D, K, seed)


def encode(vectors: np.ndarray, q: Dict) -> torch.Tensor:
    """float32 [n, P] -> uint8 codes [n, D] (nearest centroid per sub-space after rotation)."""
    x = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    if q["rotation"] is not None:
        x = x @ q["rotation"].T
    cents = q["centroids"]
    D, K, sub = cents.shape
    if x.shape[1] != D * sub:
        raise ValueError(f"vectors have size {x.shape[1]}, the quantizer expects {D * sub}")
    codes = torch.stack([_nearest(x[:, d * sub : (d + 1) * sub], cents[d]) for d in range(D)], 1)
    return codes.to(torch.uint8)
