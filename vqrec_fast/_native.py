"""Loads the native extension. A missing or broken build degrades to the pure-PyTorch
reference path with a warning; importing vqrec_fast never fails because of it."""
from __future__ import annotations

import contextlib
import os
import warnings
from typing import Iterator, List, Optional

import torch
from torch import Tensor

import importlib.util

_C = None
_LOAD_ERROR: Optional[str] = None
if importlib.util.find_spec(f"{__package__}._C") is None:
    _LOAD_ERROR = "the extension vqrec_fast._C was not built"
else:
    try:
        from . import _C as _C  # type: ignore[attr-defined,no-redef]
    except ImportError as exc:  # pragma: no cover - exercised only on broken installs
        _LOAD_ERROR = str(exc)
if _C is None:
    warnings.warn(
        f"vqrec_fast: native CPU kernels unavailable ({_LOAD_ERROR}); falling back to the "
        "pure-PyTorch reference kernels, which are much slower. Build with `pip install .` "
        "(or `python setup.py build_ext --inplace` in a checkout).",
        RuntimeWarning,
        stacklevel=2,
    )

_LEVELS = ("scalar", "avx2", "avx512")

if _C is not None:
    _env = os.environ.get("VQREC_FAST_SIMD", "")
    if _env and _env not in _LEVELS:
        warnings.warn(
            f"VQREC_FAST_SIMD={_env!r} is not one of {_LEVELS}; using {_C.simd_level()!r}",
            RuntimeWarning,
            stacklevel=2,
        )


def has_native() -> bool:
    """True when the compiled CPU kernels are available."""
    return _C is not None


def native():
    """The extension module; raises RuntimeError when it is missing."""
    if _C is None:
        raise RuntimeError(f"vqrec_fast native extension is not available: {_LOAD_ERROR}")
    return _C


def simd_level() -> str:
    """SIMD level the CPU kernels use now: 'scalar', 'avx2', 'avx512' ('none' without the extension)."""
    return _C.simd_level() if _C is not None else "none"


def detected_simd_level() -> str:
    """Best SIMD level this CPU supports."""
    return _C.detected_simd_level() if _C is not None else "none"


def available_simd_levels() -> List[str]:
    """Every level this machine can run, lowest first (tests iterate over these)."""
    if _C is None:
        return []
    best = _LEVELS.index(_C.detected_simd_level())
    return list(_LEVELS[: best + 1])


def set_simd_level(level: str) -> None:
    """Selects the SIMD level for all CPU kernels (must be supported by this CPU)."""
    if level not in _LEVELS:
        raise ValueError(f"SIMD level must be one of {_LEVELS}, got {level!r}")
    native().set_simd_level(level)


@contextlib.contextmanager
def simd_level_context(level: str) -> Iterator[None]:
    """Temporarily runs the CPU kernels at `level`."""
    previous = simd_level()
    set_simd_level(level)
    try:
        yield
    finally:
        set_simd_level(previous)


def num_threads() -> int:
    """Threads the native kernels use: follows torch.get_num_threads()."""
    return max(1, torch.get_num_threads())


_HUGE_MIN_BYTES = 8 << 20  # below this (and above 512 MiB) the core ignores the advice (csrc/cpu/code_bag.cpp)


def empty_huge(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """torch.empty(shape) on the CPU, advised as transparent huge pages before first touch.

    A large fresh buffer is mapped anew by the allocator at every call, and faulting it in on
    4 KiB pages costs more than many kernels that fill it (a [2048, 8192] float buffer: ~20 ms
    to fault and clear vs ~4 ms on 2 MiB pages, measured here). Advisory only: without the
    extension, or where the OS declines, this is plain torch.empty.
    """
    t = torch.empty(*shape, dtype=dtype)
    nbytes = t.numel() * t.element_size()
    if _C is not None and nbytes >= _HUGE_MIN_BYTES:
        _C.advise_huge_pages(t.data_ptr(), nbytes)
    return t
