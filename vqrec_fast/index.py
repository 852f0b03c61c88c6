"""CodeIndex: a serve-ready top-k index over code-composed items.

Holds the codebooks W float32 [D, K, H], the item codes [N, D] (uint8 when K <= 256) and, for
metric="cosine", the item scales 1 / ||item_n|| computed once from W and the codes, so that a
search is one LUT GEMM plus the native ADC scan (``vqrec_fast.score_topk``). Item ids are row
indices 0..N-1 in insertion order.

Files: one ``.npz`` holding format_version, metric, W, codes and item_scale; loading checks the
version, dtypes, shapes and code ranges and that there is one stored scale per item, and turns
any unreadable or inconsistent file into a ValueError naming the file and the problem.
"""
from __future__ import annotations

import os
import zipfile
from typing import Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from . import _validate as V
from .ops.score_topk import METRICS, Exclude, _check_k, item_scales, topk_checked

FORMAT_VERSION = 1
_FIELDS = ("format_version", "metric", "W", "codes", "item_scale")


class CodeIndex:
    """Top-k search over items given by codes into learned codebooks.

    Args:
        W: float32 [D, K, H] codebooks (copied; later changes to the caller's tensor do not
            affect the index).
        codes: integer [N, D] in [0, K), or None for an empty index.
        metric: "cosine" (VQ-Rec's scoring; queries normalised, items scaled by 1 / norm) or "ip".
        item_scale: optional float32 [N] 1 / ||item_n|| already computed for `codes` (cosine
            only); by default they are computed here, O(N * D * H).

    Example:
        >>> import torch, vqrec_fast
        >>> W = torch.randn(32, 256, 300)
        >>> index = vqrec_fast.CodeIndex(W, torch.randint(0, 256, (1000, 32), dtype=torch.uint8))
        >>> scores, ids = index.search(torch.randn(4, 300), k=10)
        >>> ids.shape
        torch.Size([4, 10])
    """

    def __init__(
        self, W: Tensor, codes: Optional[Tensor] = None, *, metric: str = "cosine", item_scale: Optional[Tensor] = None
    ) -> None:
        V.check_float32(W, "W")
        V.check_ndim(W, 3, "W", "[D, K, H]")
        if W.shape[0] < 1 or W.shape[1] < 1:
            raise ValueError(f"W must have D >= 1 and K >= 1, got shape {tuple(W.shape)}")
        V.check_finite(W, "W")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        self.W = W.detach().cpu().contiguous().clone()
        self.metric = metric
        D, K, _ = self.W.shape
        self._code_dtype = torch.uint8 if K <= 256 else torch.int32
        self._codes = torch.zeros(0, D, dtype=self._code_dtype)
        self._scale: Optional[Tensor] = torch.zeros(0) if metric == "cosine" else None
        if item_scale is not None and (metric != "cosine" or codes is None):
            raise ValueError("item_scale is only accepted together with codes and metric='cosine'")
        if codes is not None:
            self.add(codes, item_scale=item_scale)

    # ------------------------------------------------------------------ properties
    @property
    def D(self) -> int:
        return self.W.shape[0]

    @property
    def K(self) -> int:
        return self.W.shape[1]

    @property
    def H(self) -> int:
        return self.W.shape[2]

    @property
    def codes(self) -> Tensor:
        """[N, D] item codes (read-only view)."""
        return self._codes

    @property
    def item_scale(self) -> Optional[Tensor]:
        """float32 [N] 1 / ||item_n|| for metric="cosine", else None."""
        return self._scale

    def __len__(self) -> int:
        return self._codes.shape[0]

    def __repr__(self) -> str:
        return f"CodeIndex(N={len(self)}, D={self.D}, K={self.K}, H={self.H}, metric={self.metric!r})"

    # ------------------------------------------------------------------ building
    def add(self, codes: Tensor, *, item_scale: Optional[Tensor] = None) -> Tensor:
        """Appends items; returns their ids (int64 [M]).

        codes: integer [M, D] in [0, K); item_scale: optional float32 [M] precomputed
        1 / ||item|| (cosine only)."""
        V.check_codes(codes, self.K, self.D, "codes")
        codes = codes.detach().cpu().to(self._code_dtype)
        first = len(self)
        if item_scale is not None:
            V.check_float32(item_scale, "item_scale")
            if self._scale is None or item_scale.shape != (codes.shape[0],):
                raise ValueError(f"item_scale must be float32 [{codes.shape[0]}] and metric 'cosine'")
            V.check_finite(item_scale, "item_scale")
            if codes.shape[0] and float(item_scale.min()) < 0:
                raise ValueError("item_scale must be >= 0")
        if self._scale is not None:
            new = item_scale.detach().cpu() if item_scale is not None else item_scales(self.W, codes)
            self._scale = torch.cat([self._scale, new])
        self._codes = torch.cat([self._codes, codes]).contiguous()
        return torch.arange(first, len(self), dtype=torch.int64)

    # ------------------------------------------------------------------ search
    def search(self, queries: Tensor, k: int, *, exclude: Exclude = None) -> Tuple[Tensor, Tensor]:
        """(scores float32 [B, min(k, N)], ids int64 [B, min(k, N)]) for queries float32 [B, H].

        exclude: per-query ids never to return (see ``vqrec_fast.score_topk``)."""
        _check_k(k)
        return topk_checked(queries, self.W, self._codes, k, self._scale, exclude, self.metric)

    # ------------------------------------------------------------------ files
    def save(self, path: Union[str, os.PathLike]) -> None:
        """Writes the index to one .npz file (format version FORMAT_VERSION)."""
        scale = self._scale if self._scale is not None else torch.zeros(0)
        with open(path, "wb") as f:
            np.savez(
                f,
                format_version=np.array(FORMAT_VERSION, dtype=np.int64),
                metric=np.array(self.metric),
                W=self.W.numpy(),
                codes=self._codes.numpy(),
                item_scale=scale.numpy(),
            )

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "CodeIndex":
        """Reads a file written by ``save``; raises ValueError if it is corrupt or inconsistent."""
        arrays = _read_npz(path)
        where = f"CodeIndex file {os.fspath(path)!r}"
        version = int(arrays["format_version"])
        if version != FORMAT_VERSION:
            raise ValueError(f"{where} has format version {version}; this vqrec_fast reads {FORMAT_VERSION}")
        metric = str(arrays["metric"])
        W, codes, scale = arrays["W"], arrays["codes"], arrays["item_scale"]
        if W.dtype != np.float32 or W.ndim != 3:
            raise ValueError(f"{where}: W must be float32 [D, K, H], got {W.dtype} {W.shape}")
        if codes.ndim != 2 or codes.shape[1] != W.shape[0] or codes.dtype not in (np.uint8, np.int32):
            raise ValueError(f"{where}: codes {codes.dtype} {codes.shape} do not match W {W.shape}")
        try:
            index = cls(torch.from_numpy(W.copy()), None, metric=metric)
            V.check_codes(torch.from_numpy(codes.copy()), index.K, index.D, "codes")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from exc
        index._codes = torch.from_numpy(codes.copy()).to(index._code_dtype)
        if metric == "cosine":
            if scale.dtype != np.float32 or scale.shape != (codes.shape[0],):
                raise ValueError(f"{where}: item_scale {scale.dtype} {scale.shape} does not match {codes.shape[0]} items")
            index._scale = torch.from_numpy(scale.copy())
            V.check_finite(index._scale, "item_scale")
        return index


def _read_npz(path) -> dict:
    where = f"CodeIndex file {os.fspath(path)!r}"
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _FIELDS if k not in z.files]
            if missing:
                raise ValueError(f"{where} lacks {missing}; is it a CodeIndex file?")
            return {k: z[k] for k in _FIELDS}
    except FileNotFoundError:
        raise
    except ValueError as exc:
        if str(exc).startswith(where):
            raise
        raise ValueError(f"{where} is corrupt or not a CodeIndex file: {exc}") from exc
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"{where} is corrupt or not a CodeIndex file: {exc}") from exc
