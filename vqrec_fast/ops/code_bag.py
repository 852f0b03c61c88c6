"""The code bag as torch custom ops (``vqrec_fast::code_bag`` and ``vqrec_fast::code_bag_seq``).

Forward, backward, fake (meta) kernels and autograd are registered with ``torch.library`` so
that ``torch.compile`` traces modules using them without graph breaks. The default kernel of
each op is the pure-PyTorch reference (any device); CPU tensors use the native kernels when
the extension is built, and CUDA kernels register themselves from ``vqrec_fast.cuda``.

Shapes and dtypes:
  W          float32 [D, K, H]  codebooks (sub-space d, code k, hidden h)
  codes      integer [N, D]     values in [0, K); uint8 when K <= 256 is the compact form
  item_codes integer [I, D]     code table; row 0 belongs to the padding item
  item_ids   int64   [B, L]     (any shape) ids into item_codes; 0 = padding -> zero row
Backward returns dW only (float32, deterministic on CPU).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .. import _validate as V
from .._native import _C, num_threads
from ..reference import code_bag as ref
from .output_cache import empty_output

# ----------------------------------------------------------------------------- forward ops


@torch.library.custom_op("vqrec_fast::code_bag", mutates_args=())
def _code_bag(W: Tensor, codes: Tensor) -> Tensor:
    return ref.code_bag_ref(W, codes)


@_code_bag.register_fake
def _(W: Tensor, codes: Tensor) -> Tensor:
    return W.new_empty(codes.shape[0], W.shape[2])


@torch.library.custom_op("vqrec_fast::code_bag_backward", mutates_args=())
def _code_bag_backward(grad_out: Tensor, codes: Tensor, D: int, K: int) -> Tensor:
    return ref.code_bag_backward_ref(grad_out, codes, D, K)


@_code_bag_backward.register_fake
def _(grad_out: Tensor, codes: Tensor, D: int, K: int) -> Tensor:
    return grad_out.new_empty(D, K, grad_out.shape[1])


@torch.library.custom_op("vqrec_fast::code_bag_seq", mutates_args=())
def _code_bag_seq(W: Tensor, item_codes: Tensor, item_ids: Tensor) -> Tensor:
    return ref.code_bag_seq_ref(W, item_codes, item_ids)


@_code_bag_seq.register_fake
def _(W: Tensor, item_codes: Tensor, item_ids: Tensor) -> Tensor:
    return W.new_empty(*item_ids.shape, W.shape[2])


@torch.library.custom_op("vqrec_fast::code_bag_seq_backward", mutates_args=())
def _code_bag_seq_backward(grad_out: Tensor, item_codes: Tensor, item_ids: Tensor, D: int, K: int) -> Tensor:
    return ref.code_bag_seq_backward_ref(grad_out, item_codes, item_ids, D, K)


@_code_bag_seq_backward.register_fake
def _(grad_out: Tensor, item_codes: Tensor, item_ids: Tensor, D: int, K: int) -> Tensor:
    return grad_out.new_empty(D, K, grad_out.shape[-1])


# ----------------------------------------------------------------------------- native CPU kernels

def _native_bag_into(W: Tensor, codes: Tensor, out: Tensor) -> Tensor:
    """The native CPU forward into out float32 [N, H] (contiguous); W and codes validated."""
    D, K, H = W.shape
    W = W.detach().contiguous()
    c, ct = V.native_code_tensor(codes)
    _C.code_bag_forward(W.data_ptr(), D, K, H, c.data_ptr(), ct, c.shape[0], out.data_ptr(), num_threads())
    return out


def native_bag_norms(W: Tensor, codes: Tensor) -> Tensor:
    """float32 [N] |code bag of item n|, computed by the native core from the codes without item
    rows (csrc/cpu/softmax_ce.h: code_bag_norms). CPU tensors, native build, W and codes
    validated; the fused loss and the cosine item scales use it."""
    D, K, H = W.shape
    W = W.detach().contiguous()
    c, ct = V.native_code_tensor(codes)
    norms = torch.empty(c.shape[0], dtype=torch.float32)
    _C.code_bag_norms(W.data_ptr(), D, K, H, c.data_ptr(), ct, c.shape[0], norms.data_ptr(), num_threads())
    return norms


if _C is not None:

    @_code_bag.register_kernel("cpu")
    def _(W: Tensor, codes: Tensor) -> Tensor:
        return _native_bag_into(W, codes, empty_output((codes.shape[0], W.shape[2]))[0])

    @_code_bag_backward.register_kernel("cpu")
    def _(grad_out: Tensor, codes: Tensor, D: int, K: int) -> Tensor:
        g = grad_out.contiguous()
        c, ct = V.native_code_tensor(codes)
        H = g.shape[1]
        gW = empty_output((D, K, H))[0]  # fully written: every code's sum, 0 for unused codes
        _C.code_bag_backward(g.data_ptr(), D, K, H, c.data_ptr(), ct, c.shape[0], gW.data_ptr(), num_threads())
        return gW

    @_code_bag_seq.register_kernel("cpu")
    def _(W: Tensor, item_codes: Tensor, item_ids: Tensor) -> Tensor:
        D, K, H = W.shape
        W = W.contiguous()
        c, ct = V.native_code_tensor(item_codes)
        ids = item_ids.to(torch.int64).contiguous()
        out, fresh = empty_output((*ids.shape, H))
        # fresh: never written, so untouched padding pages already read as 0; a reused buffer
        # from the output cache gets every padding row written.
        _C.code_bag_seq_forward(
            W.data_ptr(), D, K, H, c.data_ptr(), ct, c.shape[0], ids.data_ptr(), ids.numel(), out.data_ptr(),
            num_threads(), fresh,
        )
        return out

    @_code_bag_seq_backward.register_kernel("cpu")
    def _(grad_out: Tensor, item_codes: Tensor, item_ids: Tensor, D: int, K: int) -> Tensor:
        g = grad_out.contiguous()
        c, ct = V.native_code_tensor(item_codes)
        ids = item_ids.to(torch.int64).contiguous()
        H = g.shape[-1]
        gW = empty_output((D, K, H))[0]  # fully written, like code_bag_backward's
        _C.code_bag_seq_backward(
            g.data_ptr(), D, K, H, c.data_ptr(), ct, c.shape[0], ids.data_ptr(), ids.numel(), gW.data_ptr(),
            num_threads(),
        )
        return gW


# ----------------------------------------------------------------------------- autograd


def _bag_setup(ctx, inputs, output):
    W, codes = inputs
    ctx.save_for_backward(codes)
    ctx.DK = (W.shape[0], W.shape[1])


def _bag_backward(ctx, grad):
    (codes,) = ctx.saved_tensors
    D, K = ctx.DK
    return _code_bag_backward(grad, codes, D, K), None


_code_bag.register_autograd(_bag_backward, setup_context=_bag_setup)


def _seq_setup(ctx, inputs, output):
    W, item_codes, item_ids = inputs
    ctx.save_for_backward(item_codes, item_ids)
    ctx.DK = (W.shape[0], W.shape[1])


def _seq_backward(ctx, grad):
    item_codes, item_ids = ctx.saved_tensors
    D, K = ctx.DK
    return _code_bag_seq_backward(grad, item_codes, item_ids, D, K), None, None


_code_bag_seq.register_autograd(_seq_backward, setup_context=_seq_setup)


# ----------------------------------------------------------------------------- public API


def _check_W(W: Tensor) -> None:
    V.check_float32(W, "W")
    V.check_ndim(W, 3, "W", "[D, K, H]")
    if W.shape[0] < 1 or W.shape[1] < 1:
        raise ValueError(f"W must have D >= 1 and K >= 1, got shape {tuple(W.shape)}")


def _compiling() -> bool:
    return torch.compiler.is_compiling()


def code_bag(W: Tensor, codes: Tensor, *, out: Optional[Tensor] = None) -> Tensor:
    """Mean of code embeddings per item.

    Args:
        W: float32 [D, K, H] codebooks.
        codes: integer [N, D] with values in [0, K) (uint8 when K <= 256).
        out: optional float32 [N, H] contiguous tensor on W's device to write the rows into
            (inference only: no autograd). Reusing one buffer for repeated large calls skips
            faulting in fresh memory: for N = 1e6, H = 300 that is ~0.25 s of the ~0.75 s call
            on the development VM (benchmarks/RESULTS.md).
    Returns:
        float32 [N, H] (``out`` when given), row n = (1/D) * sum_d W[d, codes[n, d]].
        Differentiable in W when ``out`` is not given.

    Example:
        >>> import torch, vqrec_fast
        >>> W = torch.randn(32, 256, 300)
        >>> codes = torch.randint(0, 256, (10, 32), dtype=torch.uint8)
        >>> vqrec_fast.code_bag(W, codes).shape
        torch.Size([10, 300])
        >>> buf = torch.empty(10, 300)
        >>> vqrec_fast.code_bag(W, codes, out=buf) is buf
        True
    """
    _check_W(W)
    V.check_tensor(codes, "codes")
    V.check_same_device([W, codes], ["W", "codes"])
    if _compiling():
        V.check_ndim(codes, 2, "codes", "[N, D]")
    else:
        V.check_codes(codes, W.shape[1], W.shape[0], "codes")
    if out is None:
        return _code_bag(W, codes)
    _check_out(out, W, codes)
    if out.device.type == "cpu" and _C is not None and not _compiling():
        return _native_bag_into(W, codes, out)
    with torch.no_grad():
        return out.copy_(_code_bag(W, codes))


def _check_out(out: Tensor, W: Tensor, codes: Tensor) -> None:
    V.check_tensor(out, "out")
    V.check_float32(out, "out")
    want = (codes.shape[0], W.shape[2])
    if tuple(out.shape) != want:
        raise ValueError(f"out must have shape [N, H] = {list(want)}, got {list(out.shape)}")
    if out.device != W.device:
        raise ValueError(f"out is on {out.device}, W on {W.device}: they must be on the same device")
    if not out.is_contiguous():
        raise ValueError("out must be contiguous")
    if torch.is_grad_enabled() and (W.requires_grad or out.requires_grad):
        raise ValueError("out= writes the rows without autograd: call under torch.no_grad() or pass W.detach()")
    mine = out.untyped_storage().data_ptr()
    if out.numel() > 0 and mine in (W.untyped_storage().data_ptr(), codes.untyped_storage().data_ptr()):
        raise ValueError("out must not share memory with W or codes")


def code_bag_seq(W: Tensor, item_codes: Tensor, item_ids: Tensor, *, check_codes: bool = True) -> Tensor:
    """Code bag over sequences of item ids.

    Args:
        W: float32 [D, K, H] codebooks.
        item_codes: integer [I, D] code table (row 0 = padding item; its codes are ignored).
        item_ids: integer tensor of any shape (typically [B, L]) with values in [0, I); 0 = padding.
        check_codes: validate every row of item_codes (O(I*D)); a caller that validated the
            table once (e.g. ``CodeEmbedding``) passes False. The native kernel still checks
            the rows a batch actually uses.
    Returns:
        float32 [*item_ids.shape, H]; padding positions are exactly zero and cost no work.
    """
    _check_W(W)
    V.check_tensor(item_codes, "item_codes")
    V.check_tensor(item_ids, "item_ids")
    V.check_same_device([W, item_codes, item_ids], ["W", "item_codes", "item_ids"])
    if item_codes.shape[0] < 1:
        raise ValueError("item_codes must have at least one row (row 0 is the padding item)")
    if _compiling():
        V.check_ndim(item_codes, 2, "item_codes", "[I, D]")
    else:
        if check_codes:
            V.check_codes(item_codes, W.shape[1], W.shape[0], "item_codes")
        else:
            V.check_ndim(item_codes, 2, "item_codes", "[I, D]")
        V.check_ids(item_ids, item_codes.shape[0], "item_ids")
    return _code_bag_seq(W, item_codes, item_ids)
