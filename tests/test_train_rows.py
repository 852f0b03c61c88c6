"""Training rows: the "sequence" layout holds exactly the input's (history, target) pairs, in any
input order and with truncated histories; batches cover every row once; losses of both
layouts agree."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from vqrec_fast.data import Examples
from vqrec_fast.models import PackedLayout, VQRec
from vqrec_fast.train.batches import build_rows, eval_rows, iter_batches
from tests._single_thread import single_thread  # noqa: F401  (autouse)


def _user_prefixes(seed=0, users=40, max_seq=14):
    rng = np.random.default_rng(seed)
    hists, targets = [], []
    for _ in range(users):
        seq = rng.integers(1, 30, rng.integers(2, max_seq)).tolist()
        for t in range(1, len(seq)):
            hists.append(seq[:t])
            targets.append(seq[t])
    order = rng.permutation(len(hists))  # any order
    return Examples.from_lists([hists[i] for i in order], [targets[i] for i in order])


def _pairs_of_rows(rows):
    out = Counter()
    for r in range(rows.num_rows):
        tok = rows.tokens[rows.offsets[r] : rows.offsets[r + 1]].tolist()
        tgt = rows.targets[rows.offsets[r] : rows.offsets[r + 1]].tolist()
        for j, t in enumerate(tgt):
            if t:
                out[(tuple(tok[: j + 1]), t)] += 1
    return out


@pytest.mark.parametrize("layout", ["sequence", "prefix"])
@pytest.mark.parametrize("max_len", [50, 6])
def test_rows_hold_exactly_the_examples(layout, max_len):
    ex = _user_prefixes()
    rows = build_rows(ex, max_len, layout)
    want = Counter((tuple(ex.history(e)[-max_len:].tolist()), int(ex.targets[e])) for e in range(len(ex)))
    assert _pairs_of_rows(rows) == want
    assert rows.num_examples == len(ex)
    if layout == "sequence":
        assert len(rows.tokens) < sum(min(n, max_len) for n in ex.lengths)  # fewer tokens than prefixes
    else:
        assert rows.num_rows == len(ex)


def test_duplicate_examples_are_kept():
    ex = Examples.from_lists([[1, 2], [1], [1, 2], [1]], [3, 2, 3, 2])
    rows = build_rows(ex, 50)
    assert rows.num_examples == 4
    assert _pairs_of_rows(rows) == Counter({((1, 2), 3): 2, ((1,), 2): 2})


def test_batches_cover_every_row_once():
    rows = build_rows(_user_prefixes(), 50)
    g = torch.Generator().manual_seed(0)
    seen = Counter()
    sizes = []
    for b in iter_batches(rows, 16, g):
        sizes.append(int(b.targets.numel()))
        for r in range(len(b.offsets) - 1):
            seen[tuple(b.tokens[b.offsets[r] : b.offsets[r + 1]].tolist())] += 1
        assert torch.equal(b.tokens[b.target_pos].new_tensor(b.targets.shape), torch.tensor(b.targets.shape))
    assert sum(sizes) == rows.num_examples
    assert sum(seen.values()) == rows.num_rows
    assert max(sizes[:-1]) < 16 + 14  # a batch stops at the row that reaches 16 examples


def test_sequence_and_prefix_layouts_give_the_same_loss():
    torch.manual_seed(0)
    ex = _user_prefixes(users=12)
    m = VQRec(torch.randint(0, 8, (31, 4), dtype=torch.uint8), codebook_size=8, hidden=24, inner=16, max_len=50,
              loss_impl="dense").eval()
    losses = []
    for layout in ("sequence", "prefix"):
        rows = build_rows(ex, 50, layout)
        lay = PackedLayout.from_offsets(torch.from_numpy(rows.offsets))
        out = m.encode(torch.from_numpy(rows.tokens), lay)
        pos = torch.from_numpy(np.nonzero(rows.targets)[0])
        losses.append(m.loss(out[pos], torch.from_numpy(rows.targets)[pos]))
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)


def test_eval_rows_and_errors():
    ex = Examples.from_lists([[1, 2, 3, 4], [5]], [6, 7])
    rows = eval_rows(ex, 3, "valid")
    assert rows.tokens.tolist() == [2, 3, 4, 5] and rows.targets.tolist() == [0, 0, 6, 7]
    with pytest.raises(ValueError, match="valid example 1 has an empty history"):
        eval_rows(Examples.from_lists([[1], []], [2, 3]), 5, "valid")
    with pytest.raises(ValueError, match="train_layout"):
        build_rows(ex, 5, "bogus")
