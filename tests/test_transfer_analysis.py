"""Transfer-study analyses and CLI wiring."""
from __future__ import annotations

import numpy as np
import torch

from transfer_data import tiny_domain
from vqrec_fast.transfer.analysis import cold_start, text_overemphasis, train_popularity


def test_text_overemphasis_against_a_plain_loop():
    ds = tiny_domain("c", 25, 30, 2)
    g = torch.Generator().manual_seed(0)
    vec = torch.randn(26, 7, generator=g).numpy()
    top = torch.randint(1, 26, (len(ds.test), 12), generator=g)
    got = text_overemphasis(top, ds, vec, k=10)
    cos = lambda a, b: float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    diffs = []
    for u in range(len(ds.test)):
        last = ds.test.history(u)[-1]
        rec = np.mean([cos(vec[i], vec[last]) for i in top[u, :10].tolist()])
        diffs.append(rec - cos(vec[ds.test.targets[u]], vec[last]))
    assert abs(got["overemphasis"] - np.mean(diffs)) < 1e-5
    assert abs(got["rec_sim"] - got["target_sim"] - got["overemphasis"]) < 1e-6


def test_cold_start_groups_partition_the_users():
    ds = tiny_domain("c", 25, 40, 3)
    pop = train_popularity(ds)
    assert pop.sum() == len(ds.valid.items) and pop[0] == 0
    top = torch.arange(1, 26).repeat(len(ds.test), 1)  # every item ranked: rank = target - 1
    t = int(np.median(pop[ds.test.targets]))
    res = cold_start(top, ds, groups=((0, t), (t + 1, None)))
    assert sum(r["users"] for r in res.values()) == len(ds.test)
    low = pop[ds.test.targets] <= t
    assert 0 < low.sum() < len(ds.test)
    ranks = ds.test.targets[low] - 1
    assert abs(res[f"0-{t}"]["recall@10"] - float(np.mean(ranks < 10))) < 1e-12


def test_cli_registers_transfer_commands():
    from vqrec_fast.cli import build_parser

    p = build_parser()
    a = p.parse_args(["experiment", "transfer", "--target", "T", "--source", "A", "--source", "B", "--hidden", "64"])
    assert a.source == ["A", "B"] and a.hidden == 64 and a.func.__name__ == "run_transfer"
    a = p.parse_args(["pretrain", "--domain", "A", "--domain", "B", "--rho", "0"])
    assert a.domain == ["A", "B"] and a.rho == 0.0
    a = p.parse_args(["finetune", "--data", "T", "--pretrained", "x.pt", "--align", "random"])
    assert a.align == "random" and a.codes == "fresh" and not a.train_encoder


def test_cli_transfer_study_gets_its_own_name_when_experiment_is_taken():
    import argparse

    from vqrec_fast.cli import experiment

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("experiment").add_argument("--data", required=True)
    experiment.register(sub)
    a = parser.parse_args(["experiment-transfer", "--target", "T"])
    assert a.target == "T" and a.func.__name__ == "run_transfer"
