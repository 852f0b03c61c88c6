"""Data-parallel helpers for pre-training (torchrun + DistributedDataParallel).

Every process builds the same global batch (same shuffle seed), takes its contiguous shard of
rows, and all-gathers the target representations so each shard's contrastive loss sees every
in-batch negative of the global batch, as a 1-process run does. The gather is differentiable:
backward all-reduces the gradient of the gathered tensor and keeps this process's slice (only
all_reduce is used, which every backend has, gloo included).
"""
from __future__ import annotations

import os
from typing import List, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor


def world() -> Tuple[int, int]:
    """(rank, world size); (0, 1) when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(backend: str = "auto") -> Tuple[int, int]:
    """Initialises the process group when launched by torchrun (WORLD_SIZE > 1 in the environment).
    backend 'auto' = nccl with CUDA, gloo on CPU."""
    n = int(os.environ.get("WORLD_SIZE", "1"))
    if n > 1 and not dist.is_initialized():
        if backend == "auto":
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return world()


class _GatherRows(torch.autograd.Function):
    """x [n_r, H] on each rank (sizes known to all) -> [sum n, H], rank order."""

    @staticmethod
    def forward(ctx, x: Tensor, sizes: List[int], rank: int) -> Tensor:
        m = max(sizes)
        pad = x.new_zeros(m, x.shape[1])
        pad[: x.shape[0]] = x
        bufs = [torch.empty_like(pad) for _ in sizes]
        dist.all_gather(bufs, pad.contiguous())
        ctx.sizes, ctx.rank = sizes, rank
        return torch.cat([b[:n] for b, n in zip(bufs, sizes)])

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # every rank's loss reads every row: sum their gradients
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None, None


def gather_rows(x: Tensor, sizes: List[int]) -> Tensor:
    """Differentiable all-gather of per-rank row blocks of known sizes (identity on 1 process)."""
    rank, n = world()
    if n == 1:
        return x
    if x.shape[0] != sizes[rank]:
        raise ValueError(f"rank {rank} holds {x.shape[0]} rows, sizes says {sizes[rank]}")
    return _GatherRows.apply(x, list(sizes), rank)


def shard_rows(per_row: np.ndarray, n: int) -> np.ndarray:
    """Splits rows (per_row = examples in each row, in batch order) into n contiguous shards with
    about equal example counts; returns row bounds int64 [n + 1]. A shard may be empty."""
    cum = np.concatenate([[0], np.cumsum(per_row)])
    goals = cum[-1] * np.arange(1, n) / n
    cuts = np.searchsorted(cum, goals, side="left")
    return np.concatenate([[0], cuts, [len(per_row)]]).astype(np.int64)
