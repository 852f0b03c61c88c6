"""Triton kernels of vqrec_fast: code bag, ADC top-k and the fused code-composed softmax loss.

One kernel + launcher per file. They run on CUDA tensors, or on CPU tensors under Triton's
interpreter (``TRITON_INTERPRET=1`` set before triton is imported), which is how CI tests them.
Importing this package needs triton; ``available()`` says whether it can be imported, and the
rest of vqrec_fast never imports it unless asked.
"""
from __future__ import annotations


def available() -> bool:
    """True when triton can be imported."""
    try:
        import triton  # noqa: F401
    except Exception:  # pragma: no cover - triton missing or broken
        return False
    return True


def __getattr__(name):
    # Lazy: importing vqrec_fast.triton does not import triton until a kernel is needed.
    if name in ("code_bag_forward", "code_bag_backward"):
        from . import code_bag

        return getattr(code_bag, name)
    if name == "adc_topk":
        from .adc_topk import adc_topk

        return adc_topk
    if name == "code_softmax_cross_entropy":
        from .softmax_ce import code_softmax_cross_entropy

        return code_softmax_cross_entropy
    raise AttributeError(name)


__all__ = ["available", "code_bag_forward", "code_bag_backward", "adc_topk", "code_softmax_cross_entropy"]
