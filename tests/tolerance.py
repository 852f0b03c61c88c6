"""Comparison helper that prints the worst mismatching elements (Liger-Kernel style)."""
from __future__ import annotations

import torch


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float, name: str = "") -> None:
    actual = actual.detach().to(torch.float64).cpu()
    expected = expected.detach().to(torch.float64).cpu()
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    if actual.numel() == 0:
        return
    diff = (actual - expected).abs()
    bound = atol + rtol * expected.abs()
    bad = diff > bound
    if bool(bad.any()):
        idx = bad.nonzero()[:8]
        rows = [
            f"  at {tuple(i.tolist())}: got {actual[tuple(i)].item():.8g}, want {expected[tuple(i)].item():.8g}"
            for i in idx
        ]
        raise AssertionError(
            f"{name}: {int(bad.sum())} of {bad.numel()} elements differ (rtol={rtol}, atol={atol}); "
            f"max abs diff {diff.max().item():.3g}\n" + "\n".join(rows)
        )
