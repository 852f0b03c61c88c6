"""The output cache (vqrec_fast/ops/output_cache.py): freed outputs of the native ops are reused,
a reused buffer never leaks its old contents into a result, and the limit holds."""
from __future__ import annotations

import threading

import pytest
import torch

import vqrec_fast as vf
from vqrec_fast.ops import output_cache as oc
from vqrec_fast.reference import code_bag_ref, code_bag_seq_backward_ref, code_bag_seq_ref

from tolerance import assert_close

pytestmark = pytest.mark.skipif(not vf.has_native(), reason="the output cache serves the native kernels")

D, K, H = 8, 64, 400
ITEMS = 300


@pytest.fixture(autouse=True)
def roomy_cache():
    before = vf.output_cache_info()["limit_bytes"]
    vf.set_output_cache_limit(256 << 20)
    vf.empty_output_cache()
    yield
    vf.set_output_cache_limit(before)
    vf.empty_output_cache()


def problem(seed):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, K, H, generator=g)
    codes = torch.randint(0, K, (ITEMS, D), generator=g, dtype=torch.uint8)
    return W, codes


def batch(seed, real):
    """[64, 50] ids (5 MiB of output rows at H=400) with `real` leading real items per row."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(64, 50, dtype=torch.int64)
    ids[:, :real] = torch.randint(1, ITEMS, (64, real), generator=g)
    return ids


def test_a_freed_output_is_reused_and_its_old_contents_never_show():
    W, codes = problem(0)
    full = batch(1, 50)  # every position real
    out = vf.code_bag_seq(W, codes, full)
    assert out.nbytes >= oc.MIN_BYTES
    address = out.data_ptr()
    out.fill_(float("nan"))  # the caller scribbles over its output, then frees it
    del out
    reused = vf.output_cache_info()["reused"]
    short = batch(2, 3)  # now mostly padding: those rows must come back as exact zeros
    got = vf.code_bag_seq(W, codes, short)
    assert got.data_ptr() == address
    assert vf.output_cache_info()["reused"] == reused + 1
    assert bool((got[:, 3:] == 0).all())
    assert_close(got, code_bag_seq_ref(W, codes, short), rtol=1e-6, atol=1e-6, name="reused output")


def test_gradients_and_catalogue_rows_from_reused_buffers():
    W, codes = problem(3)
    many = torch.randint(0, K, (4000, D), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    for seed in (5, 6):  # the second round runs on buffers the first one freed and scribbled on
        ids = batch(seed, 7)
        Wg = W.clone().requires_grad_(True)
        out = vf.code_bag_seq(Wg, codes, ids)
        grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
        out.backward(grad)
        assert_close(Wg.grad, code_bag_seq_backward_ref(grad, codes, ids, D, K), rtol=1e-5, atol=1e-5,
                     name="grad W")
        rows = vf.code_bag(W, torch.cat([many, many]))  # [8000, 400]: 12.8 MB
        assert_close(rows, code_bag_ref(W, torch.cat([many, many])), rtol=1e-6, atol=1e-6, name="catalogue rows")
        for t in (out, Wg.grad, rows):
            t.detach().fill_(float("nan"))
        del out, Wg, rows
    assert vf.output_cache_info()["reused"] >= 2


def test_limit_zero_turns_it_off_and_large_outputs_bypass():
    W, codes = problem(7)
    vf.set_output_cache_limit(0)
    out = vf.code_bag_seq(W, codes, batch(8, 4))
    del out
    assert vf.output_cache_info()["cached_bytes"] == 0
    vf.set_output_cache_limit(oc.MIN_BYTES)  # smaller than the 5 MiB outputs below
    allocated = vf.output_cache_info()["allocated"]
    out = vf.code_bag_seq(W, codes, batch(9, 4))
    del out
    info = vf.output_cache_info()
    assert info["allocated"] == allocated and info["cached_bytes"] == 0


def test_cache_never_holds_more_than_its_limit():
    W, codes = problem(10)
    vf.set_output_cache_limit(12 << 20)  # room for one 6 MiB block (5 MiB rounded to 2 MiB pages) twice
    outs = [vf.code_bag_seq(W, codes, batch(11 + i, 4)) for i in range(4)]  # four live at once
    del outs
    assert vf.output_cache_info()["cached_bytes"] <= 12 << 20
    vf.set_output_cache_limit(6 << 20)  # shrinking frees the excess at once
    assert vf.output_cache_info()["cached_bytes"] <= 6 << 20
    vf.empty_output_cache()
    assert vf.output_cache_info()["cached_bytes"] == 0


def test_outputs_freed_on_another_thread():
    W, codes = problem(12)
    outs = [vf.code_bag_seq(W, codes, batch(13 + i, 4)) for i in range(3)]
    ref = code_bag_seq_ref(W, codes, batch(13, 4))

    def drop(ts):
        ts.clear()

    worker = threading.Thread(target=drop, args=(outs,))
    worker.start()
    worker.join()
    assert vf.output_cache_info()["cached_bytes"] > 0
    assert_close(vf.code_bag_seq(W, codes, batch(13, 4)), ref, rtol=1e-6, atol=1e-6, name="after a cross-thread free")


def test_bad_limits(monkeypatch):
    for bad in (-1, 1.5, True, "64"):
        with pytest.raises(ValueError, match="output cache limit"):
            vf.set_output_cache_limit(bad)
    monkeypatch.setenv("VQREC_FAST_OUTPUT_CACHE_MB", "lots")
    with pytest.warns(RuntimeWarning, match="VQREC_FAST_OUTPUT_CACHE_MB"):
        assert oc._limit_from_env() == 256 << 20
    monkeypatch.setenv("VQREC_FAST_OUTPUT_CACHE_MB", "64")
    assert oc._limit_from_env() == 64 << 20


def test_environment_limit_reaches_a_fresh_process():
    import os
    import subprocess
    import sys

    env = dict(os.environ, VQREC_FAST_OUTPUT_CACHE_MB="64")
    out = subprocess.run([sys.executable, "-m", "vqrec_fast.cli", "info"], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert "output cache: up to 64 MiB" in out
