"""Fused softmax cross-entropy over code-composed items against the dense PyTorch formulation.

Loss to 1e-5 relative and gradients (seq_out, W) to 1e-4 of their largest entry, at every SIMD
level; odd shapes (N not a multiple of the 64-item tile, B not a multiple of the 16-query
block, D not a multiple of the 4 accumulators, N = 1); every reduction, ignore_index,
temperature, extra negatives; gradients against float64 finite differences; bit-identical
results for 1 and 2 threads; real VQ-Rec codes of the Scientific dataset.
"""
from __future__ import annotations

import pytest
import torch

import vqrec_fast as vf
from vqrec_fast.ops.softmax_ce import dense_code_softmax_cross_entropy
from vqrec_fast.reference import code_softmax_cross_entropy_ref

from tolerance import assert_close

LOSS_RTOL = 1e-5
GRAD_TOL = 1e-4  # of the largest |gradient| entry


def _problem(B, N, D, K, H, seed=0, code_dtype=torch.uint8, extra=False):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, K, H, generator=g)
    q = torch.randn(B, H, generator=g)
    codes = torch.randint(0, K, (N, D), generator=g).to(code_dtype)
    target = torch.randint(0, N, (B,), generator=g)
    extra_codes = torch.randint(0, K, (B, D), generator=g).to(code_dtype) if extra else None
    return q, W, codes, target, extra_codes


def _loss_and_grads(fn, q, W, codes, target, **kw):
    q = q.clone().requires_grad_(True)
    W = W.clone().requires_grad_(True)
    loss = fn(q, W, codes, target, **kw)
    weight = torch.linspace(0.5, 1.5, loss.numel()).reshape(loss.shape)  # non-uniform upstream grad
    gq, gW = torch.autograd.grad((loss * weight).sum(), (q, W))
    return loss.detach(), gq, gW


def _compare(q, W, codes, target, ref_fn=code_softmax_cross_entropy_ref, **kw):
    loss, gq, gW = _loss_and_grads(vf.code_softmax_cross_entropy, q, W, codes, target, **kw)
    rloss, rgq, rgW = _loss_and_grads(ref_fn, q, W, codes, target, **kw)
    assert_close(loss, rloss, rtol=LOSS_RTOL, atol=1e-7, name="loss")
    assert_close(gq, rgq, rtol=0, atol=GRAD_TOL * float(rgq.abs().max()) + 1e-12, name="d seq_out")
    assert_close(gW, rgW, rtol=0, atol=GRAD_TOL * float(rgW.abs().max()) + 1e-12, name="dW")


# (B, N, D, K, H): N = 1; tiny; N and B off the tile/block sizes; D not a multiple of 4; N over
# two backward chunks (kCeChunk = 8192 items) with H off the 16-lane chunks; the VQ-Rec shape
# (D=32, K=256, H=300) with a Scientific-sized catalogue.
SHAPES = [(3, 1, 2, 4, 5), (5, 7, 4, 8, 12), (37, 1000, 8, 16, 31), (17, 129, 3, 5, 7), (21, 17000, 5, 16, 19),
          (40, 4385, 32, 256, 300)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("extra", [False, True], ids=["plain", "extra"])
def test_matches_dense(simd_level, shape, extra):
    q, W, codes, target, extra_codes = _problem(*shape, extra=extra)
    _compare(q, W, codes, target, extra_codes=extra_codes)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("normalize", [True, False])
def test_reductions_and_normalize(simd_level, reduction, normalize):
    q, W, codes, target, _ = _problem(21, 300, 6, 16, 20, seed=1)
    if not normalize:
        W = W * 0.05  # dot-product logits of a sane size
    _compare(q, W, codes, target, reduction=reduction, normalize=normalize)


@pytest.mark.parametrize("temperature", [0.02, 0.07, 1.0, 5.0])
def test_temperature(temperature):
    q, W, codes, target, extra_codes = _problem(19, 257, 5, 16, 24, seed=2, extra=True)
    _compare(q, W, codes, target, temperature=temperature, extra_codes=extra_codes)


@pytest.mark.parametrize("ignore_index", [-100, -1, 3])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_ignore_index(simd_level, ignore_index, reduction):
    q, W, codes, target, extra_codes = _problem(33, 200, 4, 16, 16, seed=3, extra=True)
    target[::3] = ignore_index
    _compare(q, W, codes, target, ignore_index=ignore_index, reduction=reduction, extra_codes=extra_codes)


def test_all_ignored_mean_is_nan_like_torch():
    q, W, codes, target, _ = _problem(4, 10, 2, 4, 6)
    target[:] = -100
    assert torch.isnan(vf.code_softmax_cross_entropy(q, W, codes, target))
    assert torch.isnan(code_softmax_cross_entropy_ref(q, W, codes, target))
    assert float(vf.code_softmax_cross_entropy(q, W, codes, target, reduction="sum")) == 0.0


def test_int32_codes_and_zero_norm_item():
    q, W, codes, target, _ = _problem(9, 50, 2, 4, 8, seed=4, code_dtype=torch.int32)
    W[:, 0] = 0.0
    codes[7] = 0  # item 7 is the zero vector: F.normalize clamps its norm, so must we
    target[0] = 7
    _compare(q, W, codes, target)


def test_dense_path_matches_reference(simd_level):
    q, W, codes, target, extra_codes = _problem(23, 333, 8, 32, 40, seed=5, extra=True)
    target[1] = -100
    kw = dict(extra_codes=extra_codes, reduction="sum")
    got = _loss_and_grads(dense_code_softmax_cross_entropy, q, W, codes, target, **kw)
    want = _loss_and_grads(code_softmax_cross_entropy_ref, q, W, codes, target, **kw)
    for g, w, name in zip(got, want, ("loss", "d seq_out", "dW")):
        assert_close(g, w, rtol=1e-5, atol=1e-6, name=name)


def test_gradients_against_float64_finite_differences():
    """The fp32 analytic gradients against central differences of the float64 dense loss."""
    q, W, codes, target, extra_codes = _problem(3, 5, 2, 3, 4, seed=6, extra=True)
    kw = dict(temperature=0.5, extra_codes=extra_codes, reduction="sum")
    _, gq, gW = _loss_and_grads(vf.code_softmax_cross_entropy, q, W, codes, target, **kw)
    weight = torch.linspace(0.5, 1.5, 1, dtype=torch.float64)

    def f(q64, W64):
        return float(code_softmax_cross_entropy_ref(q64, W64, codes, target, **kw) * weight)

    q64, W64, h = q.double(), W.double(), 1e-6
    for x, g, name in ((q64, gq, "d seq_out"), (W64, gW, "dW")):
        num = torch.zeros_like(x)
        flat, nflat = x.view(-1), num.view(-1)
        for i in range(flat.numel()):
            v = float(flat[i])
            flat[i] = v + h
            up = f(q64, W64)
            flat[i] = v - h
            down = f(q64, W64)
            flat[i] = v
            nflat[i] = (up - down) / (2 * h)
        assert_close(g, num, rtol=0, atol=GRAD_TOL * float(num.abs().max()), name=name)


def test_deterministic_across_thread_counts():
    q, W, codes, target, extra_codes = _problem(70, 3001, 8, 16, 48, seed=7, extra=True)
    before = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append(_loss_and_grads(vf.code_softmax_cross_entropy, q, W, codes, target, extra_codes=extra_codes))
    finally:
        torch.set_num_threads(before)
    for a, b, name in zip(*results, ("loss", "d seq_out", "dW")):
        assert torch.equal(a, b), f"{name} differs between 1 and 2 threads"


def test_real_scientific_codes(scientific_dir):
    faiss = pytest.importorskip("faiss")
    index = faiss.read_index(str(scientific_dir / "Scientific.OPQ32,IVF1,PQ32x8.strict.index"))
    lists = faiss.extract_index_ivf(index).invlists
    n, cs = lists.list_size(0), lists.code_size
    codes = torch.from_numpy(faiss.rev_swig_ptr(lists.get_codes(0), n * cs).copy().reshape(n, cs))
    g = torch.Generator().manual_seed(8)
    W = torch.randn(32, 256, 300, generator=g) * 0.02
    q = torch.randn(48, 300, generator=g)
    target = torch.randint(0, n, (48,), generator=g)
    _compare(q, W, codes, target)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(target=torch.tensor([0, 10])), r"target\[1\] = 10 is outside \[0, N=10\)"),
        (dict(target=torch.tensor([0, -5])), r"target\[1\] = -5"),
        (dict(seq_out=torch.randn(2, 7)), "H=7"),
        (dict(codes=torch.full((10, 2), 4)), r"codes\[0, 0\] = 4 is outside"),
        (dict(extra_codes=torch.zeros(3, 2, dtype=torch.uint8)), "extra_codes must have shape"),
        (dict(temperature=0.0), "temperature must be a positive"),
        (dict(reduction="avg"), "reduction must be one of"),
        (dict(codes=torch.zeros(0, 2, dtype=torch.uint8)), "at least one item"),
    ],
)
def test_bad_arguments_raise_clear_errors(change, match):
    q, W, codes, target, _ = _problem(2, 10, 2, 4, 6)
    args = dict(seq_out=q, W=W, codes=codes, target=target)
    kw = {k: change.pop(k) for k in list(change) if k not in args}
    args.update(change)
    with pytest.raises(ValueError, match=match):
        vf.code_softmax_cross_entropy(args["seq_out"], args["W"], args["codes"], args["target"], **kw)


def test_custom_op_registration():
    q, W, codes, target, extra_codes = _problem(5, 9, 2, 4, 6, extra=True)
    from vqrec_fast.ops.softmax_ce import _ce_fwd

    torch.library.opcheck(_ce_fwd, (q.requires_grad_(True), W.requires_grad_(True), codes, target, extra_codes, 0.07, True))


def test_pick_follows_catalogue_size_and_budget():
    from vqrec_fast.ops.softmax_ce import pick_code_softmax_cross_entropy as pick

    assert pick(2048, 4386, 32, 256) is dense_code_softmax_cross_entropy
    assert pick(2048, 25987, 32, 256) is vf.code_softmax_cross_entropy
    assert pick(2048, 6144, 32, 256) is dense_code_softmax_cross_entropy  # the crossover, 3/4 of D*K
    assert pick(2048, 7000, 32, 256) is vf.code_softmax_cross_entropy
    assert pick(2048, 4386, 32, 256, memory_budget=1 << 20) is vf.code_softmax_cross_entropy


def test_only_the_rows_output_carries_a_gradient():
    # the op's backward sees no gradient for lse/alpha/lut (no zero [B, D*K] is built for them);
    # a loss that uses rows differentiates as before, one that uses only lse reaches no input
    from vqrec_fast.ops.softmax_ce import _ce_fwd

    q, W, codes, target, _ = _problem(5, 9, 2, 4, 6)
    q.requires_grad_(True)
    W.requires_grad_(True)
    rows, lse, _, _ = _ce_fwd(q, W, codes, target, None, 0.07, True)
    gq, gW = torch.autograd.grad(rows.sum() + 0.0 * lse.sum(), (q, W))
    ref_q, ref_W = torch.autograd.grad(dense_code_softmax_cross_entropy(q, W, codes, target, reduction="sum"), (q, W))
    assert_close(gq, ref_q, rtol=1e-4, atol=1e-5, name="d seq_out")
    assert_close(gW, ref_W, rtol=1e-4, atol=1e-5, name="dW")
    rows, lse, _, _ = _ce_fwd(q, W, codes, target, None, 0.07, True)
    assert torch.autograd.grad(lse.sum(), (q, W), allow_unused=True) == (None, None)
