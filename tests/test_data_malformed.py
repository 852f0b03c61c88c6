"""Every malformed-input case raises an error that names the file and the line."""
from __future__ import annotations

import json

import pytest

from vqrec_fast.data import DataFormatError, load_amazon_json, load_atomic, load_interactions

HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"


def _atomic(d, train=None, text=None, index=None):
    (d / "X.train.inter").write_text(train if train is not None else HEADER + "0\t0\t1\n")
    (d / "X.valid.inter").write_text(HEADER + "0\t0 1\t2\n")
    (d / "X.test.inter").write_text(HEADER + "0\t0 1 2\t0\n")
    (d / "X.text").write_text(text if text is not None else "item_id:token\ttext:token_seq\na\tA.\nb\tB.\nc\tC.\n")
    if index is not None:
        (d / "X.item2index").write_text(index)


def test_valid_atomic_fixture_loads(tmp_path):
    _atomic(tmp_path)
    ds = load_atomic(tmp_path)
    assert ds.stats()["interactions"] == 4 and ds.sequences[0].tolist() == [1, 2, 3, 1]


@pytest.mark.parametrize("train, line, what", [
    (HEADER + "0\t0\n", 2, "expected 3 tab-separated fields"),           # missing column
    (HEADER + "0\t0 x\t1\n", 2, "non-integer item"),                       # unparsable line
    (HEADER + "0\t0\t1\n0\t0 7\t1\n", 3, "outside"),                       # unknown item id
    ("user\titems\n", 1, "header must be"),                                # missing columns in header
])
def test_atomic_bad_rows(tmp_path, train, line, what):
    _atomic(tmp_path, train=train)
    with pytest.raises(DataFormatError, match=rf"X\.train\.inter, line {line}.*{what}"):
        load_atomic(tmp_path)


def test_atomic_duplicate_item_id(tmp_path):
    _atomic(tmp_path, text="item_id:token\ttext:token_seq\na\tA.\nb\tB.\na\tC.\n")
    with pytest.raises(DataFormatError, match=r"X\.text, line 4: duplicate item id 'a'"):
        load_atomic(tmp_path)
    _atomic(tmp_path, index="a\t0\nb\t1\na\t2\n")
    with pytest.raises(DataFormatError, match=r"X\.item2index, line 3: duplicate id 'a'"):
        load_atomic(tmp_path)


def test_atomic_empty_file(tmp_path):
    _atomic(tmp_path, train="")
    with pytest.raises(DataFormatError, match=r"X\.train\.inter: file is empty"):
        load_atomic(tmp_path)


def test_atomic_non_utf8(tmp_path):
    _atomic(tmp_path)
    (tmp_path / "X.text").write_bytes(b"item_id:token\ttext:token_seq\na\tA.\nb\t\xff\xfe.\nc\tC.\n")
    with pytest.raises(DataFormatError, match=r"X\.text, line 3: not valid UTF-8"):
        load_atomic(tmp_path)


def test_atomic_rows_that_do_not_chain(tmp_path):
    _atomic(tmp_path, train=HEADER + "0\t0\t1\n0\t2\t1\n")
    with pytest.raises(DataFormatError, match=r"X\.train\.inter.*not prefixes of one sequence"):
        load_atomic(tmp_path)


def _tables(d, inter, items="item_id,title\na,A\nb,B\nc,C\n"):
    (d / "i.csv").write_text(inter)
    (d / "t.csv").write_text(items)
    return d / "i.csv", d / "t.csv"


@pytest.mark.parametrize("inter, items, match", [
    ("user_id,item_id\nu,a\n", None, r"i\.csv, line 1: missing interaction column\(s\) \['timestamp'\]"),
    ("user_id,item_id,timestamp\nu,a,1\nu,b\n", None, r"i\.csv, line 3: expected 3 fields"),
    ("user_id,item_id,timestamp\nu,a,1\nu,b,soon\n", None, r"i\.csv, line 3, field 'timestamp'.*not a number"),
    ("user_id,item_id,timestamp\nu,a,1\nu,zz,2\n", None, r"i\.csv, line 3, field 'item_id': unknown item id 'zz'"),
    ("user_id,item_id,timestamp\nu,a,1\n", "item_id,title\na,A\na,B\n", r"t\.csv, line 3.*duplicate item id 'a'"),
    ("", None, r"i\.csv: file is empty"),
    ("user_id,item_id,timestamp\nu,a,1\n", "id,title\na,A\n", r"t\.csv, line 1: missing item id column"),
])
def test_interaction_tables(tmp_path, inter, items, match):
    paths = _tables(tmp_path, inter, items) if items else _tables(tmp_path, inter)
    with pytest.raises(DataFormatError, match=match):
        load_interactions(*paths)


def test_jsonl_unparsable_line(tmp_path):
    (tmp_path / "i.jsonl").write_text('{"user_id": "u", "item_id": "a", "timestamp": 1}\n{"user_id": \n')
    (tmp_path / "t.csv").write_text("item_id,title\na,A\n")
    with pytest.raises(DataFormatError, match=r"i\.jsonl, line 2: invalid JSON"):
        load_interactions(tmp_path / "i.jsonl", tmp_path / "t.csv")


def test_amazon_json_errors(tmp_path):
    (tmp_path / "X.item.json").write_text(json.dumps({"0": {"title": "A"}}))
    (tmp_path / "X.inter.json").write_text('{"u": [0, 0,\n 5]}')
    with pytest.raises(DataFormatError, match=r"X\.inter\.json.*item 5 is not in X\.item\.json"):
        load_amazon_json(tmp_path)
    (tmp_path / "X.inter.json").write_text('{"u": [0, 0,\n 0,]}')
    with pytest.raises(DataFormatError, match=r"X\.inter\.json, line 2: invalid JSON"):
        load_amazon_json(tmp_path)
