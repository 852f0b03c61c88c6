"""The CUDA sources compile with this machine's nvcc (no GPU needed). Skips without nvcc."""
from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "csrc" / "cuda").glob("*.cu"))
NVCC = shutil.which("nvcc") or shutil.which("nvcc", path="/usr/local/cuda/bin")


@pytest.mark.skipif(NVCC is None, reason="nvcc not found")
def test_cuda_sources_compile(tmp_path):
    assert SOURCES, "no csrc/cuda/*.cu found"
    # One architecture is enough to check the code; the build itself targets sm_80 + sm_90.
    arch = os.environ.get("VQREC_FAST_TEST_CUDA_ARCH", "sm_90")

    def compile_one(src: Path):
        cmd = [NVCC, "-std=c++17", "-O1", f"-arch={arch}", "-I", str(REPO / "csrc"), "-c", str(src),
               "-o", str(tmp_path / (src.stem + ".o"))]
        return src.name, subprocess.run(cmd, capture_output=True, text=True, timeout=170)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(compile_one, SOURCES))
    failed = [f"{name}:\n{r.stderr[-3000:]}" for name, r in results if r.returncode != 0]
    assert not failed, "nvcc failed:\n" + "\n".join(failed)
