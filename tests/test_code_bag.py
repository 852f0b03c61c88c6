"""Code bag forward/backward against the plain-PyTorch reference, at every SIMD level."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings, strategies as st, HealthCheck

import vqrec_fast as vf
from vqrec_fast.ops.code_bag import _code_bag, _code_bag_seq
from vqrec_fast.reference import code_bag_backward_ref, code_bag_seq_backward_ref

from tolerance import assert_close

CODE_DTYPES = [torch.uint8, torch.int16, torch.int32, torch.int64]


def gather_mean64(W: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """The paper's formulation in float64: gather [N, D, H] then mean over D."""
    D = W.shape[0]
    return W.double()[torch.arange(D), codes.long()].mean(-2)


def make(D, K, H, N, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, K, H, generator=g)
    if dtype == torch.uint8 and K > 256:
        dtype = torch.int32
    codes = torch.randint(0, K, (N, D), generator=g).to(dtype)
    return W, codes


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    D=st.integers(1, 64),
    K=st.integers(1, 1024),
    H=st.integers(1, 513),
    N=st.integers(0, 70),
    dtype=st.sampled_from(CODE_DTYPES),
)
def test_forward_backward_random_shapes(simd_level, D, K, H, N, dtype):
    if dtype == torch.int16 and K > 2**15:
        return
    W, codes = make(D, K, H, N, dtype, seed=D * 1000 + K + H)
    Wg = W.clone().requires_grad_(True)
    out = vf.code_bag(Wg, codes)
    assert out.shape == (N, H) and out.dtype == torch.float32
    assert_close(out, gather_mean64(W, codes), rtol=1e-6, atol=1e-6, name="forward")
    g = torch.randn(N, H)
    (gW,) = torch.autograd.grad(out, Wg, g) if N else (torch.zeros_like(W),)
    ref = code_bag_backward_ref(g.double(), codes, D, K)
    assert_close(gW, ref, rtol=1e-5, atol=1e-5, name="grad W")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    D=st.integers(1, 40),
    K=st.integers(1, 300),
    H=st.integers(1, 200),
    I=st.integers(1, 60),
    B=st.integers(0, 6),
    L=st.integers(0, 9),
    pad_frac=st.floats(0.0, 1.0),
)
def test_seq_forward_backward(simd_level, D, K, H, I, B, L, pad_frac):
    W, item_codes = make(D, K, H, I, torch.uint8, seed=I + 7 * B + L)
    g = torch.Generator().manual_seed(B * 31 + L)
    ids = torch.randint(0, I, (B, L), generator=g)
    ids[torch.rand(B, L, generator=g) < pad_frac] = 0
    Wg = W.clone().requires_grad_(True)
    out = vf.code_bag_seq(Wg, item_codes, ids)
    assert out.shape == (B, L, H)
    expect = gather_mean64(W, item_codes[ids.reshape(-1)]).reshape(B, L, H) * (ids != 0).unsqueeze(-1)
    assert_close(out, expect, rtol=1e-6, atol=1e-6, name="seq forward")
    assert bool((out[ids == 0] == 0).all()), "padding rows must be exactly zero"
    go = torch.randn(B, L, H)
    if out.numel():
        (gW,) = torch.autograd.grad(out, Wg, go)
        ref = code_bag_seq_backward_ref(go.double(), item_codes, ids, D, K)
        assert_close(gW, ref, rtol=1e-5, atol=1e-5, name="seq grad W")


def test_seq_over_a_catalogue_much_larger_than_the_batch(simd_level):
    # I >> T takes the sort-based grouping of positions by item (not a count per catalogue id);
    # repeated ids, padding and the largest id must all come out right in both directions.
    D, K, H, I = 6, 50, 37, 200_000
    g = torch.Generator().manual_seed(11)
    W = torch.randn(D, K, H, generator=g)
    item_codes = torch.randint(0, K, (I, D), generator=g, dtype=torch.uint8)
    ids = torch.randint(0, I, (5, 9), generator=g)
    ids[0, :4] = I - 1
    ids[1, ::2] = 0
    ids[2, 3:] = ids[3, :6]
    Wg = W.clone().requires_grad_(True)
    out = vf.code_bag_seq(Wg, item_codes, ids)
    expect = gather_mean64(W, item_codes[ids.reshape(-1)]).reshape(5, 9, H) * (ids != 0).unsqueeze(-1)
    assert_close(out, expect, rtol=1e-6, atol=1e-6, name="seq forward")
    go = torch.randn(5, 9, H, generator=g)
    (gW,) = torch.autograd.grad(out, Wg, go)
    ref = code_bag_seq_backward_ref(go.double(), item_codes, ids, D, K)
    assert_close(gW, ref, rtol=1e-5, atol=1e-5, name="seq grad W")


def test_more_than_256_subspaces(simd_level):
    # D > 256 takes the heap-allocated row-pointer tables (one per thread) of the row gather
    W, codes = make(300, 3, 17, 50, torch.uint8, seed=4)
    assert_close(vf.code_bag(W, codes), gather_mean64(W, codes), rtol=1e-6, atol=1e-6, name="D=300 forward")


def test_out_buffer_gets_the_same_rows(simd_level, monkeypatch):
    W, codes = make(6, 40, 37, 300, torch.uint8, seed=6)
    want = vf.code_bag(W, codes)
    buf = torch.full((300, 37), float("nan"))
    assert vf.code_bag(W, codes, out=buf) is buf
    assert torch.equal(buf, want)
    with torch.no_grad():  # W may require grad when autograd is off
        assert torch.equal(vf.code_bag(W.clone().requires_grad_(True), codes, out=buf.fill_(7.0)), want)
    # the path for other devices (and for torch.compile) copies the op's result into out
    import importlib

    monkeypatch.setattr(importlib.import_module("vqrec_fast.ops.code_bag"), "_compiling", lambda: True)
    assert torch.equal(vf.code_bag(W, codes, out=buf.fill_(7.0)), want)
    assert vf.code_bag(W, codes[:0], out=torch.empty(0, 37)).shape == (0, 37)


@pytest.mark.parametrize(
    "make_out, match",
    [
        (lambda: torch.empty(300, 36), r"out must have shape \[N, H\] = \[300, 37\], got \[300, 36\]"),
        (lambda: torch.empty(300, 37, dtype=torch.float64), "out must be float32"),
        (lambda: torch.empty(37, 300).t(), "out must be contiguous"),
        (lambda: "rows", "out must be a torch.Tensor"),
    ],
)
def test_out_buffer_errors(make_out, match):
    W, codes = make(6, 40, 37, 300, torch.uint8, seed=6)
    with pytest.raises((ValueError, TypeError), match=match):
        vf.code_bag(W, codes, out=make_out())


def test_out_buffer_refuses_autograd_and_aliasing():
    W, codes = make(2, 4, 8, 8, torch.uint8)
    with pytest.raises(ValueError, match="without autograd"):
        vf.code_bag(W.clone().requires_grad_(True), codes, out=torch.empty(8, 8))
    flat = W.reshape(-1)[: 8 * 8].view(8, 8)  # shares W's memory
    with pytest.raises(ValueError, match="must not share memory with W"):
        vf.code_bag(W, codes, out=flat)


def test_all_padding_and_empty(simd_level):
    W, item_codes = make(4, 16, 8, 5, torch.uint8)
    for shape in [(3, 4), (0, 4), (3, 0), (0, 0)]:
        ids = torch.zeros(shape, dtype=torch.int64)
        Wg = W.clone().requires_grad_(True)
        out = vf.code_bag_seq(Wg, item_codes, ids)
        assert out.shape == (*shape, 8) and bool((out == 0).all())
        out.sum().backward()
        assert bool((Wg.grad == 0).all())
    out = vf.code_bag(W, torch.zeros(0, 4, dtype=torch.uint8))
    assert out.shape == (0, 8)


@pytest.mark.parametrize("seq", [False, True])
def test_backward_deterministic_across_thread_counts(simd_level, seq):
    torch.manual_seed(0)
    D, K, H = 8, 4, 67  # few codes -> long, hot buckets
    W = torch.randn(D, K, H)
    item_codes = torch.randint(0, K, (50, D), dtype=torch.uint8)
    ids = torch.randint(0, 50, (64, 12))
    grads = []
    old = torch.get_num_threads()
    try:
        for nt in (1, 2, 3, 5):
            torch.set_num_threads(nt)
            Wg = W.clone().requires_grad_(True)
            out = vf.code_bag_seq(Wg, item_codes, ids) if seq else vf.code_bag(Wg, item_codes[ids.reshape(-1)])
            out.backward(torch.ones_like(out) * torch.linspace(-1, 1, H))
            grads.append(Wg.grad.clone())
    finally:
        torch.set_num_threads(old)
    for g in grads[1:]:
        assert torch.equal(g, grads[0]), "backward must be bit-identical for any thread count"


def test_levels_agree_bitwise_on_forward():
    """Every SIMD level sums in the same order, so forward results agree exactly."""
    W, codes = make(32, 256, 300, 100, torch.uint8)
    outs = []
    for level in vf.available_simd_levels():
        with vf.simd_level_context(level):
            outs.append(vf.code_bag(W, codes))
    for o in outs[1:]:
        assert_close(o, outs[0], rtol=1e-6, atol=1e-7, name="levels")


# ------------------------------------------------------------------------------------------ errors


def test_errors_name_the_argument():
    W, codes = make(4, 16, 8, 5, torch.uint8)
    with pytest.raises(TypeError, match="W must be float32"):
        vf.code_bag(W.double(), codes)
    with pytest.raises(ValueError, match=r"W must have shape \[D, K, H\]"):
        vf.code_bag(W[0], codes)
    with pytest.raises(TypeError, match="codes must be an integer tensor"):
        vf.code_bag(W, codes.float())
    with pytest.raises(ValueError, match="codes has 3 sub-spaces"):
        vf.code_bag(W, codes[:, :3])
    bad = codes.clone()
    bad[2, 1] = 16
    with pytest.raises(ValueError, match=r"codes\[2, 1\] = 16 is outside \[0, K=16\)"):
        vf.code_bag(W, bad)
    neg = codes.to(torch.int64)
    neg[4, 3] = -1
    with pytest.raises(ValueError, match=r"codes\[4, 3\] = -1"):
        vf.code_bag(W, neg)
    with pytest.raises(TypeError, match="codes must be a torch.Tensor"):
        vf.code_bag(W, [[1, 2, 3, 4]])
    ids = torch.tensor([[0, 1, 5]])
    with pytest.raises(ValueError, match=r"item_ids\[0, 2\] = 5 is outside \[0, 5\)"):
        vf.code_bag_seq(W, codes, ids)
    with pytest.raises(TypeError, match="item_ids must be an int64"):
        vf.code_bag_seq(W, codes, ids.float())
    with pytest.raises(ValueError, match="is on meta"):
        vf.code_bag(W, codes.to("meta"))


def test_native_core_checks_what_it_is_told():
    """The C++ core validates sizes and indices itself (never trusts the caller)."""
    from vqrec_fast._native import native

    C = native()
    W, codes = make(4, 16, 8, 5, torch.uint8)
    out = torch.empty(5, 8)
    bad = codes.clone()
    bad[3, 2] = 200
    with pytest.raises(ValueError, match=r"codes\[3, 2\] = 200 is outside \[0, 16\)"):
        C.code_bag_forward(W.data_ptr(), 4, 16, 8, bad.data_ptr(), "uint8", 5, out.data_ptr(), 1)
    with pytest.raises(ValueError, match="D >= 1"):
        C.code_bag_forward(W.data_ptr(), 0, 16, 8, codes.data_ptr(), "uint8", 5, out.data_ptr(), 1)
    with pytest.raises(ValueError, match="nthreads"):
        C.code_bag_forward(W.data_ptr(), 4, 16, 8, codes.data_ptr(), "uint8", 5, out.data_ptr(), 0)
    with pytest.raises(ValueError, match="code dtype"):
        C.code_bag_forward(W.data_ptr(), 4, 16, 8, codes.data_ptr(), "int8", 5, out.data_ptr(), 1)
    ids = torch.tensor([0, 7])
    with pytest.raises(ValueError, match="item_ids .* = 7 is outside"):
        C.code_bag_seq_forward(W.data_ptr(), 4, 16, 8, codes.data_ptr(), "uint8", 5, ids.data_ptr(), 2,
                               out.data_ptr(), 1)
    with pytest.raises(ValueError, match="null pointer"):
        C.code_bag_forward(0, 4, 16, 8, codes.data_ptr(), "uint8", 5, out.data_ptr(), 1)
    # positions are grouped by item in 32-bit indices: a larger T is refused before any work
    with pytest.raises(ValueError, match=r"0 <= T < 2\^31"):
        C.code_bag_seq_forward(W.data_ptr(), 4, 16, 8, codes.data_ptr(), "uint8", 5, ids.data_ptr(), 2**31,
                               out.data_ptr(), 1)


# ------------------------------------------------------------------------------ torch integration


def test_opcheck_registrations():
    W, codes = make(3, 10, 7, 6, torch.uint8)
    ids = torch.tensor([[0, 1, 2], [3, 0, 5]])
    torch.library.opcheck(_code_bag, (W.requires_grad_(True), codes))
    torch.library.opcheck(_code_bag_seq, (W, codes, ids))


def test_torch_compile_without_graph_breaks():
    torch._dynamo.reset()
    emb = vf.nn.CodeEmbedding(4, 16, 8, item_codes=torch.randint(0, 16, (20, 4)))
    lin = torch.nn.Linear(8, 3)

    def f(ids):
        return lin(emb(ids)).sum(-1)

    ids = torch.tensor([[0, 3, 5], [7, 7, 0]])
    eager = f(ids)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    out = compiled(ids)
    assert_close(out, eager, rtol=1e-6, atol=1e-6, name="compiled")
    out.sum().backward()
    assert emb.weight.grad is not None and emb.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------------------ CodeEmbedding


def test_code_embedding_module():
    torch.manual_seed(0)
    item_codes = torch.randint(0, 16, (20, 4))
    emb = vf.nn.CodeEmbedding(4, 16, 8, item_codes=item_codes)
    assert emb.item_codes.dtype == torch.uint8 and emb.num_items == 20
    ids = torch.tensor([[0, 3, 5], [7, 19, 0]])
    out = emb(ids)
    expect = gather_mean64(emb.weight.detach(), item_codes[ids.reshape(-1)]).reshape(2, 3, 8)
    expect = expect * (ids != 0).unsqueeze(-1)
    assert_close(out, expect, rtol=1e-6, atol=1e-6, name="module ids")
    assert_close(emb(codes=item_codes[:5]), gather_mean64(emb.weight.detach(), item_codes[:5]), 1e-6, 1e-6)
    assert "item_codes" in emb.state_dict()
    with pytest.raises(ValueError, match="either item_ids or codes"):
        emb()
    with pytest.raises(ValueError, match=r"item_codes\[\d+, \d+\] = \d+ is outside"):
        emb.set_item_codes(torch.full((3, 4), 16))


def test_flat_layout_round_trip():
    emb = vf.nn.CodeEmbedding(3, 5, 4)
    flat = emb.export_flat()
    assert flat.shape == (3 * 6, 4)
    assert bool((flat.reshape(3, 6, 4)[:, 0] == 0).all()), "padding row first in each sub-space"
    emb2 = vf.nn.CodeEmbedding.from_flat(flat, 3)
    assert torch.equal(emb2.weight, emb.weight)
    # the paper's lookup: flat[d * (K + 1) + 1 + code] averaged over d
    codes = torch.tensor([[0, 4, 2]])
    idx = torch.arange(3) * 6 + 1 + codes[0]
    paper = flat[idx].mean(0, keepdim=True)
    assert_close(emb(codes=codes), paper, 1e-6, 1e-6, name="paper layout")
    with pytest.raises(ValueError, match=r"flat must have shape"):
        emb.load_flat(flat[:-1])


def test_large_padded_batch_on_fresh_memory_reads_zero_in_padding(simd_level):
    """Big enough for the fresh-output path (untouched padding pages are left alone, huge
    pages advised): every padding row must still read exactly zero, every real row match."""
    g = torch.Generator().manual_seed(5)
    D, K, H, I = 8, 256, 300, 300
    W = torch.randn(D, K, H, generator=g)
    item_codes = torch.randint(0, K, (I, D), generator=g, dtype=torch.uint8)
    for _ in range(3):  # allocate, free and allocate again: reused memory must be zeroed too
        lens = torch.randint(0, 6, (600,), generator=g)
        ids = torch.randint(1, I, (600, 50), generator=g)
        ids[torch.arange(50)[None, :] >= lens[:, None]] = 0
        dirty = torch.full((600 * 50 * H,), 7.0)  # leave non-zero data in the allocator's pages
        del dirty
        out = vf.code_bag_seq(W, item_codes, ids)
        assert bool((out[ids == 0] == 0).all())
        expect = gather_mean64(W, item_codes[ids[ids != 0]])
        assert_close(out[ids != 0], expect, rtol=1e-6, atol=1e-6, name="real rows")
