"""Shared fixtures: SIMD levels to re-run native kernels at, and paths to ../shared/data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import vqrec_fast as vf

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("VQREC_FAST_SHARED_DATA", REPO.parent / "shared" / "data"))

SIMD_LEVELS = vf.available_simd_levels() or ["none"]


@pytest.fixture(params=SIMD_LEVELS)
def simd_level(request):
    """Runs the test once per SIMD level this machine supports."""
    if request.param == "none":
        yield "none"
        return
    with vf.simd_level_context(request.param):
        yield request.param


def _data_dir(name: str) -> Path:
    p = SHARED_DATA / name
    if not p.is_dir():
        pytest.skip(f"real data not available: {p} (tests that need ../shared/data skip without it)")
    return p


@pytest.fixture
def scientific_dir() -> Path:
    return _data_dir("amazon2018-scientific")


@pytest.fixture
def office_dir() -> Path:
    return _data_dir("amazon2014-office")


@pytest.fixture
def ml100k_dir() -> Path:
    return _data_dir("ml-100k")
