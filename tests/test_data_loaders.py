"""Loaders on the shared real datasets reproduce the published statistics, and the rebuilt full
sequences agree with every split row."""
from __future__ import annotations

import json

import numpy as np
import pytest

from vqrec_fast.data import (SeqDataset, load_amazon_json, load_atomic, load_dataset, load_interactions,
                             load_recbole)
from vqrec_fast.data.split import leave_one_out


def _check_splits_follow_sequences(ds: SeqDataset, cap: int = 50) -> None:
    train, valid, test = leave_one_out([ds.sequences[u].tolist() for u in range(len(ds.sequences))], cap)
    rows = lambda ex: sorted((tuple(ex.history(e).tolist()), int(ex.targets[e])) for e in range(len(ex)))
    assert rows(train) == rows(ds.train)  # UniSRec writes a user's training rows newest first
    for a, b in ((valid, ds.valid), (test, ds.test)):
        np.testing.assert_array_equal(a.offsets, b.offsets)
        np.testing.assert_array_equal(a.items, b.items)
        np.testing.assert_array_equal(a.targets, b.targets)


def test_scientific_matches_paper_statistics(scientific_dir):
    ds = load_atomic(scientific_dir)
    s = ds.stats()
    assert (s["users"], s["items"], s["interactions"]) == (8442, 4385, 59427)
    assert (s["train_examples"], s["valid_examples"], s["test_examples"]) == (34101, 8442, 8442)
    assert len(ds.train_item_ids()) == 4373
    # test rows cap histories at 50, so they alone undercount; the rebuilt sequences do not
    assert len(ds.test.items) + len(ds.test) < 59427
    assert ds.sequences.lengths.max() > 51
    _check_splits_follow_sequences(ds)
    assert ds.item_text[1].startswith(next(t for r, t in [l.split("\t") for l in
                                      (scientific_dir / "Scientific.text").read_text().splitlines()[1:]]
                                      if r == ds.item_raw_ids[1])[:30])


def test_office_matches_readme_statistics(office_dir):
    ds = load_amazon_json(office_dir)
    s = ds.stats()
    assert (s["users"], s["items"], s["interactions"]) == (4905, 2420, 53258)
    _check_splits_follow_sequences(ds)
    # original per-user order is kept: user "0" is items 0..4 of the file
    assert [ds.item_raw_ids[i] for i in ds.sequences[0]] == ["0", "1", "2", "3", "4"]
    assert ds.item_text[1].startswith("VTECH CS6114") and ds.item_text[1].endswith("VTech.")


def test_ml100k_matches_readme_statistics(ml100k_dir):
    ds = load_recbole(ml100k_dir)
    s = ds.stats()
    assert (s["users"], s["items"], s["interactions"]) == (943, 1682, 100000)
    _check_splits_follow_sequences(ds)
    # chronological: user 196's sequence follows its timestamps in the file
    rows = [l.split("\t") for l in (ml100k_dir / "ml-100k.inter").read_text().splitlines()[1:]]
    mine = sorted(((float(t), i) for u, i, _, t in rows if u == "196"), key=lambda r: r[0])
    u = ds.user_raw_ids.index("196")
    assert [ds.item_raw_ids[i] for i in ds.sequences[u]] == [i for _, i in mine]
    assert ds.item_text[ds.item_raw_ids.index("1")] == "Toy Story. 1995. Animation Children's Comedy."


def test_text_columns_by_name(ml100k_dir):
    ds = load_recbole(ml100k_dir, text_cols=["movie_title"])
    assert ds.item_text[ds.item_raw_ids.index("1")] == "Toy Story."


def test_generic_csv_and_jsonl_agree(tmp_path):
    inter = [("u1", "a", 3), ("u1", "b", 1), ("u1", "c", 2), ("u2", "c", 5), ("u2", "a", 4), ("u2", "d", 6),
             ("u2", "b", 7), ("u3", "a", 1)]
    (tmp_path / "inter.csv").write_text("user,item,ts\n" + "".join(f"{u},{i},{t}\n" for u, i, t in inter))
    (tmp_path / "items.csv").write_text('id,title,brand\na,"Alpha, the first",X\nb,Beta,Y\nc,Gamma,\nd,Delta,Z\n')
    with open(tmp_path / "inter.jsonl", "w") as f:
        for u, i, t in inter:
            f.write(json.dumps({"user": u, "item": i, "ts": t}) + "\n")
    kw = dict(user_col="user", item_col="item", time_col="ts", item_id_col="id")
    a = load_interactions(tmp_path / "inter.csv", tmp_path / "items.csv", **kw)
    b = load_interactions(tmp_path / "inter.jsonl", tmp_path / "items.csv", **kw)
    for ds in (a, b):
        seqs = [[ds.item_raw_ids[i] for i in ds.sequences[u]] for u in range(len(ds.sequences))]
        assert seqs == [["b", "c", "a"], ["a", "c", "d", "b"]]  # time order; u3 (1 item) dropped
        assert ds.meta["filters"][0]["removed"] == 1 and ds.meta["filters"][0]["filter"] == "min_sequence_len"
        assert ds.item_text[ds.item_raw_ids.index("a")] == "Alpha, the first. X."
        assert ds.item_text[ds.item_raw_ids.index("c")] == "Gamma."
    np.testing.assert_array_equal(a.test.targets, b.test.targets)
    c = load_dataset(tmp_path / "inter.csv", items=tmp_path / "items.csv", **kw)
    np.testing.assert_array_equal(a.train.items, c.train.items)


def test_generic_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"user_id": ["u", "u", "u"], "item_id": [1, 2, 3], "timestamp": [3, 1, 2]}),
                   tmp_path / "i.parquet")
    pq.write_table(pa.table({"item_id": [1, 2, 3], "title": ["x", "y", "z"]}), tmp_path / "t.parquet")
    ds = load_interactions(tmp_path / "i.parquet", tmp_path / "t.parquet")
    assert [ds.item_raw_ids[i] for i in ds.sequences[0]] == ["2", "3", "1"]


def test_leave_one_out_caps_histories():
    train, valid, test = leave_one_out([[1, 2, 3, 4, 5, 6]], max_history=2)
    assert [train.history(e).tolist() for e in range(len(train))] == [[1], [1, 2], [2, 3]]
    assert train.targets.tolist() == [2, 3, 4]
    assert valid.history(0).tolist() == [3, 4] and valid.targets.tolist() == [5]
    assert test.history(0).tolist() == [4, 5] and test.targets.tolist() == [6]
