"""Multi-domain pre-training: mixing, the sharded loss, DDP agreement with one process."""
from __future__ import annotations

import numpy as np
import torch

from transfer_data import ddp_worker, small_pretrain_config, tiny_domain
from vqrec_fast.transfer.contrastive import contrastive_pretrain_loss, contrastive_pretrain_loss_shard
from vqrec_fast.transfer.domains import MixedDomains
from vqrec_fast.transfer.distributed import shard_rows
from vqrec_fast.transfer.pretrain import load_pretrained, pretrain


def test_mixing_offsets_items_per_domain():
    a, b = tiny_domain("a", 40, 30, 0), tiny_domain("b", 30, 20, 1)
    m = MixedDomains.mix([a, b])
    assert m.dataset.num_items == 70 and m.offsets.tolist() == [0, 40, 70]
    assert len(m.dataset.train) == len(a.train) + len(b.train)
    tb = m.dataset.train.targets[len(a.train):]
    np.testing.assert_array_equal(tb, b.train.targets + 40)
    assert set(m.domain_of[tb].tolist()) == {1} and m.domain_of[0] == -1
    assert m.dataset.item_text[41] == b.item_text[1]


def test_sharded_loss_sums_to_the_plain_loss():
    g = torch.Generator().manual_seed(0)
    B, H = 11, 6
    s, e, n = (torch.randn(B, H, generator=g, dtype=torch.float64) for _ in range(3))
    ids = torch.tensor([1, 4, 1, 7, 2, 4, 9, 9, 3, 5, 1])
    whole = contrastive_pretrain_loss(s, e, ids, n, reduction="sum")
    parts = sum(contrastive_pretrain_loss_shard(s[a:b], e, ids, a, n[a:b]) for a, b in ((0, 4), (4, 5), (5, 11)))
    torch.testing.assert_close(parts, whole)
    bounds = shard_rows(np.array([3, 1, 4, 1, 5, 9, 2]), 3)
    assert bounds[0] == 0 and bounds[-1] == 7 and np.all(np.diff(bounds) > 0)


def test_pretrain_learns_and_writes_a_checkpoint(tmp_path):
    cfg = small_pretrain_config(str(tmp_path / "pt"), epochs=3, rho=0.75, checkpoint_every=2)
    res = pretrain(cfg, [tiny_domain("a", 40, 60, 0), tiny_domain("b", 30, 50, 1)], log=lambda *_: None)
    losses = [h["loss"] for h in res["history"]]
    assert losses[-1] < losses[0], losses
    st = load_pretrained(tmp_path / "pt" / "pretrained.pt")
    assert st["epoch"] == 3 and st["domains"] == ["a", "b"] and st["item_offsets"] == [0, 40, 70]
    assert (tmp_path / "pt" / "epoch_2.pt").exists() and not (tmp_path / "pt" / "epoch_1.pt").exists()
    assert st["model"]["codes.item_codes"].shape == (71, 4)


def test_ddp_two_processes_agree_with_one(tmp_path):
    steps = 3
    one = pretrain(small_pretrain_config(str(tmp_path / "one")),
                   [tiny_domain("a", 40, 60, 0), tiny_domain("b", 30, 50, 1)], log=lambda *_: None, max_steps=steps)
    out = tmp_path / "ddp"
    out.mkdir()
    args = (2, str(tmp_path / "rendezvous"), str(out), steps)
    torch.multiprocessing.spawn(ddp_worker, args=args, nprocs=2, join=True)
    ref = one["model"].state_dict()
    for rank in (0, 1):
        got = torch.load(out / f"rank{rank}.pt")
        for k, v in ref.items():
            if v.is_floating_point():
                torch.testing.assert_close(got[k], v, rtol=1e-4, atol=1e-5, msg=lambda m: f"rank {rank} {k}: {m}")
            else:
                assert torch.equal(got[k], v), k
    # the parameters moved: agreement is not the trivial "nothing trained"
    init = small_pretrain_config(str(tmp_path / "x"))
    from vqrec_fast.transfer.pretrain import build_model
    fresh = build_model(init, ref["codes.item_codes"]).state_dict()
    assert not torch.allclose(fresh["codes.weight"], ref["codes.weight"])


def test_thin_long_rows_keeps_short_rows_and_a_fraction_of_cut_ones():
    from vqrec_fast.data import Examples
    from vqrec_fast.train.batches import build_rows
    from vqrec_fast.transfer.pretrain import thin_long_rows

    seq = list(range(1, 31))  # one user with 30 items, max_len 5: prefixes longer than 5 are cut rows
    ex = Examples.from_lists([seq[:t] for t in range(1, 30)], seq[1:30])
    rows = build_rows(ex, 5)
    thin = thin_long_rows(rows, 5, 0.3, 0)
    per_row = lambda r: np.add.reduceat((r.targets != 0).astype(np.int64), r.offsets[:-1])  # noqa: E731
    assert int((per_row(rows) > 1).sum()) == 1  # the one uncut row: items 1..5, targets at every position
    cut = rows.num_rows - 1
    assert thin.num_examples == rows.num_examples - (rows.num_rows - thin.num_rows)  # one example per cut row
    assert 0 < rows.num_rows - thin.num_rows < cut
    i = int(np.flatnonzero(per_row(thin) > 1)[0])
    assert thin.tokens[thin.offsets[i]: thin.offsets[i + 1]].tolist() == [1, 2, 3, 4, 5]
    assert thin.targets[thin.offsets[i]: thin.offsets[i + 1]].tolist() == [2, 3, 4, 5, 6]
    assert thin_long_rows(rows, 5, 1.0, 0) is rows
