"""The training loop on a tiny generated dataset: exact resume, seeded reproducibility, atomic
checkpoints, the dense/fused loss switch, and clear errors for bad configs and files."""
from __future__ import annotations

import json
import os

import pytest
import torch

import vqrec_fast as vf
from vqrec_fast import synthetic
from vqrec_fast.data import load_atomic
from vqrec_fast.train import Trainer, checkpoint, load_config, load_trained
from vqrec_fast.train.config import DOCS, TrainConfig, example_yaml
from tests._single_thread import single_thread  # noqa: F401  (autouse)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = synthetic.write_atomic(tmp_path_factory.mktemp("tiny") / "data", num_items=80, num_users=60, max_len=9, seed=1)
    return load_atomic(d)


def _cfg(tmp_path, name, **kw):
    base = dict(data="unused", out=str(tmp_path / name), model="vqrec", codes="random", num_subspaces=4,
                codebook_size=16, hidden=32, inner=16, batch_size=64, epochs=3, patience=10, threads=1,
                progress=False, plot=False, seed=7)
    base.update(kw)
    return TrainConfig(**base).validate()


def _epochs(path):
    keep = ("epoch", "loss", "valid", "best_epoch")
    out = []
    for line in open(path):
        e = json.loads(line)
        e["valid"].pop("eval_seconds")
        out.append({k: e[k] for k in keep})
    return out


def test_resume_continues_exactly(tiny, tmp_path):
    Trainer(_cfg(tmp_path, "straight"), tiny).fit(log=lambda s: None)
    Trainer(_cfg(tmp_path, "split", epochs=1), tiny).fit(log=lambda s: None)
    Trainer(_cfg(tmp_path, "split"), tiny).fit(resume=True, log=lambda s: None)
    a = checkpoint.load(tmp_path / "straight" / "last.pt")
    b = checkpoint.load(tmp_path / "split" / "last.pt")
    assert a["epoch"] == b["epoch"] == 3
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert _epochs(tmp_path / "straight" / "metrics.jsonl") == _epochs(tmp_path / "split" / "metrics.jsonl")
    res = json.loads((tmp_path / "split" / "results.json").read_text())
    for v in res["test"].values():
        assert v >= 0


@pytest.mark.parametrize("model", ["sasrec", "text"])
def test_baselines_train_and_reload(tiny, tmp_path, model):
    cfg = _cfg(tmp_path, model, model=model, epochs=1, text_encoder="hash")
    res = Trainer(cfg, tiny).fit(log=lambda s: None)
    m = load_trained(cfg.out)
    assert type(m).__name__ == {"sasrec": "SASRec", "text": "TextSeqRec"}[model]
    from vqrec_fast.train import evaluate

    again = evaluate(m, tiny.test, (10, 50), cfg.max_len)
    for k in ("recall@10", "ndcg@10", "recall@50", "ndcg@50"):
        assert again[k] == pytest.approx(res["test"][k], abs=1e-12)


@pytest.mark.skipif(not hasattr(vf, "code_softmax_cross_entropy"), reason="fused loss (issue 6) not in this build")
def test_fused_and_dense_loss_agree(tiny, tmp_path):
    from vqrec_fast.train.build import build_model

    m = build_model(_cfg(tmp_path, "x"), tiny).eval()
    q = torch.randn(33, 32)
    t = torch.randint(1, tiny.num_items + 1, (33,))
    grads = []
    for impl in ("dense", "fused"):
        m.loss_impl = impl
        m.zero_grad()
        qq = q.clone().requires_grad_()
        loss = m.loss(qq, t)
        loss.backward()
        grads.append((loss.detach(), qq.grad, m.codes.weight.grad.clone()))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not hasattr(vf, "code_softmax_cross_entropy"), reason="fused loss (issue 6) not in this build")
def test_auto_loss_takes_the_faster_form_for_the_catalogue(monkeypatch):
    # dense up to 3/4 of D*K items (measured faster there), fused beyond: the spy sees only the latter
    from vqrec_fast.models.vqrec import VQRec

    calls = []
    fused = vf.code_softmax_cross_entropy
    monkeypatch.setattr(vf, "code_softmax_cross_entropy", lambda *a, **k: calls.append(1) or fused(*a, **k))
    for n_items, codebook, expect_fused in ((100, 64, False), (300, 16, True)):  # D*K = 256 and 64
        codes = torch.randint(0, codebook, (n_items + 1, 4), dtype=torch.uint8)
        m = VQRec(codes, codebook_size=codebook, hidden=16, n_layers=1, n_heads=1, inner=16, loss_impl="auto")
        calls.clear()
        loss = m.loss(torch.randn(8, 16), torch.randint(1, n_items + 1, (8,)))
        assert torch.isfinite(loss)
        assert bool(calls) == expect_fused, (n_items, codebook)


def test_checkpoint_is_atomic(tmp_path):
    p = tmp_path / "c.pt"
    checkpoint.save_atomic({"x": torch.ones(3)}, p)
    with pytest.raises(Exception):
        checkpoint.save_atomic({"x": lambda: 0}, p)  # unpicklable: the old file must survive
    assert torch.equal(checkpoint.load(p)["x"], torch.ones(3))
    assert os.listdir(tmp_path) == ["c.pt"]
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        checkpoint.load(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        checkpoint.load(tmp_path / "missing.pt")


def test_every_config_key_is_documented_and_files_load(tmp_path):
    assert set(DOCS) == set(TrainConfig().to_dict())
    (tmp_path / "c.yaml").write_text(example_yaml().replace("lr: 0.001", "lr: 0.002"))
    assert load_config(str(tmp_path / "c.yaml")).lr == 0.002
    (tmp_path / "c.toml").write_text('model = "sasrec"\nepochs = 4\n')
    cfg = load_config(str(tmp_path / "c.toml"), {"epochs": "9"})
    assert (cfg.model, cfg.epochs) == ("sasrec", 9)


@pytest.mark.parametrize("values, match", [
    ({"bogus": 1}, "unknown config key 'bogus'"),
    ({"lr": "fast"}, "'lr': expected float"),
    ({"dropout": 1.5}, "'dropout': must be in"),
    ({"model": "gru"}, "'model': must be one of"),
    ({"hidden": 301}, "'hidden': must be divisible"),
    ({"epochs": 0}, "'epochs': must be an integer >= 1"),
    ({"progress": "maybe"}, "'progress': expected true/false"),
])
def test_bad_config_values(values, match):
    with pytest.raises(ValueError, match=match):
        load_config(None, values)


def test_bad_config_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(str(tmp_path / "nope.yaml"))
    (tmp_path / "broken.yaml").write_text("lr: [1,\n")
    with pytest.raises(ValueError, match="broken.yaml: cannot parse"):
        load_config(str(tmp_path / "broken.yaml"))
    (tmp_path / "k.yaml").write_text("batch_sise: 12\n")
    with pytest.raises(ValueError, match="k.yaml: unknown config key 'batch_sise'"):
        load_config(str(tmp_path / "k.yaml"))


def test_missing_files_are_named(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match="codes.npy"):
        Trainer(_cfg(tmp_path, "m", codes=str(tmp_path / "codes.npy")), tiny)
    with pytest.raises(FileNotFoundError, match="last.pt"):
        Trainer(_cfg(tmp_path, "fresh"), tiny).fit(resume=True)


def test_baselines_command_writes_one_table(tiny, tmp_path, capsys):
    from vqrec_fast.cli import main

    data = tiny.meta["path"]
    rc = main(["baselines", "--data", data, "--out", str(tmp_path / "exp"), "--models", "sasrec,vqrec-random",
               "--epochs", "1", "--threads", "1", "--no-progress", "--set", "hidden=32", "--set", "inner=16",
               "--set", "num_subspaces=4", "--set", "codebook_size=16", "--set", "plot=false"])
    assert rc == 0
    table = (tmp_path / "exp" / "results.md").read_text().splitlines()
    assert table[0].startswith("| model | R@10") and [r.split(" | ")[0] for r in table[2:]] == ["| sasrec", "| vqrec-random"]
    rows = json.loads((tmp_path / "exp" / "results.json").read_text())
    assert rows[1]["config"]["codes"] == "random" and rows[0]["config"]["model"] == "sasrec"
    assert main(["baselines", "--data", data, "--models", "gru"]) == 2
    assert "unknown model variant" in capsys.readouterr().err
