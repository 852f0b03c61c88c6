"""Marks for tests that need a CUDA device and the compiled vqrec_fast._C_cuda module."""
from __future__ import annotations

import pytest
import torch

import vqrec_fast.cuda as vcuda

needs_cuda = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]
needs_cuda_kernels = needs_cuda + [
    pytest.mark.skipif(vcuda._C_cuda is None, reason="vqrec_fast._C_cuda was not built"),
]
