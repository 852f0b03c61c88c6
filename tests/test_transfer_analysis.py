"""Transfer-study analyses and CLI wiring."""
from __future__ import annotations

import numpy as np
import pytest
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


@pytest.mark.parametrize("jobs", [1, 2])
def test_whole_study_runs_end_to_end_on_tiny_domains(tmp_path, jobs):
    """run_study on three tiny generated domains: every run of the table, the fraction curve, the
    analyses and the report (a crash in any run, such as the data-fraction subset once, fails here)."""
    import json

    from vqrec_fast.synthetic import write_atomic
    from vqrec_fast.transfer.study import StudyConfig, run_study

    dirs = [write_atomic(tmp_path / n, name=n, num_items=60, num_users=90, seed=s)
            for n, s in (("SrcA", 1), ("SrcB", 2), ("Tgt", 3))]
    sc = StudyConfig(sources=[str(dirs[0]), str(dirs[1])], target=str(dirs[2]), out=str(tmp_path / "study"),
                     hidden=16, inner=16, num_subspaces=4, codebook_size=16, pretrain_epochs=1, pretrain_batch=64,
                     epochs=1, patience=1, align_epochs=1, batch_size=64, fractions=(0.5,), text_encoder="hash", jobs=jobs)
    res = run_study(sc, log=lambda *_: None)
    want = {"scratch", "text_scratch", "unisrec_scratch", "scratch_frac0.5", "transfer", "align_random", "align_none",
            "no_semi_synthetic", "random_codes", "pretrain_codes", "unisrec_transfer", "transfer_frac0.5"}
    assert set(res["runs"]) == want
    for name, run in res["runs"].items():
        assert 0.0 <= run["test"]["ndcg@10"] <= 1.0, name
    report = (tmp_path / "study" / "study.md").read_text()
    assert "VQ-Rec pre-trained + fine-tuned" in report and "Training-data fraction" in report
    assert json.loads((tmp_path / "study" / "study.json").read_text())["seconds"] > 0

