"""CodeIndex: search equals score_topk with freshly computed scales; add; save/load round trip;
corrupt and mismatched files raise ValueError naming the file."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

import vqrec_fast as vf
from vqrec_fast.reference import item_scale_ref, score_topk_ref

from tolerance import assert_close


def make(N=700, D=8, K=64, H=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(D, K, H, generator=g), torch.randint(0, K, (N, D), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("metric", ["cosine", "ip"])
def test_search_matches_reference(simd_level, metric):
    W, codes = make()
    index = vf.CodeIndex(W, codes, metric=metric)
    q = torch.randn(5, 16, generator=torch.Generator().manual_seed(1))
    s, i = index.search(q, 12, exclude=[[0, 1], [], [5], [], [699]])
    ref_s, _ = score_topk_ref(q, W, codes, 12, exclude=[[0, 1], [], [5], [], [699]], metric=metric)
    assert_close(s, ref_s, rtol=0, atol=1e-5 * float(ref_s.abs().max()), name="search")
    if metric == "cosine":
        assert_close(index.item_scale, item_scale_ref(W, codes), rtol=1e-5, atol=0, name="scales")
    else:
        assert index.item_scale is None


def test_add_and_copy_semantics():
    W, codes = make()
    index = vf.CodeIndex(W)
    assert len(index) == 0
    assert index.search(torch.randn(2, 16), 3)[0].shape == (2, 0)
    assert torch.equal(index.add(codes[:300]), torch.arange(300))
    assert torch.equal(index.add(codes[300:]), torch.arange(300, 700))
    whole = vf.CodeIndex(W, codes)
    assert torch.equal(index.item_scale, whole.item_scale)
    W.zero_()  # the index holds its own copy
    q = torch.randn(3, 16, generator=torch.Generator().manual_seed(2))
    assert torch.equal(index.search(q, 5)[0], whole.search(q, 5)[0])
    with pytest.raises(ValueError, match=r"codes\[0, 1\] = 64"):
        index.add(torch.tensor([[0, 64, 0, 0, 0, 0, 0, 0]], dtype=torch.int32))
    with pytest.raises(ValueError, match="sub-spaces"):
        index.add(codes[:, :4])


def test_save_load_round_trip(tmp_path):
    W, codes = make()
    for metric in ("cosine", "ip"):
        index = vf.CodeIndex(W, codes, metric=metric)
        path = tmp_path / f"index_{metric}.npz"
        index.save(path)
        back = vf.CodeIndex.load(path)
        assert back.metric == metric and len(back) == len(index)
        assert torch.equal(back.W, index.W) and torch.equal(back.codes, index.codes)
        q = torch.randn(4, 16, generator=torch.Generator().manual_seed(3))
        assert torch.equal(back.search(q, 9)[1], index.search(q, 9)[1])


def test_corrupt_and_mismatched_files(tmp_path):
    W, codes = make()
    good = tmp_path / "good.npz"
    vf.CodeIndex(W, codes).save(good)
    raw = good.read_bytes()

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated.npz.*corrupt"):
        vf.CodeIndex.load(truncated)

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not an index at all")
    with pytest.raises(ValueError, match="garbage.npz"):
        vf.CodeIndex.load(garbage)

    def rewrite(name, **override):
        with np.load(good) as z:
            fields = {k: z[k] for k in z.files}
        fields.update(override)
        p = tmp_path / name
        with open(p, "wb") as f:
            np.savez(f, **fields)
        return p

    with pytest.raises(ValueError, match="format version 99"):
        vf.CodeIndex.load(rewrite("v99.npz", format_version=np.array(99)))
    with pytest.raises(ValueError, match="do not match W"):
        vf.CodeIndex.load(rewrite("d.npz", codes=codes[:, :4].numpy()))
    with pytest.raises(ValueError, match="item_scale"):
        vf.CodeIndex.load(rewrite("s.npz", item_scale=np.ones(3, dtype=np.float32)))
    with pytest.raises(ValueError, match=r"codes\[0, 0\] = 70"):
        bad = codes.to(torch.int32).numpy()
        bad[0, 0] = 70
        vf.CodeIndex.load(rewrite("range.npz", codes=bad))
    with pytest.raises(ValueError, match="metric"):
        vf.CodeIndex.load(rewrite("metric.npz", metric=np.array("l2")))
    missing = tmp_path / "missing.npz"
    with zipfile.ZipFile(missing, "w") as z:
        z.writestr("W.npy", b"")
    with pytest.raises(ValueError, match="lacks"):
        vf.CodeIndex.load(missing)


def test_bad_construction():
    W, codes = make()
    with pytest.raises(ValueError, match="metric"):
        vf.CodeIndex(W, codes, metric="l2")
    bad = W.clone()
    bad[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"W\[1, 2, 3\]"):
        vf.CodeIndex(bad, codes)
    with pytest.raises(TypeError, match="W must be float32"):
        vf.CodeIndex(W.double(), codes)
    with pytest.raises(ValueError, match="k must be a positive int"):
        vf.CodeIndex(W, codes).search(torch.randn(1, 16), -1)
