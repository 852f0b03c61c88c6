"""Where the Triton tests run: on the GPU when there is one, else on the CPU under Triton's
interpreter. TRITON_INTERPRET must be set before triton is first imported, so test files
import this module before anything that imports triton."""
from __future__ import annotations

import os

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

triton = pytest.importorskip("triton", reason="triton is not installed")

DEVICE = torch.device("cuda" if HAS_CUDA else "cpu")
