"""A cache of large CPU output buffers between op calls (native core: ``common/output_pool.h``).

torch's CPU allocator maps every large tensor afresh and unmaps it when it is freed, so each call
of an op pays the page faults and zero-filling of its whole output: for the code bag's
training-step output ([2048, 50, 300] floats, 123 MB) that was about half of the forward. The
native ops therefore take outputs of at least ``MIN_BYTES`` from this cache: when such an output
is freed (a training loop frees each step's output before the next step), its pages go back to
the cache and the next output of a similar size reuses them. PyTorch's CUDA caching allocator does
the same on GPUs.

The cache holds at most ``limit`` bytes of *freed* buffers (default 256 MiB; environment variable
``VQREC_FAST_OUTPUT_CACHE_MB``, or ``set_output_cache_limit``); outputs larger than the limit
bypass it. ``empty_output_cache()`` frees what it holds. Tensors it hands out are ordinary CPU
tensors except that their storage cannot grow in place (``resize_`` to a larger size raises).

Example::

    >>> import vqrec_fast as vf
    >>> vf.set_output_cache_limit(64 << 20)   # keep at most 64 MiB of freed outputs
    >>> sorted(vf.output_cache_info())
    ['allocated', 'cached_bytes', 'limit_bytes', 'reused']
    >>> vf.empty_output_cache()
"""
from __future__ import annotations

import math
import os
import warnings
from typing import Dict, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .._native import _C

#: outputs smaller than this come from torch's allocator (its small blocks are cheap already)
MIN_BYTES = 4 << 20
_DEFAULT_LIMIT = 256 << 20
_ENV = "VQREC_FAST_OUTPUT_CACHE_MB"


def _limit_from_env() -> int:
    text = os.environ.get(_ENV, "")
    if not text:
        return _DEFAULT_LIMIT
    try:
        mb = float(text)
        if not (mb >= 0 and math.isfinite(mb)):
            raise ValueError
    except ValueError:
        warnings.warn(f"{_ENV}={text!r} is not a number of MiB >= 0; using {_DEFAULT_LIMIT >> 20}",
                      RuntimeWarning, stacklevel=3)
        return _DEFAULT_LIMIT
    return int(mb * (1 << 20))


_limit = 0


def set_output_cache_limit(nbytes: int) -> None:
    """Keep at most ``nbytes`` of freed outputs for reuse (0 turns the cache off); frees any excess now."""
    global _limit
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError(f"output cache limit must be an integer number of bytes >= 0, got {nbytes!r}")
    _limit = nbytes
    if _C is not None:
        _C.output_cache_set_limit(nbytes)


def empty_output_cache() -> None:
    """Free every cached output buffer (outputs still in use are not affected)."""
    if _C is not None:
        _C.output_cache_clear()


def output_cache_info() -> Dict[str, int]:
    """limit_bytes, cached_bytes (freed buffers held now), reused and allocated (counts of outputs
    served from the cache and newly allocated since import)."""
    if _C is None:
        return {"limit_bytes": _limit, "cached_bytes": 0, "reused": 0, "allocated": 0}
    return dict(_C.output_cache_info())


def empty_output(shape: Sequence[int]) -> Tuple[Tensor, bool]:
    """An uninitialised float32 CPU tensor of ``shape`` for a native op to fill, and whether its
    memory is fresh (never written, so untouched pages read as zero). Sizes between MIN_BYTES and
    the cache limit come from the cache; others from torch's allocator (fresh)."""
    n = math.prod(shape)
    nbytes = 4 * n
    if _C is None or nbytes < MIN_BYTES or nbytes > _limit:
        return torch.empty(*shape, dtype=torch.float32), True
    buf = _C.pooled_buffer(nbytes)
    # numpy keeps buf alive, the tensor keeps the array alive: the block returns to the cache
    # when the last view of the tensor is freed.
    arr = np.frombuffer(buf, dtype=np.float32, count=n).reshape(tuple(shape))
    return torch.from_numpy(arr), buf.fresh


set_output_cache_limit(_limit_from_env())
