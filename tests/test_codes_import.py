"""The published VQ-Rec index imports to exactly the codes stored in its inverted list."""
from __future__ import annotations

import numpy as np
import pytest
import torch

faiss = pytest.importorskip("faiss")

from vqrec_fast.data import load_atomic  # noqa: E402
from vqrec_fast.quantization import code_report, import_faiss_index  # noqa: E402

INDEX = "Scientific.OPQ32,IVF1,PQ32x8.strict.index"


@pytest.fixture(scope="module")
def sci(request):
    from conftest import SHARED_DATA

    d = SHARED_DATA / "amazon2018-scientific"
    if not d.is_dir():
        pytest.skip(f"real data not available: {d}")
    return d, load_atomic(d)


def _invlist_bytes(path):
    """Independent read: the raw bytes of inverted list 0 through faiss's InvertedLists API."""
    index = faiss.read_index(str(path))
    il = faiss.extract_index_ivf(index).invlists
    n = il.list_size(0)
    return faiss.rev_swig_ptr(il.get_codes(0), n * il.code_size).copy().reshape(n, il.code_size)


def test_imported_codes_equal_invlist_bytes(sci):
    d, ds = sci
    codes = import_faiss_index(d / INDEX, ds)
    raw = _invlist_bytes(d / INDEX)
    train_ids = ds.train_item_ids()
    assert raw.shape == (4373, 32) and len(train_ids) == 4373
    assert codes.codes.dtype == torch.uint8 and tuple(codes.codes.shape) == (4386, 32)
    assert not codes.codes[0].any()
    np.testing.assert_array_equal(codes.codes.numpy()[train_ids], raw)
    assert codes.info["uncoded_items"] == 12 and len(codes.info["uncoded_ids"]) == 12
    assert not set(codes.info["uncoded_ids"]) & set(train_ids.tolist())
    # the rule: each digit is the majority among the 5 text-nearest training items
    r = code_report(codes)
    assert r["distinct_ratio"] > 0.95


def test_missing_rules(sci):
    d, ds = sci
    rnd = import_faiss_index(d / INDEX, ds, missing="random")
    knn = import_faiss_index(d / INDEX, ds, missing="knn", k=1)
    ids = rnd.info["uncoded_ids"]
    again = import_faiss_index(d / INDEX, ds, missing="random")
    np.testing.assert_array_equal(again.codes.numpy()[ids], rnd.codes.numpy()[ids])  # seeded by raw id
    # k=1: each missing item copies one training item's full code
    train_codes = {tuple(r) for r in knn.codes.numpy()[ds.train_item_ids()]}
    assert all(tuple(knn.codes.numpy()[i]) in train_codes for i in ids)
    # with vectors of the index's dimension, missing items are coded by the index itself
    vec = np.random.default_rng(0).standard_normal((ds.num_items + 1, 768)).astype(np.float32)
    enc = import_faiss_index(d / INDEX, ds, vectors=vec)
    np.testing.assert_array_equal(enc.codes.numpy()[ids], enc.encode(vec[ids]).numpy())
    with pytest.raises(ValueError, match=r"vectors must have shape \[4386, 768\]"):
        import_faiss_index(d / INDEX, ds, vectors=vec[:, :384])


def test_wrong_dataset_is_rejected(sci, tmp_path):
    d, ds = sci
    from vqrec_fast.data.dataset import Examples, SeqDataset

    ex = Examples.from_lists([[1]], [2])
    small = SeqDataset("tiny", ["[PAD]", "a", "b"], ["", "a", "b"], ex, ex, ex)
    with pytest.raises(ValueError, match="inverted list holds 4373 codes but 'tiny' has 2"):
        import_faiss_index(d / INDEX, small)
    (tmp_path / "bad.index").write_bytes(b"not an index")
    with pytest.raises(ValueError, match="not a readable faiss index"):
        import_faiss_index(tmp_path / "bad.index", ds)
