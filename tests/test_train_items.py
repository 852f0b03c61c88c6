"""Item-side inputs: the published faiss codes of Scientific, random codes, the hashing text
encoder and the quantizer that codes new texts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vqrec_fast.train.items import _hash_vectors, random_codes, read_faiss_codes
from vqrec_fast.train.quantizer import encode, fit_pq_torch
from tests._single_thread import single_thread  # noqa: F401  (autouse)


def test_published_codes_of_scientific(scientific_dir):
    pytest.importorskip("faiss")
    from vqrec_fast.data import load_atomic

    ds = load_atomic(scientific_dir)
    codes = read_faiss_codes(next(scientific_dir.glob("*.index")), ds)
    assert codes.shape == (4386, 32) and codes.dtype == torch.uint8
    import faiss

    # training items: exactly the inverted list's rows, in the order of their internal ids
    index = faiss.read_index(str(next(scientific_dir.glob("*.index"))))  # keep alive: invlists points into it
    inv = faiss.extract_index_ivf(index).invlists
    raw = faiss.rev_swig_ptr(inv.get_codes(0), inv.list_size(0) * 32).copy().reshape(-1, 32)
    train = ds.train_item_ids()
    assert torch.equal(codes[train], torch.from_numpy(raw))
    assert int(codes[0].sum()) == 0
    assert len(set(range(1, 4386)) - set(train.tolist())) == 12  # coded by the loader's documented rule


def test_random_codes_are_seeded():
    a, b = random_codes(30, 4, 16, 1), random_codes(30, 4, 16, 1)
    assert torch.equal(a, b) and int(a[0].sum()) == 0 and int(a.max()) < 16


def test_hash_encoder():
    v = _hash_vectors(["Sterile pipette tips", "sterile  PIPETTE tips", "nitrile gloves"])
    assert v.shape == (3, 256)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(v[0], v[1])  # case and spacing do not matter
    assert abs(float(v[0] @ v[2])) < 0.5


def test_pq_quantizer_codes_nearest_centroids():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 16)).astype(np.float32)
    q = fit_pq_torch(x, 4, 8, seed=0)
    codes = encode(x, q)
    assert codes.shape == (200, 4)
    # each digit is the nearest centroid of its sub-vector (brute force)
    for d in range(4):
        dist = ((x[:, None, d * 4 : (d + 1) * 4] - q["centroids"][d].numpy()[None]) ** 2).sum(-1)
        assert (codes[:, d].numpy() == dist.argmin(1)).mean() > 0.99


def test_fitted_quantizer_is_cached_by_its_inputs(tmp_path, monkeypatch):
    """text_codes stores the fit under a key of its inputs: a second call reuses it (same codes, no
    fit), another seed fits again."""
    import vqrec_fast.train.items as items
    from vqrec_fast.data import load_atomic
    from vqrec_fast.synthetic import write_atomic

    ds = load_atomic(write_atomic(tmp_path / "data", num_items=300, num_users=400))
    fits = []
    real_fit = items.fit_quantizer
    monkeypatch.setattr(items, "fit_quantizer", lambda *a, **k: fits.append(a[4]) or real_fit(*a, **k))
    cache = tmp_path / "cache"
    a = items.text_codes(ds, 4, 16, 1, "hash", cache)[0]
    b = items.text_codes(ds, 4, 16, 1, "hash", cache)[0]
    c = items.text_codes(ds, 4, 16, 2, "hash", cache)[0]
    assert fits == [1, 2]  # the second seed-1 call was served from the cache
    assert torch.equal(a, b) and a.shape == (ds.num_items + 1, 4)
    assert len(list(cache.glob("quantizer-*.pt"))) == 2
    assert not torch.equal(a, c)
