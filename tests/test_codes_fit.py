"""Fitting codes on small synthetic vectors: codes equal the quantizer's encoding (and faiss's own
stored codes for OPQ/PQ), strict fitting ignores non-training items, save/load round-trips."""
from __future__ import annotations

import numpy as np
import pytest
import torch

faiss = pytest.importorskip("faiss")

from vqrec_fast.quantization import ItemCodes, code_report, fit_codes  # noqa: E402

N, DIM, D, BITS = 400, 24, 4, 4  # 16 centroids per digit: fast, still many points per centroid


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((N + 1, DIM)).astype(np.float32)
    v[0] = 0
    return v


TRAIN = np.arange(1, 301)  # items 301..400 play valid/test-only items (OPQ needs >= 256)


@pytest.mark.parametrize("method", ["opq", "pq", "rq", "random"])
def test_codes_equal_encoding_and_roundtrip(vectors, method, tmp_path):
    c = fit_codes(vectors, TRAIN, method=method, num_subspaces=D, bits=BITS, seed=1, opq_iterations=3)
    assert c.codes.dtype == torch.uint8 and tuple(c.codes.shape) == (N + 1, D)
    assert not c.codes[0].any() and int(c.codes.max()) < (1 << BITS)
    np.testing.assert_array_equal(c.encode(vectors[1:]).numpy(), c.codes.numpy()[1:])
    c.save(tmp_path / "c.npz")
    back = ItemCodes.load(tmp_path / "c.npz")
    assert back.method == method and back.bits == BITS
    np.testing.assert_array_equal(back.codes.numpy(), c.codes.numpy())
    new = np.random.default_rng(5).standard_normal((7, DIM)).astype(np.float32)
    np.testing.assert_array_equal(back.encode(new).numpy(), c.encode(new).numpy())


@pytest.mark.parametrize("method", ["opq", "pq"])
def test_opq_pq_codes_equal_what_faiss_stores(vectors, method):
    c = fit_codes(vectors, TRAIN, method=method, num_subspaces=D, bits=BITS, seed=0, opq_iterations=3)
    index = c.quantizer.index
    index.add(vectors[1:])  # faiss's own encoder; IVF1 keeps codes in insertion order
    ivf = faiss.extract_index_ivf(index)
    packed = faiss.rev_swig_ptr(ivf.invlists.get_codes(0), N * ivf.code_size).copy().reshape(N, -1)
    # BITS=4: two digits per byte, low nibble first
    unpacked = np.stack([(packed[:, d // 2] >> (4 * (d % 2))) & 15 for d in range(D)], 1)
    np.testing.assert_array_equal(unpacked, c.codes.numpy()[1:])
    if method == "opq":
        assert isinstance(index, faiss.IndexPreTransform)


def test_strict_fit_ignores_non_training_items(vectors):
    a = fit_codes(vectors, TRAIN, method="opq", num_subspaces=D, bits=BITS, opq_iterations=3)
    v2 = vectors.copy()
    v2[301:] = 100 * np.random.default_rng(9).standard_normal((N - 300, DIM))
    b = fit_codes(v2, TRAIN, method="opq", num_subspaces=D, bits=BITS, opq_iterations=3)
    np.testing.assert_array_equal(a.codes.numpy()[1:301], b.codes.numpy()[1:301])


def test_dimension_not_multiple_of_digits_is_padded():
    v = np.random.default_rng(1).standard_normal((101, 10)).astype(np.float32)
    c = fit_codes(v, np.arange(1, 101), method="pq", num_subspaces=4, bits=3)
    np.testing.assert_array_equal(c.encode(v[1:]).numpy(), c.codes.numpy()[1:])


def test_bad_arguments(vectors):
    with pytest.raises(ValueError, match="method must be one of"):
        fit_codes(vectors, TRAIN, method="lsh")
    with pytest.raises(ValueError, match="bits must be in"):
        fit_codes(vectors, TRAIN, bits=9)
    with pytest.raises(ValueError, match="train_item_ids"):
        fit_codes(vectors, [0, 1], num_subspaces=D, bits=BITS)
    with pytest.raises(ValueError, match="at least 256 training items"):
        fit_codes(vectors, TRAIN[:100], method="pq", num_subspaces=D, bits=8)
    bad = vectors.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="row 3 contains NaN"):
        fit_codes(bad, TRAIN, num_subspaces=D, bits=BITS)
    c = fit_codes(vectors, TRAIN, method="pq", num_subspaces=D, bits=BITS)
    with pytest.raises(ValueError, match=r"shape \[n, 24\]"):
        c.encode(np.zeros((2, 5), np.float32))


def test_code_report_counts():
    codes = torch.tensor([[0, 0], [1, 2], [1, 2], [3, 2], [0, 1]], dtype=torch.uint8)  # row 0 = padding
    r = code_report(codes, bits=2)
    assert r["items"] == 4 and r["distinct_codes"] == 3 and r["distinct_ratio"] == 0.75
    assert r["items_sharing_code"] == 2 and r["largest_shared_group"] == 2
    # digit 0 values 1,1,3,0 -> p = .5,.25,.25 -> 1.5 bits; digit 1 values 2,2,2,1 -> H(.75,.25)
    assert r["entropy_bits"][0] == pytest.approx(1.5)
    assert r["entropy_bits"][1] == pytest.approx(-(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25)))
    assert r["used_values_min"] == 2 and r["codebook_size"] == 4


def test_fit_cache_reuses_identical_inputs_only(tmp_path):
    import numpy as np

    from vqrec_fast.quantization import fit_codes

    rng = np.random.default_rng(0)
    vec = rng.standard_normal((60, 8)).astype(np.float32)
    ids = np.arange(1, 50)
    first = fit_codes(vec, ids, method="rq", num_subspaces=2, bits=4, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("codes-rq-*.npz"))) == 1
    again = fit_codes(vec, ids, method="rq", num_subspaces=2, bits=4, cache_dir=tmp_path)
    assert "cache" in again.info and torch.equal(again.codes, first.codes)
    assert torch.equal(again.encode(vec[1:5]), first.encode(vec[1:5]))
    vec2 = vec.copy()
    vec2[3, 0] += 1.0  # different inputs -> a new fit, not the cached one
    other = fit_codes(vec2, ids, method="rq", num_subspaces=2, bits=4, cache_dir=tmp_path)
    assert "cache" not in other.info
    assert len(list(tmp_path.glob("codes-rq-*.npz"))) == 2
