"""Full-softmax cross-entropy over code-composed items, fused (``vqrec_fast::code_softmax_ce``)
and dense.

    code_softmax_cross_entropy(seq_out, W, codes, target)
      == cross_entropy(normalize(seq_out) @ normalize(code_bag(W, codes)).T / t, target)

Shapes and dtypes:
  seq_out     float32 [B, H]     query (sequence) representations
  W           float32 [D, K, H]  codebooks
  codes       integer [N, D]     codes of the N candidate items; every row is a real item
                                 (a model whose row 0 is padding passes codes[1:] and target - 1)
  target      integer [B]        index into codes' rows, or ignore_index
  extra_codes integer [B, D]     optional: one extra negative per query (its logit is an extra
                                 column for that query only; never a target)

How the fused form works (see csrc/cpu/softmax_ce.h): logits are an ADC scan,
s_bn = alpha_n * sum_d LUT[b, d, c_nd] with LUT = Q_hat W^T ([B, D*K], one GEMM) and
alpha_n = 1 / (t D |e_n|). The scan keeps a per-query log-sum-exp (forward), then recomputes
the logits and scatters dL/dLUT (backward); dq_hat = A W and dW = A^T Q_hat are two more GEMMs,
plus a per-item term through |e_n|. GEMM work is 3 * B * D*K * H instead of the dense
3 * B * N * H, and neither [B, N] nor [N, H] is held. The native CPU kernels get |e_n| and the
|e_n| term from the codes by 16-lane chunks of W (``code_bag_norms``, ``code_bag_norm_grad``);
the reference kernels use code-bag tiles of at most ``_ITEM_TILE`` rows.

Choosing fused or dense (the trainer keeps both selectable; they agree to ~1e-6;
``pick_code_softmax_cross_entropy(B, N, D, K)`` applies this rule):
  * ``code_softmax_cross_entropy`` (fused) whenever N is larger than about 3/4 of D*K (6,144
    at D=32, K=256; measured crossover at B=2048: 0.98x at N=5,500, 1.16x at N=7,000, 1.36x at
    8,192): it is faster, and its extra memory is ~2 * B * D*K * 4 bytes (the LUT and its
    gradient, 128 MiB at B=2048) plus ~64 MiB, independent of N.
  * ``dense_code_softmax_cross_entropy`` for small catalogues, where three dense [B, N] GEMMs
    are cheaper than the fused form's three [B, D*K] ones; it needs ~3 * B * N * 4 bytes extra.
Both return the same value and gradients (seq_out and W), so switching is safe mid-training.

On CUDA tensors the op's kernels come from vqrec_fast/ops/softmax_ce_gpu.py (registered by
``vqrec_fast.cuda``): an ADC log-sum-exp forward and a backward that rebuilds each item chunk's
probabilities by an ADC scan over the saved LUT and applies them with GEMMs.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _validate as V
from .._native import _C, empty_huge, num_threads
from ..reference import code_bag as bag_ref
from ..reference.softmax_ce import dense_softmax_ce
from .code_bag import _check_W, _code_bag, _code_bag_backward, code_bag, native_bag_norms

_EPS = 1e-12  # F.normalize's eps: a norm below it is clamped (and has no projection gradient)
_ITEM_TILE = 8192  # items per code-bag tile for norms and the |e_n| gradient term
_REDUCTIONS = ("mean", "sum", "none")


# ----------------------------------------------------------------------------- shared math


def _normalized(x: Tensor, normalize: bool) -> Tensor:
    return F.normalize(x, dim=-1, eps=_EPS) if normalize else x


def _normalize_backward(x: Tensor, x_hat: Tensor, g_hat: Tensor) -> Tensor:
    """Gradient through x_hat = x / max(|x|, eps) (rows of [M, H])."""
    norm = x.norm(dim=-1, keepdim=True)
    proj = g_hat - x_hat * (x_hat * g_hat).sum(-1, keepdim=True)
    return torch.where(norm > _EPS, proj / norm.clamp_min(_EPS), g_hat / _EPS)


def _item_alpha(W: Tensor, codes: Tensor, temperature: float, normalize: bool, bag) -> Tensor:
    """alpha_n = 1 / (t * D * max(|e_n|, eps)) for every item, [N] float32, in item tiles."""
    D, N = W.shape[0], codes.shape[0]
    if not normalize:
        return W.new_full((N,), 1.0 / (temperature * D))
    parts = [bag(W, codes[s : s + _ITEM_TILE]).norm(dim=1) for s in range(0, N, _ITEM_TILE)]
    return 1.0 / (temperature * D * torch.cat(parts).clamp_min(_EPS))


def _extra_logits(q_hat: Tensor, W: Tensor, extra_codes: Tensor, temperature: float, normalize: bool, bag):
    """(x [B, H], x_hat, s_x [B]) for the extra negatives."""
    x = bag(W, extra_codes)
    x_hat = _normalized(x, normalize)
    return x, x_hat, (q_hat * x_hat).sum(-1) / temperature


def _rows_from_dense(seq_out, W, codes, target, extra_codes, temperature, normalize, bag):
    """Per-query losses [B] (0 where target == -1) of the dense formulation."""
    extra = bag(W, extra_codes) if extra_codes is not None else None
    safe = target.clamp_min(0)
    rows = dense_softmax_ce(
        seq_out, bag(W, codes), safe, temperature=temperature, normalize=normalize, reduction="none",
        extra_items=extra,
    )
    return torch.where(target >= 0, rows, torch.zeros_like(rows))


# ----------------------------------------------------------------------------- custom ops
# Forward returns (rows [B], lse [B], alpha [N], lut [B, D*K]); the last three are saved for
# the backward pass, which returns (d_seq_out [B, H], dW [D, K, H]). target uses -1 for
# ignored queries. The default kernels are the dense PyTorch formulation (any device).


@torch.library.custom_op("vqrec_fast::code_softmax_ce", mutates_args=())
def _ce_fwd(
    seq_out: Tensor, W: Tensor, codes: Tensor, target: Tensor, extra_codes: Optional[Tensor],
    temperature: float, normalize: bool,
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    D, K, H = W.shape
    bag = bag_ref.code_bag_ref
    q_hat = _normalized(seq_out, normalize)
    alpha = _item_alpha(W, codes, temperature, normalize, bag)
    lut = q_hat @ W.reshape(D * K, H).T
    e_hat = _normalized(bag(W, codes), normalize)
    s = q_hat @ e_hat.T / temperature
    if extra_codes is not None:
        s = torch.cat([s, _extra_logits(q_hat, W, extra_codes, temperature, normalize, bag)[2][:, None]], 1)
    lse = torch.logsumexp(s, dim=1)
    tgt = s.gather(1, target.clamp_min(0)[:, None])[:, 0]
    rows = torch.where(target >= 0, lse - tgt, torch.zeros_like(lse))
    return rows, lse, alpha, lut.contiguous()


@_ce_fwd.register_fake
def _(seq_out, W, codes, target, extra_codes, temperature, normalize):
    B, (D, K, _) = seq_out.shape[0], W.shape
    return seq_out.new_empty(B), seq_out.new_empty(B), W.new_empty(codes.shape[0]), W.new_empty(B, D * K)


@torch.library.custom_op("vqrec_fast::code_softmax_ce_backward", mutates_args=())
def _ce_bwd(
    grad_rows: Tensor, seq_out: Tensor, W: Tensor, codes: Tensor, target: Tensor, extra_codes: Optional[Tensor],
    lse: Tensor, alpha: Tensor, lut: Tensor, temperature: float, normalize: bool,
) -> Tuple[Tensor, Tensor]:
    # The default (any device) backward: the chunked closed form in PyTorch. (Autograd through
    # the dense formulation cannot run here: custom-op kernels run below the autograd key.)
    from .softmax_ce_gpu import ce_backward

    return ce_backward(grad_rows, seq_out, W, codes, target, extra_codes, lse, temperature, normalize)


@_ce_bwd.register_fake
def _(grad_rows, seq_out, W, codes, target, extra_codes, lse, alpha, lut, temperature, normalize):
    return torch.empty_like(seq_out), torch.empty_like(W)


# ----------------------------------------------------------------------------- native CPU kernels

if _C is not None:

    def _native_item_alpha(W: Tensor, c: Tensor, ct: str, temperature: float, normalize: bool) -> Tensor:
        D, N = W.shape[0], c.shape[0]
        if not normalize:
            return W.new_full((N,), 1.0 / (temperature * D))
        # |e_n| straight from the codes: no [N, H] code bags
        return 1.0 / (temperature * D * native_bag_norms(W, c).clamp_min_(_EPS))

    def _native_norm_term(W: Tensor, c: Tensor, ct: str, gamma: Tensor, dW: Tensor) -> None:
        """dW += code_bag backward of the rows gamma_n * e_n, without forming e."""
        D, K, H = W.shape
        gamma = gamma.to(torch.float32).contiguous()
        _C.code_bag_norm_grad(W.data_ptr(), D, K, H, c.data_ptr(), ct, c.shape[0], gamma.data_ptr(), dW.data_ptr(),
                              num_threads())

    @_ce_fwd.register_kernel("cpu")
    def _(seq_out, W, codes, target, extra_codes, temperature, normalize):
        D, K, H = W.shape
        B, N = seq_out.shape[0], codes.shape[0]
        W = W.contiguous()
        c, ct = V.native_code_tensor(codes)
        q_hat = _normalized(seq_out, normalize).contiguous()
        alpha = _native_item_alpha(W, c, ct, temperature, normalize)
        lut = torch.mm(q_hat, W.reshape(D * K, H).T, out=empty_huge(B, D * K))
        extra = None
        if extra_codes is not None:
            extra = _extra_logits(q_hat, W, extra_codes, temperature, normalize, _code_bag)[2].contiguous()
        tgt = target.to(torch.int64).contiguous()
        lse = torch.empty(B, dtype=torch.float32)
        tl = torch.empty(B, dtype=torch.float32)
        _C.code_softmax_ce_forward(
            lut.data_ptr(), B, D, K, c.data_ptr(), ct, N, alpha.data_ptr(), tgt.data_ptr(),
            extra.data_ptr() if extra is not None else 0, lse.data_ptr(), tl.data_ptr(), num_threads(),
        )
        rows = torch.where(tgt >= 0, lse - tl, torch.zeros_like(lse))
        return rows, lse, alpha, lut

    @_ce_bwd.register_kernel("cpu")
    def _(grad_rows, seq_out, W, codes, target, extra_codes, lse, alpha, lut, temperature, normalize):
        D, K, H = W.shape
        B, N = seq_out.shape[0], codes.shape[0]
        W = W.contiguous()
        W_flat = W.reshape(D * K, H)
        c, ct = V.native_code_tensor(codes)
        tgt = target.to(torch.int64).contiguous()
        g = torch.where(tgt >= 0, grad_rows, torch.zeros_like(grad_rows)).to(torch.float32).contiguous()
        q_hat = _normalized(seq_out, normalize)
        grad_lut = empty_huge(B, D * K)
        rho = torch.empty(N, dtype=torch.float32)
        _C.code_softmax_ce_backward(
            lut.data_ptr(), B, D, K, c.data_ptr(), ct, N, alpha.data_ptr(), tgt.data_ptr(), lse.data_ptr(),
            g.data_ptr(), grad_lut.data_ptr(), rho.data_ptr(), num_threads(),
        )
        d_q_hat = torch.mm(grad_lut, W_flat)
        # (Q_hat^T A)^T: MKL runs this orientation ~20% faster than A^T Q_hat here (60 vs 77 ms
        # at B=2048, D*K=8192, H=300), more than the 9.8 MB transposing copy costs
        dW = torch.mm(q_hat.T, grad_lut).T.contiguous().reshape(D, K, H)
        del grad_lut  # [B, D*K]: free it before the item-tile work below (peak memory)
        if extra_codes is not None:
            x, x_hat, s_x = _extra_logits(q_hat, W, extra_codes, temperature, normalize, _code_bag)
            dl_x = (g * torch.exp(s_x - lse))[:, None] / temperature
            d_q_hat = d_q_hat + dl_x * x_hat
            d_x = dl_x * q_hat
            if normalize:
                d_x = _normalize_backward(x, x_hat, d_x)
            dW += _code_bag_backward(d_x, extra_codes, D, K)
        if normalize:
            # d|e_n| term: dL/de_n = -rho_n e_n / |e_n|^2 = -rho_n (t D alpha_n)^2 e_n
            gamma = -rho * (temperature * D * alpha) ** 2
            gamma = torch.where(alpha < 1.0 / (temperature * D * _EPS), gamma, torch.zeros_like(gamma))
            _native_norm_term(W, c, ct, gamma, dW)
            d_q = _normalize_backward(seq_out, q_hat, d_q_hat)
        else:
            d_q = d_q_hat
        return d_q, dW


# ----------------------------------------------------------------------------- autograd


def _ce_setup(ctx, inputs, output):
    seq_out, W, codes, target, extra_codes, temperature, normalize = inputs
    _, lse, alpha, lut = output
    ctx.save_for_backward(seq_out, W, codes, target, extra_codes, lse, alpha, lut)
    ctx.temperature, ctx.normalize = temperature, normalize
    # Only `rows` carries a gradient; materialising zeros for the other outputs filled a
    # [B, D*K] tensor every step (14 ms and 64 MB at B=2048, D*K=8192, measured).
    ctx.set_materialize_grads(False)


def _ce_backward(ctx, grad_rows, _g_lse, _g_alpha, _g_lut):
    if grad_rows is None:  # the loss did not use the per-query rows
        return None, None, None, None, None, None, None
    seq_out, W, codes, target, extra_codes, lse, alpha, lut = ctx.saved_tensors
    dq, dW = _ce_bwd(
        grad_rows.contiguous(), seq_out, W, codes, target, extra_codes, lse, alpha, lut, ctx.temperature, ctx.normalize
    )
    return dq, dW, None, None, None, None, None


_ce_fwd.register_autograd(_ce_backward, setup_context=_ce_setup)


# ----------------------------------------------------------------------------- public API


def _check_args(seq_out, W, codes, target, extra_codes, temperature, reduction, ignore_index) -> Tensor:
    """Validates the arguments; returns target as int64 with -1 marking ignored queries."""
    _check_W(W)
    V.check_float32(seq_out, "seq_out")
    V.check_ndim(seq_out, 2, "seq_out", "[B, H]")
    D, K, H = W.shape
    if seq_out.shape[1] != H:
        raise ValueError(f"seq_out has H={seq_out.shape[1]} (shape {tuple(seq_out.shape)}) but W has H={H}")
    V.check_codes(codes, K, D, "codes")
    if codes.shape[0] < 1:
        raise ValueError("codes must hold at least one item (shape [N, D] with N >= 1)")
    V.check_tensor(target, "target")
    if target.dtype not in V.INDEX_DTYPES or target.dtype == torch.uint8 or target.dim() != 1:
        raise TypeError(f"target must be a 1-D signed integer tensor [B], got {target.dtype} {tuple(target.shape)}")
    B, N = seq_out.shape[0], codes.shape[0]
    if target.shape[0] != B:
        raise ValueError(f"target has {target.shape[0]} entries but seq_out has B={B} rows")
    if extra_codes is not None:
        V.check_codes(extra_codes, K, D, "extra_codes")
        if extra_codes.shape[0] != B:
            raise ValueError(f"extra_codes must have shape [B={B}, D={D}], got {tuple(extra_codes.shape)}")
    V.check_same_device([seq_out, W, codes, target], ["seq_out", "W", "codes", "target"])
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    t = target.to(torch.int64)
    ignored = t == ignore_index
    bad = ~ignored & ((t < 0) | (t >= N))
    if B and bool(bad.any()):
        b = int(bad.nonzero()[0, 0])
        raise ValueError(f"target[{b}] = {int(t[b])} is outside [0, N={N}) and is not ignore_index={ignore_index}")
    return torch.where(ignored, torch.full_like(t, -1), t)


def _reduce(rows: Tensor, target: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return rows
    total = rows.sum()
    # like F.cross_entropy: the mean is over non-ignored queries (nan when all are ignored)
    return total if reduction == "sum" else total / (target >= 0).sum().to(rows.dtype)


def code_softmax_cross_entropy(
    seq_out: Tensor,
    W: Tensor,
    codes: Tensor,
    target: Tensor,
    *,
    temperature: float = 0.07,
    normalize: bool = True,
    ignore_index: int = -100,
    reduction: str = "mean",
    extra_codes: Optional[Tensor] = None,
) -> Tensor:
    """Fused full-softmax cross-entropy over code-composed items (no [B, N] or [N, H] held).

    Args:
        seq_out: float32 [B, H] query representations.
        W: float32 [D, K, H] codebooks; item n is (1/D) * sum_d W[d, codes[n, d]].
        codes: integer [N, D] item codes, values in [0, K); all N rows are candidates.
        target: integer [B], index of the positive row of ``codes``, or ``ignore_index``.
        temperature: logits are cosine (or dot, without normalize) scores / temperature.
        normalize: L2-normalise queries and items first (F.normalize semantics, eps=1e-12).
        ignore_index: target value of queries that contribute no loss and no gradient.
        reduction: "mean" (over non-ignored queries), "sum" or "none" ([B], 0 when ignored).
        extra_codes: optional integer [B, D]; row b is one more negative item for query b only.
    Returns:
        The loss (scalar, or [B] for "none"), differentiable in seq_out and W (float32,
        deterministic on CPU: bit-identical for any thread count).

    Example:
        >>> import torch, vqrec_fast
        >>> W = torch.randn(32, 256, 300, requires_grad=True)
        >>> codes = torch.randint(0, 256, (5000, 32), dtype=torch.uint8)
        >>> q = torch.randn(64, 300, requires_grad=True)
        >>> loss = vqrec_fast.code_softmax_cross_entropy(q, W, codes, torch.randint(0, 5000, (64,)))
        >>> loss.backward()
    """
    tgt = _check_args(seq_out, W, codes, target, extra_codes, temperature, reduction, ignore_index)
    rows = _ce_fwd(seq_out, W, codes, tgt, extra_codes, float(temperature), bool(normalize))[0]
    return _reduce(rows, tgt, reduction)


def dense_code_softmax_cross_entropy(
    seq_out: Tensor,
    W: Tensor,
    codes: Tensor,
    target: Tensor,
    *,
    temperature: float = 0.07,
    normalize: bool = True,
    ignore_index: int = -100,
    reduction: str = "mean",
    extra_codes: Optional[Tensor] = None,
) -> Tensor:
    """Same contract as :func:`code_softmax_cross_entropy`, computed densely with PyTorch ops
    (the native code bag, a [B, N] logits matrix and F.cross_entropy)."""
    _check_args(seq_out, W, codes, target, extra_codes, temperature, reduction, ignore_index)
    extra = code_bag(W, extra_codes) if extra_codes is not None else None
    return dense_softmax_ce(
        seq_out, code_bag(W, codes), target.to(torch.int64), temperature=temperature, normalize=normalize,
        ignore_index=ignore_index, reduction=reduction, extra_items=extra,
    )


def dense_ce_is_faster(B: int, N: int, D: int, K: int, *, memory_budget: int = 1 << 30) -> bool:
    """Whether the dense form is the one to use for B queries over N items: the catalogue is
    small (N <= 3/4 of D*K, the measured crossover: see the module docstring) and its
    ~3 * B * N * 4 bytes of logits, probabilities and their gradient fit ``memory_budget``."""
    return 4 * N <= 3 * D * K and 3 * B * N * 4 <= memory_budget


def pick_code_softmax_cross_entropy(B: int, N: int, D: int, K: int, *, memory_budget: int = 1 << 30) -> Callable:
    """The faster of the two forms for a batch of B queries over N items (same signature and
    results): dense when ``dense_ce_is_faster``, fused otherwise."""
    if dense_ce_is_faster(B, N, D, K, memory_budget=memory_budget):
        return dense_code_softmax_cross_entropy
    return code_softmax_cross_entropy
