"""Training curves (loss, validation metric) as a PNG; silently skipped without matplotlib."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List


def plot_curves(history: List[Dict], path: Path, metric: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(ep, [h["loss"] for h in history])
    a.set_xlabel("epoch")
    a.set_ylabel("train loss")
    for key in ("recall@10", "ndcg@10", "recall@50", "ndcg@50"):
        b.plot(ep, [h["valid"][key] for h in history], label=key)
    b.set_xlabel("epoch")
    b.set_ylabel(f"valid (early stop on {metric})")
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
