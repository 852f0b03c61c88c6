"""The raw Amazon Reviews 2018 loader on a small fixture written here in the raw format
(``<Category>.csv`` ratings, ``meta_<Category>.json.gz``): filters, order, text, split."""
from __future__ import annotations

import gzip
import json

import pytest

from vqrec_fast.data import load_amazon2018, load_dataset
from vqrec_fast.data.text_clean import clean_field


def _write_fixture(d, n_users=6, n_items=6, hist=60):
    """Users u0..u5 each rate items i0..i5 (a 5-core), plus: item 'nometa' (no metadata record),
    user 'thin' with 2 ratings (k-core removes it), one exact duplicate row, and user u0 with a
    long history (ratings repeated over time) to exercise the 50-item cap."""
    rows = []
    for u in range(n_users):
        for k in range(n_items):
            rows.append((f"i{(k + u) % n_items}", f"u{u}", 5.0, 1000 * u + 10 * k))
    rows += [(f"i{k % n_items}", "u0", 4.0, 100000 + k) for k in range(hist)]
    rows += [("nometa", "u1", 3.0, 5), ("i0", "thin", 1.0, 7), ("i1", "thin", 1.0, 8)]
    rows.append(rows[0])  # exact duplicate
    (d / "Tools.csv").write_text("".join(f"{i},{u},{r},{t}\n" for i, u, r, t in rows))
    metas = [{"asin": f"i{k}", "title": f"Tool {k} &amp; \"Co\"\n", "category": ["Tools", f"Kind {k}"],
              "brand": "Acme..."} for k in range(n_items)]
    metas[3]["title"] = "x" * 2500  # over 2,000 characters: emptied
    del metas[4]["brand"]  # absent field: skipped
    metas.append({"asin": "i0", "title": "second record of i0 is ignored"})
    metas.append({"asin": "unrated", "title": "never rated"})
    with gzip.open(d / "meta_Tools.json.gz", "wt") as f:
        for m in metas:
            f.write(json.dumps(m) + "\n")
    return rows


def test_raw_fixture_round_trips(tmp_path):
    rows = _write_fixture(tmp_path)
    ds = load_amazon2018(tmp_path)
    assert ds.num_users == 6 and ds.num_items == 6
    removed = {f["filter"]: f["removed"] for f in ds.meta["filters"]}
    assert removed["duplicate_rows"] == 1
    assert removed["items_without_metadata"] == 1
    assert removed["k_core"] == 2  # user 'thin'
    # chronological, users in first-appearance order, items indexed by first appearance
    for u in range(6):
        expect = [i for i, uu, _, t in sorted((r for r in rows[:36 + 60] if r[1] == f"u{u}"), key=lambda r: r[3])]
        assert [ds.item_raw_ids[i] for i in ds.sequences[u]] == expect
    assert ds.item_raw_ids[1:] == [f"i{k}" for k in range(6)]
    assert ds.stats()["interactions"] == 36 + 60
    # histories capped at 50
    assert ds.test.lengths.max() == 50 and ds.sequences.lengths.max() == 66
    # text: "title. category. brand." cleaned as UniSRec
    assert ds.item_text[1] == "Tool 0 & Co. Tools Kind 0. Acme."
    assert ds.item_text[ds.item_raw_ids.index("i3")] == "Tools Kind 3. Acme."
    assert ds.item_text[ds.item_raw_ids.index("i4")] == "Tool 4 & Co. Tools Kind 4."
    assert load_dataset(tmp_path).stats() == ds.stats()


def test_clean_field_matches_unisrec_rules():
    assert clean_field("a&quot;b&quot;\r\nc..") == "abc."
    assert clean_field(["x", "y"]) == "x y."
    assert clean_field("") == "."
    assert clean_field(".") == ".."
    assert clean_field("z" * 1998) == "z" * 1998 + "."
    assert clean_field("z" * 1999) == ""


def test_k_core_is_iterative(tmp_path):
    # item 'b' has 5 ratings only thanks to user 'w', who has 4 ratings: removing w drops b below 5
    rows = [(f"a{k}", f"u{u}", 1, u * 10 + k) for u in range(5) for k in range(5)]
    rows += [("b", f"u{u}", 1, 99) for u in range(4)] + [("b", "w", 1, 1), ("a0", "w", 1, 2), ("a1", "w", 1, 3),
                                                          ("a2", "w", 1, 4)]
    (tmp_path / "X.csv").write_text("".join(f"{i},{u},{r},{t}\n" for i, u, r, t in rows))
    with gzip.open(tmp_path / "meta_X.json.gz", "wt") as f:
        for it in sorted({r[0] for r in rows}):
            f.write(json.dumps({"asin": it, "title": it}) + "\n")
    ds = load_amazon2018(tmp_path)
    assert "b" not in ds.item_raw_ids and ds.num_users == 5 and ds.num_items == 5
    assert {f["filter"]: f["removed"] for f in ds.meta["filters"]}["k_core"] == 8


@pytest.mark.parametrize("line", ["i0,u0,5.0", "i0,u0,five,12"])
def test_bad_rating_line_names_file_and_line(tmp_path, line):
    _write_fixture(tmp_path)
    p = tmp_path / "Tools.csv"
    p.write_text(p.read_text() + line + "\n")
    n = len(p.read_text().splitlines())
    with pytest.raises(ValueError, match=rf"Tools\.csv, line {n}"):
        load_amazon2018(tmp_path)
