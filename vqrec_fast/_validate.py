"""Argument checks shared by the ops. Every error names the argument and the offending value."""
from __future__ import annotations

from typing import Optional, Sequence

import torch

INDEX_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def check_tensor(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def check_float32(x: torch.Tensor, name: str) -> None:
    check_tensor(x, name)
    if x.dtype != torch.float32:
        raise TypeError(f"{name} must be float32, got {x.dtype}")


def check_ndim(x: torch.Tensor, ndim: int, name: str, shape_doc: str) -> None:
    check_tensor(x, name)
    if x.dim() != ndim:
        raise ValueError(f"{name} must have shape {shape_doc}, got {tuple(x.shape)}")


def check_same_device(tensors: Sequence[torch.Tensor], names: Sequence[str]) -> None:
    dev = tensors[0].device
    for t, n in zip(tensors[1:], names[1:]):
        if t.device != dev:
            raise ValueError(f"{n} is on {t.device} but {names[0]} is on {dev}; move them to one device")


def check_codes(codes: torch.Tensor, K: int, D: Optional[int], name: str = "codes") -> None:
    """codes: integer [N, D] with values in [0, K)."""
    check_tensor(codes, name)
    if codes.dtype not in INDEX_DTYPES:
        raise TypeError(f"{name} must be an integer tensor (uint8 when K <= 256), got {codes.dtype}")
    if codes.dim() != 2:
        raise ValueError(f"{name} must have shape [N, D], got {tuple(codes.shape)}")
    if D is not None and codes.shape[1] != D:
        raise ValueError(f"{name} has {codes.shape[1]} sub-spaces (shape {tuple(codes.shape)}) but W has D={D}")
    if codes.numel() == 0:
        return
    if codes.dtype == torch.uint8 and K >= 256:
        return
    lo, hi = int(codes.min()), int(codes.max())
    if lo < 0 or hi >= K:
        bad = (codes < 0) | (codes >= K)
        n, d = (int(v) for v in bad.nonzero()[0])
        raise ValueError(f"{name}[{n}, {d}] = {int(codes[n, d])} is outside [0, K={K})")


def check_ids(ids: torch.Tensor, num_items: int, name: str = "item_ids") -> None:
    check_tensor(ids, name)
    if ids.dtype not in INDEX_DTYPES or ids.dtype == torch.uint8:
        raise TypeError(f"{name} must be an int64 (or other signed integer) tensor, got {ids.dtype}")
    if ids.numel() == 0:
        return
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= num_items:
        bad = ((ids < 0) | (ids >= num_items)).nonzero()[0].tolist()
        raise ValueError(
            f"{name}[{', '.join(map(str, bad))}] = {int(ids[tuple(bad)])} is outside [0, {num_items}) "
            f"(0 is the padding item; the table has {num_items} rows)"
        )


def check_finite(x: torch.Tensor, name: str) -> None:
    if x.numel() and not bool(torch.isfinite(x).all()):
        idx = (~torch.isfinite(x)).nonzero()[0].tolist()
        raise ValueError(f"{name}[{', '.join(map(str, idx))}] = {x[tuple(idx)].item()} is not finite")


def native_code_tensor(codes: torch.Tensor):
    """Returns (contiguous codes in a dtype the C++ core reads, its name there)."""
    if codes.dtype == torch.uint8:
        return codes.contiguous(), "uint8"
    return codes.to(torch.int32).contiguous(), "int32"
