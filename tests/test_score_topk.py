"""score_topk / score_all against the float64 brute-force reference, at every SIMD level and in
every scan (exact float LUTs; quantized LUTs whose candidates are scored exactly, by blocks of
items and by groups of queries). Scores must match within 1e-5 (relative to the largest score); ids are checked through
their reference scores, so ties may resolve differently."""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import vqrec_fast as vf
from vqrec_fast._native import _C
from vqrec_fast.reference import score_all_ref, score_topk_ref

from conftest import SIMD_LEVELS
from tolerance import assert_close

QUANTIZED = ["quantized_blocks", "quantized_queries"]  # the two scans behind mode="quantized"
MODES = ["exact", *QUANTIZED, "dense"]


def make(B, N, D, K, H, seed=0, dtype=torch.uint8):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, K, H, generator=g)
    codes = torch.randint(0, K, (N, D), generator=g).to(dtype)
    q = torch.randn(B, H, generator=g)
    return q, W, codes


def check_topk(got, q, W, codes, k, *, item_scale=None, exclude=None, metric="ip"):
    s, i = got
    ref_s, _ = score_topk_ref(q, W, codes, k, item_scale, exclude, metric)
    assert s.dtype == torch.float32 and i.dtype == torch.int64
    assert s.shape == i.shape == ref_s.shape
    finite = torch.isfinite(ref_s)
    assert torch.equal(torch.isfinite(s), finite), "number of results per row differs"
    assert bool((i[~finite] == -1).all())
    tol = 1e-5 * max(1.0, float(ref_s[finite].abs().max())) if bool(finite.any()) else 1e-5
    assert_close(s[finite], ref_s[finite], rtol=0, atol=tol, name="top-k scores")
    # every returned id really has the returned score, and no id repeats within a row
    full = score_all_ref(q, W, codes, item_scale, metric)
    rows = torch.arange(s.shape[0]).unsqueeze(1).expand_as(i)
    assert_close(full[rows[finite], i[finite]], s[finite], rtol=0, atol=tol, name="scores of returned ids")
    for b in range(i.shape[0]):
        ids = i[b][i[b] >= 0]
        assert ids.unique().numel() == ids.numel()
        if exclude is not None:
            assert not bool(torch.isin(ids, torch.as_tensor(exclude[b], dtype=torch.int64)).any())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("metric", ["ip", "cosine"])
@pytest.mark.parametrize(
    "B,N,D,K,H,k",
    [(37, 3001, 32, 256, 48, 10), (5, 777, 7, 19, 23, 50), (1, 130, 3, 256, 5, 1), (18, 64, 1, 4, 9, 7)],
)
def test_matches_reference(simd_level, mode, metric, B, N, D, K, H, k):
    if mode == "dense" and simd_level != SIMD_LEVELS[-1]:
        pytest.skip("the dense strategy is torch GEMM + top-k: one SIMD level is enough")
    q, W, codes = make(B, N, D, K, H)
    check_topk(vf.score_topk(q, W, codes, k, metric=metric, mode=mode), q, W, codes, k, metric=metric)


@pytest.mark.parametrize("mode", MODES)
def test_item_scale_and_int_codes(simd_level, mode):
    q, W, codes = make(9, 1500, 6, 200, 16, seed=1, dtype=torch.int64)
    scale = torch.rand(1500, generator=torch.Generator().manual_seed(2)) * 3
    scale[::7] = 0.0
    got = vf.score_topk(q, W, codes, 20, item_scale=scale, mode=mode)
    check_topk(got, q, W, codes, 20, item_scale=scale)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_scale_extremes_per_block(simd_level, sign):
    # The quantized scan pre-tests each 64-item block with an integer threshold derived from the
    # block's largest scale: blocks whose scales are all zero, one huge scale among tiny ones,
    # and (sign -1) only negative scores, where the threshold stays negative and the pre-test
    # must let everything through to the float test.
    q, W, codes = make(6, 64 * 12 + 5, 32, 256, 24, seed=21)
    W = W.abs() + 0.1 if sign > 0 else -(W.abs() + 0.1)
    q = q.abs()
    scale = torch.rand(codes.shape[0], generator=torch.Generator().manual_seed(22)) * 1e-3
    scale[64:192] = 0.0                  # two whole blocks (in scan order) of zero scales
    scale[200] = 50.0                    # one large scale in an otherwise tiny block
    scale[256:512] = 0.0                 # a whole tile of the query-major scan's thresholds
    scale[-5:] = 2.0                     # the ragged last block
    for mode in ("exact", *QUANTIZED):
        got = vf.score_topk(q, W, codes, 7, item_scale=scale, mode=mode)
        check_topk(got, q, W, codes, 7, item_scale=scale)
        if sign > 0:
            assert bool((got[1][:, 0] == 200).all())


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("spread", [0.5, 1.5e-3, 0.5e-3, 0.0])
def test_scale_decides_the_ranking(simd_level, sign, spread):
    # The quantized scans pre-test items with integer thresholds derived from the scales of a
    # whole block or scale class, which must hold for its largest scale when scores are positive and
    # for its smallest when they are negative. Table entries near a common value of +-5 with a
    # tiny spread make the item scale decide the ranking, with a bound band far narrower than
    # the spread of scales (0.05% to 50%), so a threshold taken from the wrong end of a block's
    # or class's scales holds back top items: that mistake fails this test (checked by planting
    # it).
    q, W, codes = make(33, 4096 * 2 + 300, 32, 256, 8, seed=25)
    W = sign * (5.0 + 1e-3 * W)
    q = q.abs() + 0.5
    scale = 1.0 + spread * torch.rand(codes.shape[0], generator=torch.Generator().manual_seed(26))
    ref = vf.score_topk(q, W, codes, 50, item_scale=scale, mode="exact")
    check_topk(ref, q, W, codes, 50, item_scale=scale)
    for mode in QUANTIZED:
        assert torch.equal(vf.score_topk(q, W, codes, 50, item_scale=scale, mode=mode)[0], ref[0]), mode


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_large_common_offset(simd_level, metric):
    # Every table entry near a large common value with a tiny spread: the quantized scan's
    # offset is then many thousands of steps, so one float ulp of it spans many integer units and
    # its bound tests must keep their margins relative to the offset, not to the step.
    q, W, codes = make(5, 64 * 9 + 3, 32, 256, 16, seed=23)
    W = 5.0 + 0.1 * W
    q = q.abs() + 0.5
    for mode in ("exact", *QUANTIZED):
        check_topk(vf.score_topk(q, W, codes, 9, metric=metric, mode=mode), q, W, codes, 9, metric=metric)


@pytest.mark.parametrize("B", [70, 130])
def test_query_groups(simd_level, B):
    # Several groups of queries in the query-major scan (16 / 32 / 64 per group by SIMD level),
    # the last one partial; over 4,096 items, so the dynamically scheduled chunks and their
    # 1,024-item threshold tiles cut through the catalogue; with exclusions per query.
    q, W, codes = make(B, 9000, 32, 256, 20, seed=24)
    exclude = [torch.arange(b % 5, 9000, 97) for b in range(B)]
    got = {m: vf.score_topk(q, W, codes, 12, exclude=exclude, metric="cosine", mode=m) for m in ("exact", *QUANTIZED)}
    check_topk(got["quantized_queries"], q, W, codes, 12, exclude=exclude, metric="cosine")
    for m in QUANTIZED:
        assert torch.equal(got[m][0], got["exact"][0]), m


@pytest.mark.parametrize("nthreads", [1, 2, 3])
def test_query_groups_across_threads(simd_level, nthreads):
    # The query-major scan gives whole groups of queries to threads while each thread gets one,
    # and splits the items of the groups left over between the threads: with 1 / 2 / 3 threads
    # and 3 / 5 / 10 groups (B = 150 at 64 / 32 / 16 queries per group), both ways and their
    # mix, with exclusions; the scores equal the float scan's bit for bit.
    from vqrec_fast.ops.score_topk import query_luts

    if _C is None:
        pytest.skip("native extension not built")
    B, N, k = 150, 9000, 20
    q, W, codes = make(B, N, 32, 256, 12, seed=27)
    scale = 0.5 + torch.rand(N, generator=torch.Generator().manual_seed(28))
    exclude = [torch.arange(b % 3, N, 11) for b in range(B)]
    off = torch.tensor([0] + [len(e) for e in exclude]).cumsum(0)
    ids = torch.cat(exclude)
    lut = query_luts(q, W).contiguous()

    def run(scan):
        s, i = torch.empty(B, k), torch.empty(B, k, dtype=torch.int64)
        _C.score_topk(lut.data_ptr(), B, 32, 256, codes.data_ptr(), "uint8", N, scale.data_ptr(), off.data_ptr(),
                      ids.data_ptr(), k, scan, s.data_ptr(), i.data_ptr(), nthreads)
        return s, i

    ref_s, _ = run(0)  # the float scan
    s, i = run(3)  # the query-major scan
    assert torch.equal(s, ref_s)
    for b in range(B):
        assert not bool(torch.isin(i[b], exclude[b]).any())
    check_topk((s, i), q, W, codes, k, item_scale=scale, exclude=exclude)


def test_quantized_picks_one_of_its_scans(simd_level):
    # mode="quantized" (and "auto" for N > D * K) run one of the two scans; the answer is theirs
    for B in (5, 100):
        q, W, codes = make(B, 9000, 32, 256, 12, seed=25)
        ref = vf.score_topk(q, W, codes, 10, mode="quantized_queries")
        for mode in ("quantized", "auto", "quantized_blocks"):
            s, i = vf.score_topk(q, W, codes, 10, mode=mode)
            assert torch.equal(s, ref[0]), (B, mode)


def test_quantized_scan_choice(simd_level):
    # the block scan only where VBMI byte permutes exist and the batch is small (below 28
    # queries, or 48 over fewer than 200k items): the crossovers measured in pick_quantized_scan
    from vqrec_fast.ops.score_topk import quantized_scan

    blocks = {(1, 10**6), (27, 10**6), (32, 10**5), (47, 199_999)}
    queries = {(28, 10**6), (32, 200_000), (48, 10**4), (256, 10**4), (256, 10**6), (4096, 10**7)}
    for B, N in blocks | queries:
        want = "blocks" if simd_level == "avx512" and (B, N) in blocks else "queries"
        assert quantized_scan(B, N) == want, (B, N)


def test_auto_at_the_crossover(simd_level):
    # B = 28 queries over 200k items: the fewest queries with which mode="auto" runs the
    # query-major scan at every level; its scores equal the float scan's bit for bit
    from vqrec_fast.ops.score_topk import quantized_scan

    q, W, codes = make(28, 200_000, 32, 256, 8, seed=26)
    assert quantized_scan(28, 200_000) == "queries"
    exclude = [torch.arange(b, 200_000, 7) for b in range(28)]
    got = vf.score_topk(q, W, codes, 25, exclude=exclude, metric="cosine")
    ref = vf.score_topk(q, W, codes, 25, exclude=exclude, metric="cosine", mode="exact")
    assert torch.equal(got[0], ref[0])
    for b in range(28):
        assert not bool(torch.isin(got[1][b], exclude[b]).any())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    B=st.integers(1, 140), N=st.integers(1, 12_000), D=st.integers(1, 40), K=st.integers(1, 256),
    k=st.integers(1, 60), zero_scales=st.booleans(), seed=st.integers(0, 2**31 - 1),
)
def test_quantized_scans_equal_the_float_scan(simd_level, B, N, D, K, k, zero_scales, seed):
    # Drawn shapes (partial query groups, ragged tiles and blocks, odd D, small K, k > N), scales
    # spanning two orders of magnitude (some zero), exclusions: both uint8 scans give the float
    # scan's scores bit for bit, and never an excluded id.
    g = torch.Generator().manual_seed(seed)
    q, W, codes = make(B, N, D, K, 6, seed=seed % 1000)
    scale = torch.rand(N, generator=g) * 100 + 0.5
    if zero_scales:
        scale[torch.rand(N, generator=g) < 0.2] = 0.0
    exclude = [torch.randint(0, N, (int(torch.randint(0, 5, (1,), generator=g)),), generator=g) for _ in range(B)]
    ref = vf.score_topk(q, W, codes, k, item_scale=scale, exclude=exclude, mode="exact")
    for mode in QUANTIZED:
        s, i = vf.score_topk(q, W, codes, k, item_scale=scale, exclude=exclude, mode=mode)
        assert torch.equal(s, ref[0]), mode
        for b in range(B):
            assert not bool(torch.isin(i[b], exclude[b]).any()), mode


def test_large_k_uses_exact_for_wide_codebooks(simd_level):
    q, W, codes = make(4, 500, 4, 300, 8, seed=3, dtype=torch.int32)  # K > 256: exact scan only
    check_topk(vf.score_topk(q, W, codes, 5), q, W, codes, 5)
    for mode in ("quantized", *QUANTIZED):
        with pytest.raises(ValueError, match="K <= 256"):
            vf.score_topk(q, W, codes, 5, mode=mode)


@pytest.mark.parametrize("mode", MODES)
def test_exclusions(simd_level, mode):
    q, W, codes = make(6, 900, 8, 64, 12, seed=4)
    full = score_all_ref(q, W, codes)
    top = full.topk(30, dim=1).indices
    exclude = [top[b, : 3 * b + 1] for b in range(6)]  # the best items, a different count per row
    exclude[2] = torch.tensor([], dtype=torch.int64)
    exclude[3] = torch.cat([exclude[3], exclude[3]])  # repeats are fine
    got = vf.score_topk(q, W, codes, 10, exclude=exclude, mode=mode)
    check_topk(got, q, W, codes, 10, exclude=exclude)
    # the same as CSR
    offsets = torch.tensor([0] + [len(e) for e in exclude]).cumsum(0)
    csr = (offsets, torch.cat(exclude))
    got_csr = vf.score_topk(q, W, codes, 10, exclude=csr, mode=mode)
    assert torch.equal(got[0], got_csr[0])


@pytest.mark.parametrize("mode", MODES)
def test_exclusions_leave_fewer_than_k(simd_level, mode):
    q, W, codes = make(2, 20, 4, 16, 6, seed=5)
    exclude = [torch.arange(0, 20, 2), torch.arange(20)]
    s, i = vf.score_topk(q, W, codes, 15, exclude=exclude, mode=mode)
    assert s.shape == (2, 15)
    assert int((i[0] >= 0).sum()) == 10 and bool((i[1] == -1).all())
    assert bool(torch.isinf(s[1]).all()) and bool((s[1] < 0).all())
    check_topk((s, i), q, W, codes, 15, exclude=exclude)


@pytest.mark.parametrize("mode", MODES)
def test_ties(simd_level, mode):
    # 4 distinct items repeated: every score is tied many times over
    q, W, codes = make(5, 4, 8, 32, 10, seed=6)
    codes = codes.repeat(50, 1)
    s, i = vf.score_topk(q, W, codes, 30, mode=mode)
    check_topk((s, i), q, W, codes, 30)


@pytest.mark.parametrize("mode", ["exact", *QUANTIZED])
def test_many_tied_candidates(simd_level, mode):
    # 3 distinct items repeated 3,000 times: thousands of exactly tied items per query reach the
    # quantized scans' bound test and their exact scoring; the best item's ids are excluded for
    # query 0, so its threshold must not count them
    q, W, codes = make(4, 3, 8, 32, 10, seed=16)
    codes = codes.repeat(3000, 1)
    best = int(score_all_ref(q[:1], W, codes[:3]).argmax())
    exclude = [torch.arange(best, codes.shape[0], 3), [], [], []]
    s, i = vf.score_topk(q, W, codes, 40, exclude=exclude, mode=mode)
    check_topk((s, i), q, W, codes, 40, exclude=exclude)


@pytest.mark.parametrize("mode", MODES)
def test_k_above_n_and_empty(simd_level, mode):
    q, W, codes = make(3, 5, 4, 16, 6, seed=7)
    s, i = vf.score_topk(q, W, codes, 50, mode=mode)
    assert s.shape == (3, 5)
    check_topk((s, i), q, W, codes, 50)
    s, i = vf.score_topk(q, W, codes[:0], 5, mode=mode)
    assert s.shape == (3, 0) and i.shape == (3, 0)
    s, i = vf.score_topk(q[:0], W, codes, 5, mode=mode)
    assert s.shape == (0, 5)


def test_query_chunks(simd_level, monkeypatch):
    import importlib

    st = importlib.import_module("vqrec_fast.ops.score_topk")
    monkeypatch.setattr(st, "_QUERY_CHUNK", 4)  # several native calls, exclusions sliced per chunk
    monkeypatch.setattr(st, "_DENSE_SCORES", 1000)  # several GEMMs in the small-N strategy
    q, W, codes = make(11, 300, 5, 32, 8, seed=8)
    exclude = [torch.arange(b, 300, 11) for b in range(11)]
    for mode in ("auto", "dense"):
        got = vf.score_topk(q, W, codes, 7, exclude=exclude, mode=mode)
        check_topk(got, q, W, codes, 7, exclude=exclude)


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_score_all(simd_level, metric):
    q, W, codes = make(7, 333, 6, 40, 11, seed=9)
    got = vf.score_all(q, W, codes, metric=metric)
    ref = score_all_ref(q, W, codes, metric=metric)
    assert_close(got, ref, rtol=0, atol=1e-5 * float(ref.abs().max()), name="score_all")


@pytest.mark.parametrize("mode", MODES)
def test_real_published_codes(scientific_dir, simd_level, mode):
    faiss = pytest.importorskip("faiss")
    ix = faiss.read_index(str(scientific_dir / "Scientific.OPQ32,IVF1,PQ32x8.strict.index"))
    ivf = faiss.downcast_index(faiss.extract_index_ivf(ix))
    n, size = ivf.invlists.list_size(0), ivf.invlists.code_size
    codes = torch.from_numpy(faiss.rev_swig_ptr(ivf.invlists.get_codes(0), n * size).copy().reshape(n, size))
    W = torch.from_numpy(faiss.vector_to_array(ivf.pq.centroids).reshape(ivf.pq.M, ivf.pq.ksub, ivf.pq.dsub))
    q = torch.randn(64, W.shape[2], generator=torch.Generator().manual_seed(10))
    history = [codes.shape[0] - 1 - torch.arange(b) for b in range(64)]
    got = vf.score_topk(q, W, codes, 50, metric="cosine", exclude=history, mode=mode)
    check_topk(got, q, W, codes, 50, exclude=history, metric="cosine")


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs():
    q, W, codes = make(3, 40, 4, 16, 6, seed=11)
    with pytest.raises(ValueError, match=r"queries\[1, 2\]"):
        bad = q.clone()
        bad[1, 2] = float("nan")
        vf.score_topk(bad, W, codes, 3)
    with pytest.raises(ValueError, match=r"W\[0, 5, 1\]"):
        bad = W.clone()
        bad[0, 5, 1] = float("inf")
        vf.score_topk(q, bad, codes, 3)
    with pytest.raises(ValueError, match=r"codes\[7, 2\] = 16"):
        bad = codes.to(torch.int32)
        bad[7, 2] = 16
        vf.score_topk(q, W, bad, 3)
    with pytest.raises(ValueError, match="k must be a positive int"):
        vf.score_topk(q, W, codes, 0)
    with pytest.raises(ValueError, match="H=5"):
        vf.score_topk(q[:, :5], W, codes, 3)
    with pytest.raises(ValueError, match="sub-spaces"):
        vf.score_topk(q, W, codes[:, :3], 3)
    with pytest.raises(TypeError, match="queries must be float32"):
        vf.score_topk(q.double(), W, codes, 3)
    with pytest.raises(TypeError, match="codes must be an integer tensor"):
        vf.score_topk(q, W, codes.float(), 3)
    with pytest.raises(ValueError, match="metric"):
        vf.score_topk(q, W, codes, 3, metric="l2")
    with pytest.raises(ValueError, match="mode"):
        vf.score_topk(q, W, codes, 3, mode="fast")
    with pytest.raises(ValueError, match=r"item_scale\[4\]"):
        scale = torch.ones(40)
        scale[4] = -1.0
        vf.score_topk(q, W, codes, 3, item_scale=scale)
    with pytest.raises(ValueError, match=r"item_scale must have shape \[N\]"):
        vf.score_topk(q, W, codes, 3, item_scale=torch.ones(39))
    with pytest.raises(ValueError, match="query 1 lists item id 40"):
        vf.score_topk(q, W, codes, 3, exclude=[[0], [40], []])
    with pytest.raises(ValueError, match="one id collection per query"):
        vf.score_topk(q, W, codes, 3, exclude=[[0]])
    with pytest.raises(ValueError, match=r"W\[0, 0, 0\]"):  # no query: W is still checked
        bad = W.clone()
        bad[0, 0, 0] = float("nan")
        vf.score_topk(q[:0], bad, codes, 3)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_native_core_checks_item_scales(bad):
    # The C++ core does not rely on the Python checks: called directly, it names the first bad
    # scale; -0.0 is a valid scale.
    if _C is None:
        pytest.skip("native extension not built")
    N, D, K = 5000, 4, 16
    lut = torch.randn(1, D, K)
    codes = torch.randint(0, K, (N, D), dtype=torch.uint8)
    out_s, out_i = torch.empty(1, 3), torch.empty(1, 3, dtype=torch.int64)
    scale = torch.rand(N)
    scale[10] = -0.0

    def call():
        _C.score_topk(lut.data_ptr(), 1, D, K, codes.data_ptr(), "uint8", N, scale.data_ptr(), 0, 0, 3, 0,
                      out_s.data_ptr(), out_i.data_ptr(), 1)

    call()
    scale[4321] = bad
    scale[4999] = bad
    with pytest.raises(ValueError, match=r"item_scale\[4321\] = .* must be finite and >= 0"):
        call()


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32])
def test_item_scales_are_inverse_code_bag_norms(simd_level, dtype):
    # cosine scales 1 / ||item_n|| come from the codes without item rows (native) or from code
    # bag chunks (reference path); an all-zero item gets scale 0
    from vqrec_fast.ops.score_topk import item_scales

    _, W, codes = make(1, 3000, 6, 40, 37, seed=5, dtype=dtype)
    W[:, 0] = 0.0
    codes[7] = 0
    items = W.double()[torch.arange(6), codes.long()].mean(1)
    norms = items.norm(dim=1)
    want = torch.where(norms > 0, 1.0 / norms, torch.zeros_like(norms))
    got = item_scales(W, codes)
    assert got[7] == 0.0
    assert_close(got.double(), want, rtol=1e-6, atol=0, name="item scales")
