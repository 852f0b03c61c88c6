"""Fitted vector -> code maps. Each has ``encode(x: float32 [n, dim]) -> uint8 [n, D]`` and
round-trips through bytes (``state()`` / ``from_state``) so ``ItemCodes`` can save it.

- ``FaissPQ``: a faiss ``[OPQ{D},]IVF1,PQ{D}x{bits}`` index (the VQ-Rec recipe; without OPQ it is
  the "plain PQ" baseline). Codes are computed exactly as ``index.add`` stores them: the OPQ
  rotation, the residual from the single coarse centroid, then PQ assignment.
- ``ResidualKMeans``: faiss ``ResidualQuantizer`` with beam size 1, i.e. k-means on the residual
  of the previous level (TIGER-style semantic ids); digit d is the level-d centroid.
- ``RandomCodes``: uniform random digits that ignore the vector (the control in the ablation);
  a new vector's code is seeded by its bytes, so encoding is deterministic.
Vectors whose dimension is not a multiple of D are zero-padded (padding changes no distance).
"""
from __future__ import annotations

import hashlib
from typing import Dict

import numpy as np


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ImportError("item codes need faiss: pip install faiss-cpu") from None
    return faiss


def _as_f32(x, dim: int, name: str = "vectors") -> np.ndarray:
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape [n, {dim}], got {tuple(x.shape)}")
    if not np.isfinite(x).all():
        bad = int(np.argwhere(~np.isfinite(x))[0, 0])
        raise ValueError(f"{name} row {bad} contains NaN or Inf")
    return x


def unpack_codes(packed: np.ndarray, num_subspaces: int, bits: int) -> np.ndarray:
    """faiss bit-packed codes (digit d in bits [d*bits, (d+1)*bits), least significant bit
    first) -> uint8 [n, num_subspaces]. 8-bit codes are already one byte per digit."""
    packed = np.ascontiguousarray(packed, dtype=np.uint8)
    if bits == 8:
        return packed[:, :num_subspaces].copy()
    b = np.unpackbits(packed, axis=1, bitorder="little")[:, : num_subspaces * bits]
    b = b.reshape(len(packed), num_subspaces, bits).astype(np.uint8)
    return (b << np.arange(bits, dtype=np.uint8)).sum(axis=2, dtype=np.uint8)


def _pad(x: np.ndarray, to: int) -> np.ndarray:
    if x.shape[1] == to:
        return x
    out = np.zeros((x.shape[0], to), dtype=np.float32)
    out[:, : x.shape[1]] = x
    return out


class FaissPQ:
    """IndexPreTransform(OPQ) + IndexIVFPQ(nlist=1), or IndexIVFPQ(nlist=1) alone."""

    def __init__(self, index, dim: int):
        faiss = _faiss()
        self.index, self.dim = index, dim
        if isinstance(index, faiss.IndexPreTransform):
            self.transforms = [faiss.downcast_VectorTransform(index.chain.at(i)) for i in range(index.chain.size())]
            ivf = faiss.downcast_index(index.index)
        else:
            self.transforms, ivf = [], faiss.downcast_index(index)
        if not isinstance(ivf, faiss.IndexIVFPQ) or ivf.nlist != 1:
            raise ValueError(f"expected an IVF1,PQ index (optionally behind OPQ), got {type(ivf).__name__}"
                             f" with nlist={getattr(ivf, 'nlist', '?')}")
        self.ivf = ivf
        self.num_subspaces, self.bits = int(ivf.pq.M), int(ivf.pq.nbits)
        self.centroid = faiss.downcast_index(ivf.quantizer).reconstruct(0) if ivf.by_residual else None

    @classmethod
    def train(cls, x: np.ndarray, num_subspaces: int, bits: int, rotate: bool, seed: int) -> "FaissPQ":
        faiss = _faiss()
        dim = x.shape[1]
        dpad = -(-dim // num_subspaces) * num_subspaces
        spec = (f"OPQ{num_subspaces}," if rotate else "") + f"IVF1,PQ{num_subspaces}x{bits}"
        index = faiss.index_factory(dpad, spec, faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        ivf.pq.cp.seed = seed
        ivf.cp.seed = seed
        if rotate:
            opq = faiss.downcast_VectorTransform(index.chain.at(0))
            opq.verbose = False
        index.train(_pad(x, dpad))
        return cls(index, dim)

    def encode(self, x) -> np.ndarray:
        x = _pad(_as_f32(x, self.dim), self.index.d)
        for vt in self.transforms:
            x = vt.apply(x)
        if self.centroid is not None:
            x = x - self.centroid[None, :]
        packed = self.ivf.pq.compute_codes(np.ascontiguousarray(x, dtype=np.float32))
        return unpack_codes(packed, self.num_subspaces, self.bits)

    def state(self) -> Dict[str, np.ndarray]:
        return {"faiss_index": _faiss().serialize_index(self.index), "dim": np.int64(self.dim)}

    @classmethod
    def from_state(cls, st) -> "FaissPQ":
        return cls(_faiss().deserialize_index(np.asarray(st["faiss_index"])), int(st["dim"]))


class ResidualKMeans:
    def __init__(self, rq, dim: int):
        self.rq, self.dim = rq, dim
        self.num_subspaces, self.bits = int(rq.M), int(rq.nbits.at(0))

    @classmethod
    def train(cls, x: np.ndarray, num_subspaces: int, bits: int, seed: int) -> "ResidualKMeans":
        faiss = _faiss()
        rq = faiss.ResidualQuantizer(x.shape[1], num_subspaces, bits)
        rq.max_beam_size = 1  # greedy residual k-means, as TIGER's semantic ids
        rq.train_type = faiss.ResidualQuantizer.Train_default  # plain k-means per level
        rq.cp.seed = seed
        rq.train(x)
        return cls(rq, x.shape[1])

    def encode(self, x) -> np.ndarray:
        return unpack_codes(self.rq.compute_codes(_as_f32(x, self.dim)), self.num_subspaces, self.bits)

    def state(self) -> Dict[str, np.ndarray]:
        # the codebooks are the whole fitted state (float32 [D * K * dim])
        return {"codebooks": _faiss().vector_to_array(self.rq.codebooks), "dim": np.int64(self.dim),
                "num_subspaces": np.int64(self.num_subspaces), "bits": np.int64(self.bits)}

    @classmethod
    def from_state(cls, st) -> "ResidualKMeans":
        faiss = _faiss()
        rq = faiss.ResidualQuantizer(int(st["dim"]), int(st["num_subspaces"]), int(st["bits"]))
        rq.max_beam_size = 1
        faiss.copy_array_to_vector(np.ascontiguousarray(st["codebooks"], dtype=np.float32), rq.codebooks)
        rq.is_trained = True
        return cls(rq, int(st["dim"]))


class RandomCodes:
    def __init__(self, dim: int, num_subspaces: int, bits: int, seed: int):
        self.dim, self.num_subspaces, self.bits, self.seed = dim, num_subspaces, bits, seed

    def encode(self, x) -> np.ndarray:
        x = _as_f32(x, self.dim)
        out = np.empty((len(x), self.num_subspaces), dtype=np.uint8)
        for i, row in enumerate(x):
            h = int.from_bytes(hashlib.sha256(row.tobytes() + self.seed.to_bytes(8, "little")).digest()[:8], "little")
            out[i] = np.random.default_rng(h).integers(0, 1 << self.bits, self.num_subspaces)
        return out

    def state(self) -> Dict[str, np.ndarray]:
        return {"dim": np.int64(self.dim), "seed": np.int64(self.seed), "num_subspaces": np.int64(self.num_subspaces),
                "bits": np.int64(self.bits)}

    @classmethod
    def from_state(cls, st) -> "RandomCodes":
        return cls(int(st["dim"]), int(st["num_subspaces"]), int(st["bits"]), int(st["seed"]))


QUANTIZERS = {"faiss_pq": FaissPQ, "rq": ResidualKMeans, "random": RandomCodes}
