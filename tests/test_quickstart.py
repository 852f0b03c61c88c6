"""``vqrec-fast quickstart`` end to end on a tiny embedded dataset (hashing text encoder, no
download), then ``evaluate`` and ``recommend`` (with a new item known only by its text)."""
from __future__ import annotations

import json

from vqrec_fast import synthetic
from vqrec_fast.cli import main
from tests._single_thread import single_thread  # noqa: F401  (autouse)


def test_quickstart_then_evaluate_and_recommend(tmp_path, capsys):
    out = tmp_path / "qs"
    rc = main(["quickstart", "--out", str(out), "--users", "120", "--items", "60", "--epochs", "2", "--threads", "1",
               "--encoder", "hash", "--no-progress", "--set", "hidden=32", "--set", "inner=16",
               "--set", "num_subspaces=8", "--set", "codebook_size=16", "-k", "5"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "[5/5]" in text and "[new item]" in text or "[5/5]" in text
    res = json.loads((out / "run" / "results.json").read_text())
    assert 0.0 <= res["test"]["ndcg@10"] <= res["test"]["recall@10"] <= res["test"]["recall@50"] <= 1.0
    assert (out / "run" / "quantizer.pt").exists() and (out / "run" / "metrics.jsonl").exists()

    assert main(["evaluate", str(out / "run"), "--split", "test", "--threads", "1", "--json"]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["test"]
    assert abs(got["ndcg@10"] - res["test"]["ndcg@10"]) < 1e-12

    rc = main(["recommend", str(out / "run"), "--history", "SYN00001 SYN00002", "-k", "61",
               "--new-item", "sterile pipette tips Z1. Industrial & Scientific > Lab Supplies > Pipette Tips. Labcraft."])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "history: SYN00001 SYN00002"
    assert sum("[new 1]" in ln for ln in lines) == 1  # the new item is ranked among all 61

    assert main(["recommend", str(out / "run"), "--history", "NOPE"]) == 2
    assert "not a known raw item id" in capsys.readouterr().err


def test_embedded_dataset_is_deterministic(tmp_path):
    a = synthetic.generate(num_items=50, num_users=20, seed=3)
    b = synthetic.generate(num_items=50, num_users=20, seed=3)
    assert a == b
    texts, seqs = a
    assert len(texts) == 50 and all(5 <= len(s) <= 20 for s in seqs)
    assert all(x != y for s in seqs for x, y in zip(s, s[1:]))  # no immediate repeats
