"""Packed models against the padded RecBole-style formulation (dropout off), padding and batch
invariance, the sequence-layout identity (position t of a row == the prefix ending at t), and
gradients."""
from __future__ import annotations

import pytest
import torch

from tests.tolerance import assert_close
from vqrec_fast.models import PackedLayout, SASRec, TextSeqRec, VQRec
from vqrec_fast.reference.seqrec import seqrec_forward_ref
from tests._single_thread import single_thread  # noqa: F401  (autouse)

N_ITEMS, H = 97, 48


def _models():
    torch.manual_seed(0)
    small = dict(hidden=H, n_heads=2, inner=40, max_len=20)
    return {
        "vqrec": VQRec(torch.randint(0, 16, (N_ITEMS + 1, 4), dtype=torch.uint8), codebook_size=16,
                       loss_impl="dense", topk_impl="dense", **small),
        "sasrec": SASRec(N_ITEMS, **small),
        "text": TextSeqRec(torch.randn(N_ITEMS + 1, 23), **small),
    }


def _padded(lengths, L=None, seed=1):
    g = torch.Generator().manual_seed(seed)
    L = L or max(lengths)
    out = torch.zeros(len(lengths), L, dtype=torch.int64)
    for i, n in enumerate(lengths):
        out[i, :n] = torch.randint(1, N_ITEMS + 1, (n,), generator=g)
    return out


LENGTHS = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 20, 1, 6]


@pytest.mark.parametrize("name", ["vqrec", "sasrec", "text"])
def test_packed_matches_padded_reference(name):
    m = _models()[name].eval()
    padded = _padded(LENGTHS)
    assert_close(m.forward_padded(padded), seqrec_forward_ref(m, padded), 1e-5, 1e-5, name)


@pytest.mark.parametrize("name", ["vqrec", "sasrec"])
def test_extra_padding_and_batch_mates_change_nothing(name):
    m = _models()[name].eval()
    padded = _padded(LENGTHS)
    base = m.forward_padded(padded)
    wider = torch.cat([padded, torch.zeros(len(LENGTHS), 7, dtype=torch.int64)], 1)
    assert_close(m.forward_padded(wider), base, 1e-6, 1e-6, "extra padding")
    for i in (0, 8, 10):  # each sequence alone
        assert_close(m.forward_padded(padded[i : i + 1, : LENGTHS[i]]), base[i : i + 1], 1e-5, 1e-5, f"row {i}")


def test_all_positions_equal_prefix_outputs():
    """The identity the "sequence" training layout relies on."""
    m = _models()["vqrec"].eval()
    padded = _padded([9, 4, 1])
    layout, tokens = PackedLayout.from_padded(padded)
    every = m.encode(tokens, layout)  # [T, H]
    t = 0
    for r, n in enumerate([9, 4, 1]):
        for j in range(n):
            prefix = padded[r : r + 1, : j + 1]
            assert_close(every[t], m.forward_padded(prefix)[0], 1e-5, 1e-5, f"row {r} pos {j}")
            t += 1


def test_gradients_match_reference():
    m = _models()["vqrec"].eval()  # dropout off, autograd on
    padded = _padded(LENGTHS)
    targets = torch.randint(1, N_ITEMS + 1, (len(LENGTHS),), generator=torch.Generator().manual_seed(3))
    m.zero_grad()
    m.loss(m.forward_padded(padded), targets).backward()
    got = {k: p.grad.clone() for k, p in m.named_parameters()}
    m.zero_grad()
    m.loss(seqrec_forward_ref(m, padded), targets).backward()
    for k, p in m.named_parameters():
        assert_close(got[k], p.grad, 1e-4, 1e-6, k)


def test_dropout_on_changes_output_and_is_seeded():
    m = _models()["sasrec"].train()
    padded = _padded(LENGTHS)
    torch.manual_seed(5)
    a = m.forward_padded(padded)
    torch.manual_seed(5)
    b = m.forward_padded(padded)
    assert torch.equal(a, b)
    assert not torch.allclose(a, m.eval().forward_padded(padded))


def test_scores_are_cosine_over_temperature_and_exclude_padding():
    m = _models()["vqrec"].eval()
    q = torch.randn(5, H)
    items = torch.nn.functional.normalize(m.codes(codes=m.codes.item_codes[1:]), dim=-1)
    want = torch.nn.functional.normalize(q, dim=-1) @ items.T / 0.07
    assert_close(m.logits(q), want, 1e-5, 1e-5, "logits")
    scores, ids = m.topk(q, 10)
    assert int(ids.min()) >= 1 and int(ids.max()) <= N_ITEMS
    assert_close(scores, torch.gather(want, 1, ids - 1), 1e-5, 1e-5, "topk scores")
    assert_close(scores, torch.topk(want, 10).values, 1e-5, 1e-5, "topk values")


def test_bad_inputs_raise_clear_errors():
    m = _models()["sasrec"]
    with pytest.raises(ValueError, match="max_len"):
        m.forward_padded(_padded([21]))
    with pytest.raises(ValueError, match="empty"):
        m(torch.tensor([3, 4]), torch.tensor([0, 2, 2]))
    with pytest.raises(ValueError, match="n_heads"):
        SASRec(10, hidden=50, n_heads=3)
    with pytest.raises(ValueError, match="item_codes"):
        VQRec(torch.zeros(1, 4, dtype=torch.uint8))


def test_fused_topk_matches_dense():
    import vqrec_fast as vf

    if not hasattr(vf, "score_topk"):
        pytest.skip("score_topk (issue 3) not in this build")
    m = _models()["vqrec"].eval()
    q = torch.randn(9, H)
    m.topk_impl = "dense"
    s_dense, _ = m.topk(q, 12)
    m.topk_impl = "fused"
    s_fused, ids = m.topk(q, 12)
    assert_close(s_fused, s_dense, 1e-4, 1e-4, "scores")  # compare scores, not ids (ties)
    assert_close(s_fused, m.logits(q).gather(1, ids - 1), 1e-4, 1e-4, "ids point at their scores")
