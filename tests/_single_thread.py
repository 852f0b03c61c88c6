"""Autouse fixture for the model/training tests: one torch thread while they run (the test
machine's 2 cores are shared; a second OpenMP thread that waits on a busy core slows these
small matmuls down several-fold), restored afterwards."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
